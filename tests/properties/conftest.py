"""Hypothesis profiles for the chain-versus-model state machines (every step runs on anvil and on the model).

`make test` (and CI) runs the "standard" profile: 4 examples of 20 steps (30 for the operators' machine, whose
sequences must span registration, work, epochs and claims), sized so that the whole suite stays within 12
minutes on 2 cores. `BME_PROPERTY_PROFILE=thorough make test` runs 20 examples of 30 steps (40 for the
operators): several minutes more for these tests alone; run it after a change to the contracts or the model.
"""

import os

from hypothesis import HealthCheck, settings

COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck)}
settings.register_profile("standard", max_examples=4, stateful_step_count=20, **COMMON)
settings.register_profile("thorough", max_examples=20, stateful_step_count=30, **COMMON)
settings.load_profile(os.environ.get("BME_PROPERTY_PROFILE", "standard"))
