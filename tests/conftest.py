"""Shared test configuration: hypothesis profiles and the repository root.

Owns the `ci` hypothesis profile (derandomized, so a CI failure reproduces from the commit) and
`dev` (random, more examples). HYPOTHESIS_PROFILE picks one; CI sets it to `ci`. Also owns the
rule that `slow`-marked tests run only when asked for with `-m slow`.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "ci", max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect `slow`-marked tests unless the -m expression names `slow` (`pytest -m slow`).

    The slow runs (100,000 simulator seeds, millions of fuzz cases) are for a dedicated job, so
    a plain `pytest` stays within CI's time budget and still reports them as deselected.
    """
    if "slow" in (config.getoption("-m") or ""):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
