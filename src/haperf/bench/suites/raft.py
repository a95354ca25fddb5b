"""Raft core benchmarks: commit cost on an in-process 3-node cluster with an instant network.

Owns the raft group rows raft.single_command and raft.batch_100 (the specification's targets).
One operation proposes on the leader (one command, or a batch of 100 in one append), then runs
Readys on all three nodes (RawNode + Host + MemoryStorage) and hands messages as objects between
them, until the command(s) are committed AND applied on the leader. Messages left over (the
followers learning the new commit index) are delivered in the next operation, as a steady
stream of commands would. No encoding, no I/O. The log is compacted every COMPACT_EVERY applied
entries (its cost amortized into the rows) so memory stays bounded over long runs.
"""

from haperf._native.raft import LEADER, Config, RawNode
from haperf._native.raftmsg import Message
from haperf.bench.registry import Benchmark, Op, register_all
from haperf.raft.host import Host
from haperf.raft.storage import MemoryStorage

COMMAND = b"set key 0123456789"
BATCH = 100
COMPACT_EVERY = 8192
ROUNDS_MAX = 1000


class _NullMachine:
    """A state machine that does nothing, so the rows measure Raft, not the application."""

    def apply(self, index: int, data: bytes) -> object:
        return None

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        return None


class InProcessCluster:
    """Three RawNodes + Hosts + MemoryStorage on an instant in-process network."""

    def __init__(self, ids: tuple[int, ...] = (1, 2, 3)) -> None:
        self.queue: list[Message] = []
        self.nodes = {i: RawNode(Config(i, ids), 1000 + i) for i in ids}
        self.hosts = [
            Host(node, MemoryStorage(), self.queue.extend, _NullMachine())
            for node in self.nodes.values()
        ]
        self.leader = self.nodes[ids[0]]
        self.leader_host = self.hosts[0]
        self.leader.campaign()
        self.settle()
        if self.leader.role != LEADER:
            raise AssertionError("the benchmark cluster did not elect node 1")
        self.next_compact = self.leader.applied + COMPACT_EVERY

    def pump(self) -> None:
        """One round: every host handles its Ready, then every queued message is delivered."""
        for host in self.hosts:
            host.process_ready()
        queue = self.queue
        if queue:
            batch = queue[:]
            queue.clear()
            nodes = self.nodes
            for m in batch:
                nodes[m.to].step(m)

    def settle(self) -> None:
        for _ in range(ROUNDS_MAX):
            self.pump()
            if not self.queue and not any(n.has_ready() for n in self.nodes.values()):
                return
        raise AssertionError("the benchmark cluster did not settle")

    def commit(self, index: int) -> None:
        """Pump until the leader has applied `index`."""
        leader_host = self.leader_host
        rounds = 0
        while leader_host.applied < index:
            self.pump()
            rounds += 1
            if rounds > ROUNDS_MAX:
                raise AssertionError(f"index {index} did not commit")
        if leader_host.applied >= self.next_compact:
            self.compact()

    def compact(self) -> None:
        self.settle()
        for host in self.hosts:
            host.compact()
        self.next_compact = self.leader_host.applied + COMPACT_EVERY

    def single(self) -> None:
        self.commit(self.leader.propose(COMMAND))

    def batch(self, commands: list[bytes]) -> None:
        first = self.leader.propose_batch(commands)
        self.commit(first + len(commands) - 1)


def _single() -> Op:
    cluster = InProcessCluster()
    return Op(cluster.single)


def _batch() -> Op:
    cluster = InProcessCluster()
    commands = [COMMAND] * BATCH
    return Op(cluster.batch, (commands,), ops_per_call=1)


register_all(
    [
        Benchmark(
            "raft.single_command",
            "raft",
            "propose 1 command on the leader -> committed and applied on it (3 nodes, in-process)",
            _single,
        ),
        Benchmark(
            "raft.batch_100",
            "raft",
            "propose a batch of 100 commands -> all applied on the leader (3 nodes, in-process)",
            _batch,
        ),
    ]
)
