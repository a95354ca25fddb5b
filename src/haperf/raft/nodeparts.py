"""The pieces RaftNode is built from: its configuration, waiters, replicated member table, and
fsync thread.

Owns NodeConfig (validated at construction), the Transport protocol the node needs, the waiter
objects (one per propose/propose_many call, per read, per internal proposal), the
ReplicatedMachine that wraps the user's state machine (internal member entries and the snapshot
envelope; user commands never see INTERNAL_PREFIX entries) and the SyncThread that runs fsync off
the loop. Invariants: a waiter completes at most once; the member table is replicated state (it
changes only by applying log entries or restoring a snapshot); the sync thread touches only the
storage, and only while the loop leaves it alone (RaftNode's `_syncing`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from haperf._native.raft import PROPOSAL_ENTRIES_MAX
from haperf._native.raftmsg import Message
from haperf.errors import CommitUnknownError, ConfigError
from haperf.raft.host import PENDING_PROPOSALS_MAX, PENDING_READS_MAX, Proposal
from haperf.runtime.address import parse_address

AckMode = Literal["quorum", "all", "leader"]
ACK_MODES = ("quorum", "all", "leader")

# An internal entry (member address + metadata) starts with these bytes; user commands may not.
INTERNAL_PREFIX = b"\xffhaperf.member\x00"
_SNAP_MAGIC = b"HPNS"  # node snapshot envelope: magic, u32 members length, members JSON, user


class Transport(Protocol):
    """What the node needs from a transport (haperf.runtime.transport.TcpTransport)."""

    @property
    def address(self) -> str: ...
    async def start(self) -> None: ...
    def send(self, messages: list[Message]) -> None: ...
    def set_peer(self, node_id: int, address: str) -> None: ...
    def remove_peer(self, node_id: int) -> None: ...
    def peer_stats(self) -> dict[int, dict[str, Any]]: ...
    async def close(self) -> None: ...


TransportFactory = Callable[..., Transport]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One node's configuration; bad values raise ConfigError at construction.

    `members` are the bootstrap voters (id -> raft "host:port"); a node that joins a running
    cluster later uses the SAME bootstrap members as the founders, sets `join=True`, its own
    `listen` address, and `dial` entries for current members that are not founders.
    """

    id: int
    members: Mapping[int, str]
    data_dir: str | None = None
    listen: str | None = None
    dial: Mapping[int, str] = field(default_factory=dict)
    tick_ns: int = 10_000_000
    heartbeat_ticks: int = 5
    election_ticks: int = 15
    ack: AckMode = "quorum"
    lease_read: bool = False
    fsync: bool = True
    snapshot_entries: int = 100_000
    proposal_timeout_ns: int = 5_000_000_000
    member_metadata: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    join: bool = False
    cluster_id: bytes = b"haperf"
    # Where the time goes: send a leader's appends before its own fsync (thesis 10.2.1) and
    # run the fsync on a dedicated thread (the loop keeps receiving meanwhile).
    parallel_append: bool = True
    sync_thread: bool = True  # only used with a data_dir and fsync on
    proposals_pending_max: int = PENDING_PROPOSALS_MAX
    reads_pending_max: int = PENDING_READS_MAX
    # "all" ack: a voter is healthy when the leader heard from it within this long (0 = one
    # election timeout).
    healthy_ns: int = 0
    # In-flight appends per follower: at most inflight_msgs_max x msg_bytes_max bytes (32 MiB,
    # the transport's per-peer queue), so a slow follower is throttled by Raft's flow control
    # before the transport has to drop frames (heartbeats among them). Large messages measured
    # faster than many small ones under deep pipelining.
    inflight_msgs_max: int = 32
    msg_bytes_max: int = 1 << 20
    snapshot_chunk_bytes: int = 1 << 20
    seed: int | None = None
    # TEST-ONLY planted bug for the chaos harness: read()/barrier() answer from the local state
    # machine without ReadIndex (stale reads; a chaos run must flag it non-linearizable).
    unsafe_local_reads: bool = False

    def __post_init__(self) -> None:
        if self.id <= 0:
            raise ConfigError(f"node id must be > 0, got {self.id}")
        if not self.members:
            raise ConfigError("members is empty: give the bootstrap voters (id -> host:port)")
        if any(int(k) <= 0 for k in self.members):
            raise ConfigError(f"member ids must be > 0, got {sorted(self.members)}")
        if self.id not in self.members and not self.join:
            raise ConfigError(
                f"node {self.id} is not among the bootstrap members {sorted(self.members)}; "
                "add it, or set join=True (and listen) for a node added at run time"
            )
        if self.id not in self.members and self.listen is None:
            raise ConfigError(f"node {self.id} is not a bootstrap member: give its listen address")
        for i, address in self.members.items():
            parse_address(address, what=f"members[{i}]")
        for i, address in self.dial.items():
            parse_address(address, what=f"dial[{i}]")
        if self.listen is not None:
            parse_address(self.listen, what="listen")
        if self.tick_ns <= 0:
            raise ConfigError(f"tick_ns must be > 0, got {self.tick_ns}")
        if self.heartbeat_ticks < 1 or self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError(
                f"need 1 <= heartbeat_ticks < election_ticks, got {self.heartbeat_ticks} and "
                f"{self.election_ticks}"
            )
        if self.ack not in ACK_MODES:
            raise ConfigError(f"ack must be one of {ACK_MODES}, got {self.ack!r}")
        if self.snapshot_entries < 1:
            raise ConfigError(f"snapshot_entries must be >= 1, got {self.snapshot_entries}")
        if self.proposal_timeout_ns <= 0:
            raise ConfigError(f"proposal_timeout_ns must be > 0, got {self.proposal_timeout_ns}")
        if not 1 <= self.proposals_pending_max <= PENDING_PROPOSALS_MAX:
            raise ConfigError(
                f"proposals_pending_max must be in [1, {PENDING_PROPOSALS_MAX}], got "
                f"{self.proposals_pending_max}"
            )
        if not 1 <= self.reads_pending_max <= PENDING_READS_MAX:
            raise ConfigError(
                f"reads_pending_max must be in [1, {PENDING_READS_MAX}], got "
                f"{self.reads_pending_max}"
            )
        if self.healthy_ns < 0:
            raise ConfigError(f"healthy_ns must be >= 0, got {self.healthy_ns}")

    @property
    def election_timeout_ns(self) -> int:
        return self.election_ticks * self.tick_ns


