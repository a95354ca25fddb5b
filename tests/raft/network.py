"""An in-process Raft test network: RawNodes + Hosts + MemoryStorage, messages passed as objects.

Owns Cluster (build, tick, deliver, partition, drop, crash/restart nodes) and KV (a state machine
that records what it applied). Invariants: delivery order is the send order (FIFO per run of
deliver()) unless `reorder` shuffles each batch; `dup_rate` delivers extra copies
and `delay_rate` holds messages back for a few rounds; every random
choice comes from one seeded random.Random, so a run reproduces from its seed; a cut link or
isolated node silently drops messages, like a network partition.
"""

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from haperf._native.raft import LEADER, Config, RawNode
from haperf._native.raftmsg import Entry, Message
from haperf.raft.host import Host
from haperf.raft.storage import MemoryStorage

ROUNDS_MAX = 10_000
DELAY_ROUNDS_MAX = 6  # a delayed message arrives 1 to this many delivery rounds late


def copy_message(m: Message, *, views: bool = False) -> Message:
    """A duplicate as a network would deliver it: a separate object with separate entries;
    `views` makes payloads memoryviews, as a zero-copy decoder hands them over."""

    def wrap(data: Any) -> Any:
        return memoryview(bytes(data)) if views else data

    entries = [Entry(e.term, e.index, wrap(e.data), e.type) for e in m.entries]
    return Message(
        m.type,
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        m.commit,
        m.reject,
        m.reject_hint,
        m.hint_term,
        entries,
        m.context,
        m.snapshot,
        m.snap_offset,
        wrap(m.snap_data),
        m.snap_done,
    )


class KV:
    """A state machine that records every applied (index, data) and keeps a key=value map."""

    def __init__(self) -> None:
        self.log: list[tuple[int, bytes]] = []
        self.data: dict[str, str] = {}
        self.snapshot_index = 0

    def apply(self, index: int, data: bytes) -> object:
        self.log.append((index, data))
        text = data.decode()
        if "=" in text:
            key, value = text.split("=", 1)
            self.data[key] = value
        return index

    def snapshot(self) -> bytes:
        last = self.log[-1][0] if self.log else self.snapshot_index
        return json.dumps({"data": self.data, "last": last}).encode()

    def restore(self, data: bytes) -> None:
        state = json.loads(data)
        self.data = dict(state["data"])
        self.snapshot_index = state["last"]
        self.log = []


