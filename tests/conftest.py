"""Shared test settings: Hypothesis runs are derandomized so every run repeats."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "cnnlab",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "150")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("cnnlab")