# ---------------------------------------------------------------------------- waiters


class Waiter:
    """One propose/propose_many call: a future, its entries' results, its ack mode, deadline."""

    __slots__ = (
        "ack",
        "acked_ns",
        "appended",
        "count",
        "deadline_ns",
        "done",
        "first",
        "future",
        "last",
        "many",
        "remaining",
        "results",
    )

    def __init__(
        self,
        future: asyncio.Future[Any],
        count: int,
        ack: str,
        deadline_ns: int,
        many: bool,
    ) -> None:
        self.future = future
        self.count = count
        self.first = 0
        self.last = 0
        self.results: list[object] = [None] * count
        self.remaining = 0  # marker proposals (first and last index) not yet resolved
        self.ack = ack
        self.deadline_ns = deadline_ns
        self.appended = False
        self.done = False
        self.many = many
        self.acked_ns = 0

    def succeed(self) -> None:
        if self.done:
            return
        self.done = True
        if not self.future.done():
            if self.ack == "leader":
                # Acknowledged before apply: None for each command (the results list keeps
                # filling in as entries apply, so it is not handed out).
                self.future.set_result([None] * self.count if self.many else None)
            else:
                self.future.set_result(self.results if self.many else self.results[0])

    def fail(self, error: BaseException) -> None:
        if self.done:
            return
        self.done = True
        if not self.future.done():
            self.future.set_exception(error)


class ReadWaiter:
    __slots__ = ("barrier", "deadline_ns", "done", "future", "query")

    def __init__(self, future: asyncio.Future[Any], query: object, barrier: bool, deadline: int):
        self.future = future
        self.query = query
        self.barrier = barrier
        self.deadline_ns = deadline
        self.done = False

    def fail(self, error: BaseException) -> None:
        if self.done:
            return
        self.done = True
        if not self.future.done():
            self.future.set_exception(error)


