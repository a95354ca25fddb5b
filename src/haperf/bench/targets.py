"""Per-operation targets from the haperf specification.

Owns the table of target timings the bench compares against. The figures were measured on a
Go implementation and are the specification's bar; they are targets, not claims. A benchmark
picks up its target by name, so a capability that lands later only has to register a benchmark
under one of these names.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """One target: the benchmark name it applies to, the time in ns per op, what it measures."""

    name: str
    target_ns: float
    group: str
    what: str


TARGET_SOURCE = "specification (Go implementation)"

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("breaker.state_check", 12.0, "breaker", "circuit breaker: check state"),
        Target("breaker.execute_closed", 145.0, "breaker", "circuit breaker: call when closed"),
        Target("breaker.execute_open", 8.0, "breaker", "circuit breaker: rejected call when open"),
        Target("phi.heartbeat", 127.0, "phi", "phi-accrual: record one heartbeat"),
        Target("phi.calculation", 892.0, "phi", "phi-accrual: compute phi"),
        Target("phi.adaptive_threshold", 1_200.0, "phi", "phi-accrual: adaptive threshold"),
        Target("raft.single_command", 841.0, "raft", "Raft: propose one command"),
        Target("raft.batch_100", 72_300.0, "raft", "Raft: propose a batch of 100 commands"),
        Target("raft.leader_election", 152_000_000.0, "raft", "Raft: elect a leader"),
        Target(
            "raft.log_replication_per_entry",
            8_200_000.0,
            "raft",
            "Raft: replicate one log entry",
        ),
    )
}
