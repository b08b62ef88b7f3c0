"""Hypothesis profiles: more examples in CI than locally (CI sets CI=true)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=8, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "ci", max_examples=20, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
