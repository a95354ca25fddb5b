"""Shared test configuration: hypothesis profiles and the repository root.

Owns the `ci` hypothesis profile (derandomized, so a CI failure reproduces from the commit) and
`dev` (random, more examples). HYPOTHESIS_PROFILE picks one; CI sets it to `ci`.
"""

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "ci", max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
