"""Leader election time after a leader crash, measured in the simulator (Raft paper, 9.3).

Owns measure_election and election_distribution. One measurement: a cluster with no other
faults elects a leader, runs steadily for a seeded while, then the leader crashes; the result is
the simulated time from the crash until another node is leader of a later term. This is the
experiment of Figure 16 of the Raft paper (five servers, the leader crashed repeatedly, time to
detect the crash and elect a new leader), run with the simulator's network latency.

Invariants: a measurement is a pure function of (seed, nodes, timing); checkers run throughout
and a violation raises AssertionError (an election time from an unsafe run means nothing);
each measurement is bounded by ELECTION_SIM_NS_MAX of simulated time.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from haperf.sim.faults import CRASH, FaultEvent
from haperf.sim.network import MS
from haperf.sim.runner import FAULT, SimConfig, Simulation

ELECTION_SIM_NS_MAX = 60_000 * MS
SETTLE_NS_MIN = 300 * MS
SETTLE_NS_MAX = 1_000 * MS


@dataclass(frozen=True, slots=True)
class ElectionSample:
    seed: int
    election_ns: int
    old_term: int
    new_term: int
    new_leader: int


class _Measure:
    """An after_event hook: wait for a leader, schedule its crash, time the next election."""

    def __init__(self, sim: Simulation) -> None:
        self.rng = sim.rng.stream("election")
        self.crash_scheduled = False
        self.victim = 0
        self.old_term = 0
        self.crashed_at_ns: int | None = None
        self.sample: ElectionSample | None = None

    def __call__(self, sim: Simulation) -> None:
        now = sim.clock.now_ns
        if not self.crash_scheduled:
            for node_id in sim.node_ids:
                node = sim.nodes[node_id]
                if node.alive and node.is_leader:
                    self.crash_scheduled = True
                    self.victim = node_id
                    at = now + self.rng.randint(SETTLE_NS_MIN, SETTLE_NS_MAX)
                    sim.scheduler.at(at, FAULT, node_id, FaultEvent(at, CRASH, node_id))
                    return
            return
        victim = sim.nodes[self.victim]
        if self.crashed_at_ns is None:
            if victim.alive:
                self.old_term = max(self.old_term, victim.term)
                return
            self.crashed_at_ns = now
        for node_id in sim.node_ids:
            node = sim.nodes[node_id]
            if node.alive and node.is_leader and node.term > self.old_term:
                self.sample = ElectionSample(
                    sim.config.seed, now - self.crashed_at_ns, self.old_term, node.term, node_id
                )
                sim.stopped = True
                return


def election_config(seed: int, nodes: int = 5, **overrides: object) -> SimConfig:
    """A fault-free, idle cluster with the paper's timing (150-300 ms timeouts, 50 ms beats)."""
    base = SimConfig(
        seed=seed,
        nodes=nodes,
        faults=(),
        safety_ticks=ELECTION_SIM_NS_MAX // SimConfig().tick_ns,
        propose_interval_ns=ELECTION_SIM_NS_MAX,
        # Idle, as in the paper: a ReadIndex read adds a heartbeat round, which would reset the
        # followers' timers more often than every 50 ms and lengthen the measured time.
        read_interval_ns=0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def measure_election(config: SimConfig) -> ElectionSample:
    """Run one crash-the-leader experiment; see the module docstring."""
    sim = Simulation(config)
    measure = _Measure(sim)
    sim.after_event.append(measure)
    result = sim.run()
    assert result.violation is None, f"unsafe run while measuring an election: {result.violation}"
    assert measure.sample is not None, (
        f"seed {config.seed}: no new leader within {ELECTION_SIM_NS_MAX} ns of simulated time"
    )
    return measure.sample


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of an ascending sequence."""
    assert sorted_values, "percentile of nothing"
    rank = max(1, -(-int(q * len(sorted_values)) // 100))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def election_distribution(
    seeds: Sequence[int], nodes: int = 5, **overrides: object
) -> dict[str, float]:
    """Median, p90, p99 and max election time in ms over one measurement per seed."""
    times = sorted(
        measure_election(election_config(s, nodes, **overrides)).election_ns for s in seeds
    )
    return {
        "median_ms": percentile(times, 50) / MS,
        "p90_ms": percentile(times, 90) / MS,
        "p99_ms": percentile(times, 99) / MS,
        "max_ms": times[-1] / MS,
        "median_ns": percentile(times, 50),
        "elections": float(len(times)),
    }
