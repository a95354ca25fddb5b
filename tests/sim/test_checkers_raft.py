"""Each checker catches a bug planted on purpose into a run of the real Raft core.

The bugs: a node that claims leadership of a term another node leads (election_safety), a disk
that corrupts one entry it writes (log_matching), a disk that pretends its log reached the
platter and loses it in a crash (leader_completeness), a state machine fed a flipped command
(state_machine_safety), a status whose commit index goes back (commit_monotonic), and a client
acknowledged when the leader appended its command rather than when it was committed and
applied (no_ack_lost). Each must make exactly its checker fire first, with a message naming
seed, node and term or index.
"""

from collections.abc import Sequence
from typing import Any

from haperf._native.raftmsg import Entry
from haperf.sim.disk import SimDisk
from haperf.sim.faults import CRASH, RESTART, FaultEvent
from haperf.sim.network import MS
from haperf.sim.node import SimNode
from haperf.sim.runner import FAULT, RunResult, SimConfig, Simulation, run


def _bad_node(node_id: int, **overrides: Any) -> Any:
    cls = type("PlantedNode", (SimNode,), overrides)

    def make(sim: Simulation, nid: int, *args: Any) -> SimNode:
        return (cls if nid == node_id else SimNode)(sim, nid, *args)

    return make


def _expect(result: RunResult, checker: str, seed: int, node: int | None = None) -> None:
    v = result.violation
    assert v is not None, f"{checker}: the planted bug went unnoticed (seed {seed})"
    assert v.checker == checker, f"expected {checker} first, got {v}"
    assert v.seed == seed and f"seed {seed}" in str(v)
    if node is not None:
        assert v.node == node and f"node {node}" in str(v)


def test_clean_runs_have_no_violation() -> None:
    for seed in range(3):
        result = run(SimConfig(seed=seed, faults=()))
        assert result.ok, result.violation
        assert result.acked > 20 and result.leader_terms >= 1


def test_election_safety_catches_a_second_leader_in_a_term() -> None:
    def _observe(self: SimNode) -> None:
        self._read_status()
        leader = self.sim.leader_terms.get(self.term)
        if leader is not None and leader != self.id:
            self.is_leader = True  # claims the term another node leads
        self.sim.observe_status(self)

    result = run(SimConfig(seed=3, faults=(), node_factory=_bad_node(3, _observe=_observe)))
    _expect(result, "election_safety", 3, node=3)


def test_log_matching_catches_a_corrupted_entry() -> None:
    class CorruptingDisk(SimDisk):
        def append(self, entries: Sequence[Any]) -> None:
            super().append(
                [Entry(e.term, e.index, b"corrupt", e.type) if e.index == 7 else e for e in entries]
            )

    def disks() -> Any:
        made = [0]

        def make() -> SimDisk:
            made[0] += 1
            return CorruptingDisk() if made[0] == 2 else SimDisk()

        return make

    result = run(SimConfig(seed=4, faults=(), disk_factory=disks()))
    _expect(result, "log_matching", 4)
    assert result.violation is not None and result.violation.index == 7


def test_state_machine_safety_catches_a_corrupted_apply() -> None:
    def on_apply(self: SimNode, index: int, data: bytes) -> None:
        SimNode.on_apply(self, index, b"flipped" if index == 5 else data)

    result = run(SimConfig(seed=5, faults=(), node_factory=_bad_node(2, on_apply=on_apply)))
    _expect(result, "state_machine_safety", 5)
    assert result.violation is not None and result.violation.index == 5


def test_commit_monotonic_catches_a_commit_going_back() -> None:
    def _observe(self: SimNode) -> None:
        SimNode._observe(self)
        if self.commit >= 8 and not getattr(self, "went_back", False):
            self.went_back = True
            self.commit -= 3
            self.sim.observe_status(self)

    result = run(SimConfig(seed=6, faults=(), node_factory=_bad_node(1, _observe=_observe)))
    _expect(result, "commit_monotonic", 6, node=1)


class AmnesiacDisk(SimDisk):
    """Pretends its log reached the platter: a crash loses every entry (and the commit index,
    so the restarted core stays self-consistent); term and vote survive, so no node can vote
    twice in a term and only the log guarantee is broken."""

    def crash(self, rng: Any = None, keep_prefix: bool = False) -> int:
        lost = super().crash(rng, keep_prefix)
        hs = self.durable.hard_state
        self.durable.entries = []
        if hs is not None:
            self.durable.hard_state = type(hs)(hs.term, hs.vote, 0)
        self.volatile = self.durable.copy()
        return lost


