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


def test_the_sweep_exercises_every_fault_kind() -> None:
    # Over the first seeds of the sweep, every fault kind happens, and so do the paths they are
    # meant to reach: snapshots sent to lagging nodes, reads served, elections after crashes.
    from haperf._native.raftmsg import MSG_SNAP, MSG_VOTE
    from haperf.sim.runner import Simulation

    totals: dict[str, int] = {}
    for nodes in SIZES:
        for seed in range(40):
            sim = Simulation(SimConfig(seed=seed, nodes=nodes, safety_ticks=SWEEP_TICKS))
            result = sim.run()
            assert result.ok, result.violation
            st = sim.network.stats
            for name, value in (
                ("dropped", st.dropped),
                ("duplicated", st.duplicated),
                ("reordered", st.reordered),
                ("corrupt_rejected", st.rejected),
                ("cut", st.cut),
                ("crashes", sim.crashes),
                ("torn_crashes", sim.torn_crashes),
                ("drifting_nodes", sum(1 for d in sim.plan.drift_ppm if d)),
                ("snapshots_sent", st.by_type[MSG_SNAP]),
                ("votes_sent", st.by_type[MSG_VOTE]),
                ("reads", result.reads),
                ("acked", result.acked),
                ("membership_changes", sim.client.membership_changes),
            ):
                totals[name] = totals.get(name, 0) + value
    missing = [name for name, value in totals.items() if value == 0]
    assert not missing, f"never happened in the sweep: {missing} (totals {totals})"
