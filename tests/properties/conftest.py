"""Hypothesis profiles for the chain-versus-model state machines (every step runs on anvil and on the model).

`make test` (and CI) runs the "standard" profile, sized so the whole suite stays within about 12 minutes on
2 cores. `BME_PROPERTY_PROFILE=thorough make test` runs 20 examples of 30 steps each (several minutes more
for these tests alone): run it after a change to the contracts or the reference model.
"""

import os

from hypothesis import HealthCheck, settings

COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck)}
settings.register_profile("standard", max_examples=6, stateful_step_count=20, **COMMON)
settings.register_profile("thorough", max_examples=20, stateful_step_count=30, **COMMON)
settings.load_profile(os.environ.get("BME_PROPERTY_PROFILE", "standard"))
