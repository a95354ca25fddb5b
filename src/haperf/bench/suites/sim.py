"""Simulator benchmarks (group raft): simulated election time, and simulator speed.

Owns raft.leader_election and raft.sim_speed.

raft.leader_election: one call runs one crash-the-leader experiment in the simulator (five
nodes, 150-300 ms election timeouts, 50 ms heartbeats; haperf.sim.election), with a new seed
each call. The wall-clock time per call is only the cost of simulating it: the figure that
matters is simulated, in `extra`: median, p90 and p99 election time in ms over ELECTIONS seeded
experiments (seeds 0..ELECTIONS-1, the same in every run), and `median_ns`, which the report
compares with the specification's target (Figure 16 of the Raft paper measures the same thing).

raft.sim_speed: one call runs one full simulator seed (3 nodes, every fault kind, the default
safety and liveness phases, all checkers on). `extra` gives simulated seconds per wall-clock
second over the calls the row made.
"""

import importlib.util
import time

from haperf.bench.registry import Benchmark, Op, register_all
from haperf.sim.election import election_config, election_distribution, measure_election
from haperf.sim.runner import SimConfig, run

ELECTIONS = 200
ELECTION_NODES = 5


def _has_core() -> bool:
    """The simulator runs the Raft core and the codec; both must be built."""
    return all(
        importlib.util.find_spec(f"haperf._native.{m}") is not None for m in ("raft", "codec")
    )


def _leader_election() -> Op:
    seeds = iter(range(ELECTIONS, 1 << 62))
    cache: dict[str, float] = {}

    def one() -> int:
        return measure_election(election_config(next(seeds), ELECTION_NODES)).election_ns

    def extra() -> dict[str, float]:
        if not cache:
            cache.update(election_distribution(range(ELECTIONS), ELECTION_NODES))
        return dict(cache)

    return Op(one, extra=extra)


def _sim_speed() -> Op:
    seeds = iter(range(1 << 62))
    totals = [0, 0]  # simulated ns, wall ns

    def one() -> bool:
        start = time.perf_counter_ns()
        result = run(SimConfig(seed=next(seeds)))
        totals[1] += time.perf_counter_ns() - start
        totals[0] += result.sim_ns
        assert result.ok, result.violation
        return result.ok

    def extra() -> dict[str, float]:
        return {"sim_s_per_wall_s": totals[0] / totals[1] if totals[1] else 0.0}

    return Op(one, extra=extra)


register_all(
    [
        Benchmark(
            "raft.leader_election",
            "raft",
            f"simulated: crash the leader of {ELECTION_NODES} nodes, time until a new one "
            f"(150-300 ms timeouts, 50 ms heartbeats; median/p90/p99 of {ELECTIONS} seeds)",
            _leader_election,
            available=_has_core,
            # The target is compared with the simulated median, not the time to simulate it.
            target_metric="median_ns",
        ),
        Benchmark(
            "raft.sim_speed",
            "raft",
            "simulator: one seed, 3 nodes, all faults and checkers (simulated s per wall s)",
            _sim_speed,
            available=_has_core,
        ),
    ]
)
