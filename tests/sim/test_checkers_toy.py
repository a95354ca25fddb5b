"""Each checker catches a bug planted on purpose, shown on the toy replicated log.

The toy (tests/sim/toy.py) is correct when nothing crashes, so a clean run has no violation, and
each planted bug must make exactly its checker fire first, with a message naming the seed, the
node and the index or term. The same checkers are shown against the real Raft core in
test_checkers_raft.py.
"""

import random
from collections.abc import Sequence
from typing import Any

import pytest

from haperf.sim.checkers import CHECKER_NAMES
from haperf.sim.disk import SimDisk
from haperf.sim.node import SimNode
from haperf.sim.runner import RunResult, Simulation, run
from haperf.sim.workload import Client
from tests.sim.toy import toy_config

SEED = 11


def _bad_node(node_id: int, **overrides: Any) -> Any:
    """A node factory making node `node_id` an instance of a SimNode subclass with overrides."""
    cls = type("PlantedNode", (SimNode,), overrides)

    def make(sim: Simulation, nid: int, *args: Any) -> SimNode:
        return (cls if nid == node_id else SimNode)(sim, nid, *args)

    return make


def _expect(result: RunResult, checker: str, node: int | None = None) -> None:
    v = result.violation
    assert v is not None, f"{checker}: the planted bug went unnoticed"
    assert v.checker == checker, f"expected {checker} first, got {v}"
    assert v.seed == SEED and f"seed {SEED}" in str(v)
    if node is not None:
        assert v.node == node and f"node {node}" in str(v)


def test_clean_toy_run_has_no_violation() -> None:
    result = run(toy_config(seed=SEED))
    assert result.ok, result.violation
    assert result.acked > 20 and result.progress_ns is not None


def test_election_safety_catches_a_second_leader_in_a_term() -> None:
    def _observe(self: SimNode) -> None:
        self._read_status()
        if self.sim.clock.now_ns > 300_000_000:
            self.is_leader = True  # claims term 1, which node 1 leads
        self.sim.observe_status(self)

    result = run(toy_config(seed=SEED, node_factory=_bad_node(3, _observe=_observe)))
    _expect(result, "election_safety", node=3)
    assert result.violation is not None and result.violation.term == 1


def test_log_matching_catches_a_corrupted_entry() -> None:
    class CorruptingDisk(SimDisk):
        def append(self, entries: Sequence[Any]) -> None:
            from haperf._native.raftmsg import Entry

            bad = [
                Entry(e.term, e.index, b"corrupt", e.type) if e.index == 7 else e for e in entries
            ]
            super().append(bad)

    disks = iter([SimDisk(), CorruptingDisk(), SimDisk()])
    result = run(toy_config(seed=SEED, disk_factory=lambda: next(disks)))
    _expect(result, "log_matching", node=2)
    assert result.violation is not None and result.violation.index == 7


def test_state_machine_safety_catches_a_corrupted_apply() -> None:
    def on_apply(self: SimNode, index: int, data: bytes) -> None:
        SimNode.on_apply(self, index, b"flipped" if index == 5 else data)

    result = run(toy_config(seed=SEED, node_factory=_bad_node(2, on_apply=on_apply)))
    _expect(result, "state_machine_safety")
    assert result.violation is not None and result.violation.index == 5
    assert "node 2" in result.violation.message


def test_commit_monotonic_catches_a_commit_going_back() -> None:
    def _observe(self: SimNode) -> None:
        SimNode._observe(self)
        if self.commit >= 8 and not getattr(self, "went_back", False):
            self.went_back = True
            self.commit -= 3
            self.sim.observe_status(self)

    result = run(toy_config(seed=SEED, node_factory=_bad_node(3, _observe=_observe)))
    _expect(result, "commit_monotonic", node=3)


def test_leader_completeness_catches_a_leader_missing_committed_entries() -> None:
    class ForgetfulDisk(SimDisk):
        """Writes nothing: the node's log stays empty whatever it is sent."""

        def append(self, entries: Sequence[Any]) -> None:
            return None

    def _observe(self: SimNode) -> None:
        self._read_status()
        self.commit = 0  # consistent with its empty log, so only the leadership is wrong
        if self.sim.clock.now_ns > 500_000_000:
            self.is_leader, self.term = True, 2  # a leader of a new term, with an empty log
        self.sim.observe_status(self)

    disks = iter([SimDisk(), SimDisk(), ForgetfulDisk()])
    result = run(
        toy_config(
            seed=SEED,
            disk_factory=lambda: next(disks),
            node_factory=_bad_node(3, _observe=_observe),
        )
    )
    _expect(result, "leader_completeness", node=3)
    assert result.violation is not None and result.violation.term == 2


def test_no_ack_lost_catches_an_acknowledgement_of_the_wrong_entry() -> None:
    class OffByOneClient(Client):
        def on_apply(self, node_id: int, index: int, data: bytes) -> None:
            if self.pending.get(data) == node_id:
                index += 1  # tells the client its command landed one slot later than it did
            Client.on_apply(self, node_id, index, data)

    result = run(toy_config(seed=SEED, client_factory=OffByOneClient))
    _expect(result, "no_ack_lost")
    assert "lost" in result.violation.message if result.violation else False


def test_checker_names_are_the_six_guarantees() -> None:
    assert CHECKER_NAMES == (
        "election_safety",
        "log_matching",
        "leader_completeness",
        "state_machine_safety",
        "commit_monotonic",
        "no_ack_lost",
        "read_linearizable",
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_runs_are_deterministic(seed: int) -> None:
    first, second = run(toy_config(seed=seed)), run(toy_config(seed=seed))
    assert first.digest == second.digest and first.events == second.events
    other = run(toy_config(seed=seed + 100))
    assert other.digest != first.digest


def test_seeded_randomness_only() -> None:
    # The global RNG's state must not influence a run.
    random.seed(1)
    a = run(toy_config(seed=5)).digest
    random.seed(2)
    assert run(toy_config(seed=5)).digest == a
