"""The election-time experiment (Raft 9.3): bounds that follow from the timeouts, determinism.

With 150-300 ms election timeouts and 50 ms heartbeats, no follower can time out sooner than
150 ms after its last heartbeat, which came at most one heartbeat interval (plus network
latency) before the crash: so every election takes at least 100 ms.
"""

from haperf.sim.election import (
    election_config,
    election_distribution,
    measure_election,
    percentile,
)
from haperf.sim.network import MS


def test_elections_respect_the_timeouts_and_replay() -> None:
    samples = [measure_election(election_config(seed)) for seed in range(20)]
    for s in samples:
        assert 100 * MS <= s.election_ns <= 1_000 * MS, s
        assert s.new_term > s.old_term >= 1
    again = measure_election(election_config(7))
    assert again == samples[7]
    assert len({s.election_ns for s in samples}) == len(samples)


def test_distribution_figures() -> None:
    figures = election_distribution(range(30), nodes=3)
    assert figures["elections"] == 30
    ordered = [figures[k] for k in ("median_ms", "p90_ms", "p99_ms", "max_ms")]
    assert ordered[0] >= 100 and ordered == sorted(ordered)
    assert abs(figures["median_ns"] - figures["median_ms"] * MS) < 1


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([5], 50) == 5