class Cluster:
    """N nodes on an instant in-process network with partition and drop controls."""

    def __init__(
        self,
        ids: Iterable[int],
        *,
        seed: int = 1,
        learners: Iterable[int] = (),
        **config: Any,
    ) -> None:
        self.ids = sorted(ids)
        self.learners = sorted(learners)
        self.config = config
        self.rng = random.Random(seed)
        self.seed = seed
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.down: set[int] = set()
        self.drop_rate = 0.0
        self.drop_filter: Callable[[Message], bool] | None = None
        self.reorder = False
        self.dup_rate = 0.0
        self.views = False  # deliver copies whose payloads are memoryviews (zero-copy decode)
        self.delay_rate = 0.0
        self.held: list[tuple[int, Message]] = []  # (rounds left, message) held back
        self.delivered: list[Message] = []
        self.record = False
        self.nodes: dict[int, RawNode] = {}
        self.hosts: dict[int, Host] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.sms: dict[int, KV] = {}
        for node_id in self.ids + self.learners:
            self.add(node_id, self.ids, self.learners)

    def make_config(self, node_id: int, voters: Iterable[int], learners: Iterable[int]) -> Config:
        return Config(node_id, voters, learners, **self.config)

    def add(self, node_id: int, voters: Iterable[int] = (), learners: Iterable[int] = ()) -> None:
        """Start a fresh node (empty storage) with the given bootstrap configuration."""
        storage = MemoryStorage()
        node = RawNode(self.make_config(node_id, voters, learners), self.seed * 1000 + node_id)
        self._attach(node_id, node, storage, KV())

    def _attach(self, node_id: int, node: RawNode, storage: MemoryStorage, sm: KV) -> None:
        self.nodes[node_id] = node
        self.storages[node_id] = storage
        self.sms[node_id] = sm
        self.hosts[node_id] = Host(node, storage, self.queue.extend, sm)

    def restart(self, node_id: int) -> None:
        """Crash and restart: keep only what the storage persisted (volatile state is lost)."""
        old = self.nodes[node_id]
        storage = self.storages[node_id]
        hard_state, snapshot, entries = storage.initial_state()
        sm = KV()
        if snapshot is not None:
            sm.restore(snapshot[1])
        node = RawNode(
            self.make_config(node_id, old.config.voters, old.config.learners),
            self.seed * 7919 + node_id + old.term,
            hard_state=hard_state,
            snapshot=snapshot,
            entries=entries,
        )
        self._attach(node_id, node, storage, sm)

    # ---------------------------------------------------------------- network controls

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def partition(self, *groups: Iterable[int]) -> None:
        sets = [set(g) for g in groups]
        for a in self.nodes:
            for b in self.nodes:
                if a != b and not any(a in s and b in s for s in sets):
                    self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    # ---------------------------------------------------------------- running

    def process(self) -> bool:
        """Run every node's Readys until none has one; True if any did."""
        any_work = False
        for node_id in list(self.nodes):
            if node_id in self.down:
                continue
            host = self.hosts[node_id]
            while host.process_ready():
                any_work = True
        return any_work

    def deliver(self) -> int:
        """Deliver everything queued (in order); returns how many messages arrived."""
        batch = self.queue[:]
        self.queue.clear()
        if self.held:
            due = [m for left, m in self.held if left <= 1]
            self.held = [(left - 1, m) for left, m in self.held if left > 1]
            batch += due
        if self.delay_rate:
            kept = []
            for m in batch:
                if self.rng.random() < self.delay_rate:
                    self.held.append((self.rng.randint(1, DELAY_ROUNDS_MAX), m))
                else:
                    kept.append(m)
            batch = kept
        if self.dup_rate:
            batch += [copy_message(m) for m in batch if self.rng.random() < self.dup_rate]
        if self.reorder:
            self.rng.shuffle(batch)
        n = 0
        for sent in batch:
            m = copy_message(sent, views=True) if self.views else sent
            if m.to not in self.nodes or m.to in self.down or m.frm in self.down:
                continue
            if (m.frm, m.to) in self.cut:
                continue
            if self.drop_rate and self.rng.random() < self.drop_rate:
                continue
            if self.drop_filter is not None and self.drop_filter(m):
                continue
            if self.record:
                self.delivered.append(m)
            self.nodes[m.to].step(m)
            n += 1
        return n

    def stabilize(self, rounds_max: int = ROUNDS_MAX) -> None:
        for _ in range(rounds_max):
            worked = self.process()
            if not self.queue and not worked and not self.held:
                return
            self.deliver()
        raise AssertionError(f"cluster did not settle within {rounds_max} rounds")

    def tick(self, n: int = 1, *, only: Iterable[int] | None = None) -> None:
        targets = list(self.nodes) if only is None else list(only)
        for _ in range(n):
            for node_id in targets:
                if node_id not in self.down:
                    self.nodes[node_id].tick()
            self.stabilize()

    def elect(self, node_id: int) -> None:
        self.nodes[node_id].campaign()
        self.stabilize()
        assert self.nodes[node_id].role == LEADER, self.nodes[node_id].status()

    def leader(self) -> int:
        """The id of the leader with the highest term among running nodes (0 if none)."""
        best, best_term = 0, -1
        for node_id, node in self.nodes.items():
            if node_id not in self.down and node.role == LEADER and node.term > best_term:
                best, best_term = node_id, node.term
        return best

    def propose(self, data: bytes, node_id: int | None = None) -> int:
        target = self.leader() if node_id is None else node_id
        proposal = self.hosts[target].propose(data)
        self.stabilize()
        return 0 if proposal is None else proposal.index

    def applied_data(self, node_id: int) -> list[bytes]:
        return [d for _, d in self.sms[node_id].log]
