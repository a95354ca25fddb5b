"""Test configuration of tests/sim: slow-marked cases run only when asked for.

Owns one rule: a test under tests/sim marked `slow` (the 100,000-seed sweep) is deselected
unless the -m expression names `slow` (`pytest -m slow tests/sim`), so a plain `pytest` stays
within the area's time budget.
"""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("-m") or ""):
        return
    keep, drop = [], []
    for item in items:
        mine = HERE in Path(str(item.path)).resolve().parents
        (drop if mine and item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
