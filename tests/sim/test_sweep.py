"""The seed sweep: thousands of simulator seeds, 3 and 5 nodes, every fault kind, zero violations.

CI runs SWEEP_SEEDS seeds per cluster size (split into chunks so a failure names its chunk and
pytest can report each); `pytest -m slow` runs SLOW_SEEDS. Every failure message is the
violation and the exact command that replays it (`python -m haperf sim --seed N ...`).
"""

import pytest

from haperf.sim.faults import FAULT_KINDS
from haperf.sim.runner import SimConfig, replay_command, run

SWEEP_SEEDS = 1_000  # per cluster size: 2,000 seeds in all
SLOW_SEEDS = 50_000  # per cluster size: 100,000 in all
CHUNK = 100
SWEEP_TICKS = 200  # a 2 s safety phase per seed (the default)
SIZES = (3, 5)


def _sweep(nodes: int, seeds: range, ticks: int) -> list[str]:
    failures = []
    for seed in seeds:
        config = SimConfig(seed=seed, nodes=nodes, safety_ticks=ticks, faults=FAULT_KINDS)
        result = run(config)
        if result.violation is not None:
            failures.append(f"{result.violation}\n  replay: {replay_command(config)}")
    return failures


@pytest.mark.parametrize("nodes", SIZES)
@pytest.mark.parametrize("start", range(0, SWEEP_SEEDS, CHUNK))
def test_seed_sweep(nodes: int, start: int) -> None:
    failures = _sweep(nodes, range(start, start + CHUNK), SWEEP_TICKS)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("nodes", SIZES)
@pytest.mark.parametrize("start", range(SWEEP_SEEDS, SWEEP_SEEDS + SLOW_SEEDS, 5_000))
def test_seed_sweep_slow(nodes: int, start: int) -> None:
    failures = _sweep(nodes, range(start, start + 5_000), SWEEP_TICKS)
    assert not failures, "\n".join(failures)