# ---------------------------------------------------------------------------- state machine


class ReplicatedMachine:
    """Wraps the user's state machine: internal member entries and the snapshot envelope.

    Member addresses and metadata are replicated state: they are applied from INTERNAL_PREFIX
    entries and carried in every snapshot, so every node (a restarted or a new one too) can
    dial every member and answer member_metadata(id).
    """

    def __init__(self, user: Any, on_member: Callable[[int, str | None], None]) -> None:
        self.user = user
        self._user_apply = user.apply
        self.members: dict[int, tuple[str, dict[str, str]]] = {}
        self._on_member = on_member
        # The leader's proposal waiters in index order (RaftNode._submit_proposals).
        self.capture: collections.deque[Waiter] = collections.deque()

    def apply(self, index: int, data: bytes) -> object:
        if data[0] == 0xFF and data.startswith(INTERNAL_PREFIX):
            return self._apply_internal(data)
        result = self._user_apply(index, data)
        capture = self.capture
        if capture:
            # The leader's waiters in index order: keep each result in its waiter.
            w = capture[0]
            while index > w.last:
                capture.popleft()
                if not capture:
                    return result
                w = capture[0]
            if index >= w.first:
                w.results[index - w.first] = result
        return result

    def _apply_internal(self, data: bytes) -> object:
        doc = json.loads(data[len(INTERNAL_PREFIX) :])
        node_id = int(doc["id"])
        if doc.get("op") == "del":
            self.members.pop(node_id, None)
            self._on_member(node_id, None)
        else:
            address = str(doc["address"])
            meta = {str(k): str(v) for k, v in dict(doc.get("metadata") or {}).items()}
            self.members[node_id] = (address, meta)
            self._on_member(node_id, address)
        return None

    def snapshot(self) -> bytes:
        members = json.dumps(
            {str(k): [a, m] for k, (a, m) in sorted(self.members.items())}, sort_keys=True
        ).encode()
        user = bytes(self.user.snapshot())
        return _SNAP_MAGIC + len(members).to_bytes(4, "big") + members + user

    def restore(self, data: bytes) -> None:
        data = bytes(data)
        if data[:4] != _SNAP_MAGIC:
            raise ConfigError("snapshot data lacks the RaftNode envelope (not written by RaftNode)")
        n = int.from_bytes(data[4:8], "big")
        doc = json.loads(data[8 : 8 + n])
        self.members = {int(k): (str(v[0]), dict(v[1])) for k, v in doc.items()}
        for node_id, (address, _meta) in self.members.items():
            self._on_member(node_id, address)
        self.user.restore(data[8 + n :])


def internal_member_entry(node_id: int, address: str | None, metadata: Mapping[str, str]) -> bytes:
    """The payload of an internal entry that sets (or, address None, deletes) a member."""
    doc: dict[str, object] = {"id": node_id}
    if address is None:
        doc["op"] = "del"
    else:
        doc.update(op="set", address=address, metadata=dict(metadata))
    return INTERNAL_PREFIX + json.dumps(doc, sort_keys=True).encode()


# ---------------------------------------------------------------------------- fsync thread


class SyncThread:
    """A dedicated thread that runs storage.sync() and hands the result back to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], Callable[..., None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], done: Callable[[BaseException | None], None]) -> None:
        self._jobs.put((job, done))

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, done = item
            error: BaseException | None = None
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which fails the node
                error = exc
            try:
                self._loop.call_soon_threadsafe(done, error)
            except RuntimeError:
                return  # the loop is closed: the node is gone

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


PROPOSAL_BATCH_MAX = PROPOSAL_ENTRIES_MAX  # commands per core append


class InternalWaiter:
    """Waiter for the node's own proposals (member entries, membership changes)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def resolve(self, p: Proposal) -> None:
        if self.future.done():
            return
        if p.error is not None:
            self.future.set_exception(p.error)
        else:
            self.future.set_result(p.result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    async def wait(self, timeout_ns: int) -> object:
        try:
            return await asyncio.wait_for(asyncio.shield(self.future), timeout_ns / 1e9)
        except TimeoutError:
            raise CommitUnknownError(
                "membership entry not applied in time; it may still apply: check status()"
            ) from None