def test_leader_completeness_catches_a_leader_that_lost_committed_entries() -> None:
    # Nodes 2 and 3 forget their logs; all three crash at once and restart together. Whenever
    # 2 or 3 wins the next election (with the other's vote), it leads without the entries the
    # cluster committed. Some seeds let node 1 win; the checker must fire on the others.
    fired = []
    for seed in range(10):
        disks = iter([SimDisk(), AmnesiacDisk(), AmnesiacDisk()])
        # No compaction: a snapshot would keep the committed prefix the planted disk forgets.
        config = SimConfig(seed=seed, faults=(), compact_entries=0, disk_factory=disks.__next__)
        sim = Simulation(config)
        at = 1_000 * MS
        for node in (1, 2, 3):
            sim.scheduler.at(at, FAULT, node, FaultEvent(at, CRASH, node))
            sim.scheduler.at(at + 50 * MS, FAULT, node, FaultEvent(at + 50 * MS, RESTART, node))
        result = sim.run()
        if result.violation is not None:
            _expect(result, "leader_completeness", seed)
            assert result.violation.node in (2, 3)
            fired.append(seed)
    assert len(fired) >= 3, f"the planted bug fired for seeds {fired} only"


def test_no_ack_lost_catches_acknowledging_before_commit() -> None:
    # A broken client hears "done" when the leader appends its command. Crashes and cuts then
    # lose some of those commands before they commit: an acknowledged write is gone.
    def _on_append(self: SimNode, entries: Sequence[Any], prev_term: int | None) -> None:
        SimNode._on_append(self, entries, prev_term)
        client = self.sim.client
        for e in entries:
            data = bytes(e.data)
            if client.pending.get(data) == self.id and self.is_leader:
                del client.pending[data]
                self.sim.observe_ack(self.id, int(e.index), data)

    fired = []
    for seed in range(40):
        config = SimConfig(
            seed=seed,
            faults=("crash", "partition", "drop"),
            node_factory=type("Hasty", (SimNode,), {"_on_append": _on_append}),
        )
        result = run(config)
        if result.violation is not None:
            _expect(result, "no_ack_lost", seed)
            fired.append(seed)
    assert fired, "no seed lost an acknowledged-before-commit write"


def test_read_linearizable_catches_a_stale_follower_read() -> None:
    # A broken read path: answer from any follower's local state, at whatever it has applied,
    # without asking the leader (no ReadIndex). A follower that lags serves a stale read.
    from haperf.raft.host import ReadRequest
    from haperf.sim.workload import Client

    class StaleReads(Client):
        def read(self) -> None:
            followers = [n for n in self.sim.nodes.values() if n.alive and not n.is_leader]
            if not followers:
                return
            node = self.rng.choice(followers)
            assert node.core is not None
            request = ReadRequest(b"stale", index=node.core.applied, ready=True)
            self.reads.append((node.id, node.incarnation, request, self.acked_max))

    fired = []
    for seed in range(30):
        result = run(SimConfig(seed=seed, faults=("partition", "drop"), client_factory=StaleReads))
        if result.violation is not None:
            _expect(result, "read_linearizable", seed)
            fired.append(seed)
    assert fired, "no seed served a stale follower read"


def test_real_reads_are_served_and_checked() -> None:
    result = run(SimConfig(seed=2))
    assert result.ok and result.reads > 10


def test_a_disk_that_pretends_to_fsync_is_caught() -> None:
    # sync() reports success but nothing reaches the platter: every crash wipes the node
    # (term, vote and log). Raft's safety rests on that state being durable, so some seeds must
    # break a guarantee (which one depends on the seed: a second vote in a term, a lost entry).
    from haperf.sim.checkers import CHECKER_NAMES

    class LyingDisk(SimDisk):
        def sync(self) -> None:
            self.syncs += 1

    caught = []
    for seed in range(60):
        config = SimConfig(seed=seed, faults=("crash",), disk_factory=LyingDisk, liveness_ticks=50)
        result = run(config)
        if result.violation is not None and result.violation.checker in CHECKER_NAMES:
            assert f"seed {seed}" in str(result.violation)
            caught.append(result.violation.checker)
    assert caught, "a disk that loses synced writes went unnoticed in 60 seeds"
