"""RaftNode: one Raft member on an asyncio (uvloop) loop, over a transport and a storage.

Owns RaftNode (its building blocks, NodeConfig included, are in haperf.raft.nodeparts). The
ordering rules stay in haperf.raft.host; this shell only decides WHEN to run them:

- One Ready per loop iteration: inbound messages, proposals and reads only mark the node dirty;
  one `call_soon` flush steps them, submits all buffered proposals as one batch (one append, one
  MSG_APP per follower, one fsync: group commit) and all buffered reads as one ReadIndex round.
- Ticks come from the loop clock with `call_at` on a fixed grid (no drift accumulation); missed
  ticks are caught up (bounded), so a paused leader's lease cannot outlive real time.
- Persist before send, except the leader's own appends (thesis 10.2.1), which go out before its
  fsync. That is safe here because ready() and advance() alternate: a commit index leaves the
  node or reaches the state machine only through a later Ready, taken after the fsync of every
  earlier one, and a commit needs a follower's acknowledgement of an earlier Ready's entries.
  When the leader alone is a quorum (one voter) that fails, so then it sends after its fsync
  (see docs/raft-node.md, "Ordering").
- The fsync can run on a dedicated thread (NodeConfig.sync_thread); while it runs, the loop only
  buffers (messages, proposals, reads, ticks) and never touches the core or the storage.
- Every waiting map has a named maximum; stop() fails every waiter with the right error type.
Internal entries (member address/metadata) carry INTERNAL_PREFIX and never reach the user state
machine; user commands with that prefix are refused.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import heapq
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from haperf._native.confchange import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE_NODE,
    ConfChange,
    Membership,
)
from haperf._native.raft import FOLLOWER, LEADER, ROLE_NAMES, Config, RawNode, Ready
from haperf._native.raftmsg import Message
from haperf._native.tracker import STATE_NAMES
from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedError,
)
from haperf.raft.durable import DiskStorage
from haperf.raft.host import Host, Proposal, ReadRequest
from haperf.raft.nodeparts import (
    ACK_MODES,
    INTERNAL_PREFIX,
    PROPOSAL_BATCH_MAX,
    AckMode,
    InternalWaiter,
    NodeConfig,
    ReadWaiter,
    ReplicatedMachine,
    SyncThread,
    Transport,
    TransportFactory,
    Waiter,
    internal_member_entry,
)
from haperf.raft.storage import MemoryStorage
from haperf.runtime.transport import TcpTransport

__all__ = [
    "ACK_MODES",
    "INTERNAL_PREFIX",
    "AckMode",
    "NodeConfig",
    "RaftNode",
    "Transport",
    "TransportFactory",
    "internal_member_entry",
]

log = logging.getLogger("haperf.raft.node")

READY_ROUNDS_MAX = 64  # Readys handled per flush before yielding to the loop
TICK_CATCH_UP_MAX = 64  # missed ticks replayed at once after a stall (>= 2 election timeouts)
APPEND_TIMES_MAX = 4096  # (index, time) samples kept for lag_seconds
INBOUND_MAX = 1 << 20  # messages buffered while an fsync runs (beyond: dropped, Raft resends)
ROLE_CALLBACKS_MAX = 64
WINDOW_WATCH_MAX = 65536  # ack="leader" entries whose loss window is being measured

# ---------------------------------------------------------------------------- the node


def _default_transport(*args: Any, **kwargs: Any) -> Transport:
    """The runtime shell's TCP transport (haperf.runtime, NODE_API.md section 1)."""
    return TcpTransport(*args, **kwargs)


class RaftNode:
    """A Raft member: `await start()`, `await propose(cmd)`, `await read(q)`, `await stop()`.

    All methods run on the loop that called start(); use EmbeddedRaftNode from other threads.
    """

    def __init__(
        self,
        config: NodeConfig,
        state_machine: Any,
        *,
        metadata: Mapping[str, str] | None = None,
        transport_factory: TransportFactory | None = None,
        storage: Any = None,
    ) -> None:
        self.config = config
        self._user_sm = state_machine
        self._metadata = dict(metadata or {})
        self._transport_factory = transport_factory or _default_transport
        self._storage: Any = storage
        self._machine = ReplicatedMachine(state_machine, self._member_changed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._node: RawNode | None = None
        self._host: Host | None = None
        self._transport: Transport | None = None
        self._sync_thread: SyncThread | None = None
        self._started = False
        self._stopping = False
        self._stopped = False
        self._stopped_event: asyncio.Event | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._tick_s = config.tick_ns / 1e9
        self._flush_scheduled = False
        self._syncing = False
        self._sync_done_waiters: list[asyncio.Future[None]] = []
        # Messages received while an fsync runs, with their arrival time (loop clock).
        self._inbound: list[tuple[float, list[Message]]] = []
        self._inbound_n = 0
        self._buf_cmds: list[bytes] = []
        self._buf_waiters: list[Waiter] = []
        self._buf_reads: list[ReadWaiter] = []
        self._pending_commands = 0  # commands buffered or appended and not resolved
        self._pending_reads = 0
        self._waiters_by_deadline: collections.deque[Waiter] = collections.deque()
        self._odd_deadlines: list[tuple[int, int, Waiter]] = []
        self._seq = 0
        self._leader_acks: collections.deque[Waiter] = collections.deque()
        self._all_acks: collections.deque[Waiter] = collections.deque()
        # Reads with the default timeout expire in arrival order (a deque); reads with their own
        # timeout_ns go to a heap, as proposals do, so a short one is not stuck behind a long one.
        self._read_deadlines: collections.deque[ReadWaiter] = collections.deque()
        self._odd_read_deadlines: list[tuple[int, int, ReadWaiter]] = []
        self._heard_ns: dict[int, int] = {}
        self._append_idx: list[int] = []
        self._append_ns: list[int] = []
        self._durable_tv = (0, 0)
        self._durable_last = 0  # the last log index known durable on this node
        self._snap_index = 0
        self._role_callbacks: list[Callable[[str, int], None]] = []
        self._leader_futures: list[asyncio.Future[int]] = []
        self._failure: BaseException | None = None
        self._window_watch: collections.deque[Waiter] = collections.deque()
        self._publish_pending = False
        self._campaign_pending = False
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "proposals",
                "proposals_failed",
                "reads",
                "read_rounds",
                "readys",
                "syncs",
                "early_sends",
                "messages_sent",
                "messages_received",
                "ticks",
                "snapshots_taken",
                "snapshots_installed",
                "role_changes",
                "ack_leader",
                "ack_all",
                "ack_leader_window_ns_sum",
                "ack_leader_window_ns_max",
                "ack_leader_window_count",
                "inbound_dropped",
            ),
            0,
        )

    # ------------------------------------------------------------------ properties

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def is_leader(self) -> bool:
        return (
            self._node is not None
            and self._node.role == LEADER
            and not self._stopping
            and self._failure is None
        )

    @property
    def leader_id(self) -> int:
        return 0 if self._node is None else self._node.lead

    @property
    def term(self) -> int:
        return 0 if self._node is None else self._node.term

    @property
    def address(self) -> str:
        if self._transport is None:
            raise NodeStoppedError("the node is not started: call start() first")
        return self._transport.address

    @property
    def raw(self) -> RawNode:
        """The core (read-only use: status, progress; tests)."""
        if self._node is None:
            raise NodeStoppedError("the node is not started: call start() first")
        return self._node

    def member_metadata(self, node_id: int) -> Mapping[str, str]:
        """The replicated metadata of member `node_id` (falls back to the static config)."""
        got = self._machine.members.get(node_id)
        if got is not None and got[1]:
            return got[1]
        if node_id == self.id and self._metadata:
            return self._metadata
        return self.config.member_metadata.get(node_id, {})

    def member_address(self, node_id: int) -> str | None:
        got = self._machine.members.get(node_id)
        if got is not None:
            return got[0]
        return self.config.members.get(node_id)

    def on_role_change(self, callback: Callable[[str, int], None]) -> None:
        """Call `callback(role_name, leader_id)` on the loop whenever role or leader change."""
        if len(self._role_callbacks) >= ROLE_CALLBACKS_MAX:
            raise ConfigError(f"at most {ROLE_CALLBACKS_MAX} role callbacks")
        self._role_callbacks.append(callback)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RaftNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the storage, restore from it, start the transport and the tick timer."""
        if self._started:
            raise ConfigError("start() was already called on this node")
        self._started = True
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped_event = asyncio.Event()
        if self._storage is None:
            if cfg.data_dir is None:
                self._storage = MemoryStorage()
            else:
                # The durable storage (NODE_API.md section 2): WAL + hard state + snapshots.
                self._storage = DiskStorage(cfg.data_dir, fsync=cfg.fsync)
        try:
            await self._start_on_storage()
        except BaseException:
            # A bad address, a taken port, a failing restore: release the data directory (its
            # lock) too, and let a later stop() return at once.
            close = getattr(self._storage, "close", None)
            if close is not None:
                close()
            self._stopping = self._stopped = True
            self._stopped_event.set()
            raise

    async def _start_on_storage(self) -> None:
        """start() once the storage is open: restore, build the core and host, start the
        transport and the tick timer."""
        cfg = self.config
        loop = self._loop
        assert loop is not None and self._storage is not None
        hard_state, snapshot, entries = self._storage.initial_state()
        listen = cfg.listen or cfg.members[cfg.id]
        peers = {i: a for i, a in cfg.members.items() if i != cfg.id}
        peers.update({i: a for i, a in cfg.dial.items() if i != cfg.id})
        self._transport = self._transport_factory(
            cfg.id,
            listen,
            peers,
            self._on_messages,
            cluster_id=cfg.cluster_id,
            on_unreachable=self._on_unreachable,
        )
        if snapshot is not None:
            self._machine.restore(snapshot[1])
            self._snap_index = snapshot[0].index
        seed = cfg.seed if cfg.seed is not None else random.SystemRandom().getrandbits(63)
        core_cfg = Config(
            cfg.id,
            sorted(cfg.members),
            election_tick=cfg.election_ticks,
            heartbeat_tick=cfg.heartbeat_ticks,
            lease_read=cfg.lease_read,
            inflight_msgs_max=cfg.inflight_msgs_max,
            msg_bytes_max=cfg.msg_bytes_max,
            snapshot_chunk_bytes=cfg.snapshot_chunk_bytes,
            pending_reads_max=min(cfg.reads_pending_max, 1 << 16),
        )
        node = RawNode(core_cfg, seed, hard_state=hard_state, snapshot=snapshot, entries=entries)
        self._durable_tv = (hard_state.term, hard_state.vote)
        self._durable_last = node.last_index
        self._node = node
        host = Host(node, self._storage, self._send, self._machine)
        host.on_done = self._on_done
        host.on_read = self._on_read
        self._host = host
        await self._transport.start()
        if cfg.sync_thread and cfg.data_dir is not None and cfg.fsync:
            self._sync_thread = SyncThread(loop, f"haperf-raft-sync-{cfg.id}")
        self._next_tick = loop.time() + self._tick_s
        self._tick_handle = loop.call_at(self._next_tick, self._on_tick)
        if len(cfg.members) == 1 and cfg.id in cfg.members and node.role == FOLLOWER:
            node.campaign()  # a one-node cluster need not wait an election timeout
        self._kick()

    async def stop(self, *, transfer: bool = False, transfer_timeout_ns: int | None = None) -> None:
        """Stop gracefully (idempotent): optionally hand leadership over first, then fail every
        waiter (NodeStoppedError if not appended, CommitUnknownError if appended), close the
        transport and the storage."""
        if self._stopping:
            if self._stopped_event is not None:
                await self._stopped_event.wait()
            return
        if not self._started or self._loop is None:
            self._stopping = self._stopped = True
            return
        if transfer and self.is_leader:
            target = self._transfer_target()
            if target:
                try:
                    await self.transfer_leadership(target, timeout_ns=transfer_timeout_ns)
                except (ProposalDroppedError, NotLeaderError) as exc:
                    log.info("node %d: leadership transfer before stop failed: %s", self.id, exc)
        self._stopping = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._fail_all(NodeStoppedError(f"node {self.id} is stopping"))
        while self._syncing:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._sync_done_waiters.append(fut)
            await fut
        if self._sync_thread is not None:
            await asyncio.to_thread(self._sync_thread.close)
        if self._transport is not None:
            await self._transport.close()
        close = getattr(self._storage, "close", None)
        if close is not None:
            close()
        self._stopped = True
        for lf in self._leader_futures:
            if not lf.done():
                lf.set_exception(NodeStoppedError(f"node {self.id} stopped"))
        self._leader_futures.clear()
        if self._stopped_event is not None:
            self._stopped_event.set()

    def _transfer_target(self) -> int:
        node = self._node
        assert node is not None
        best, best_match = 0, -1
        for v in node.membership.voters:
            if v == self.id:
                continue
            pr = node.progress(v)
            if pr is not None and pr.match > best_match:
                best, best_match = v, pr.match
        return best

    def _check_open(self) -> None:
        if self._stopping:
            raise NodeStoppedError(f"node {self.id} is stopped; it takes no more requests")
        if self._node is None:
            raise NodeStoppedError("the node is not started: call start() first")
        if self._failure is not None:
            raise NodeStoppedError(f"node {self.id} failed: {self._failure!r}")

    # ------------------------------------------------------------------ proposals

    def _now_ns(self) -> int:
        assert self._loop is not None
        return int(self._loop.time() * 1e9)

    def _new_waiter(
        self, count: int, ack: str | None, timeout_ns: int | None, many: bool
    ) -> Waiter:
        self._check_open()
        node = self._node
        assert node is not None and self._loop is not None
        if node.role != LEADER:
            raise NotLeaderError(node.lead, self.id)
        mode = self.config.ack if ack is None else ack
        if mode not in ACK_MODES:
            raise ConfigError(f"ack must be one of {ACK_MODES}, got {mode!r}")
        if self._pending_commands + count > self.config.proposals_pending_max:
            raise ProposalDroppedError(
                f"{self._pending_commands} commands are waiting on node {self.id} "
                f"(proposals_pending_max={self.config.proposals_pending_max}); retry later"
            )
        t = self.config.proposal_timeout_ns if timeout_ns is None else timeout_ns
        if t <= 0:
            raise ConfigError(f"timeout_ns must be > 0, got {t}")
        w = Waiter(self._loop.create_future(), count, mode, self._now_ns() + t, many)
        if timeout_ns is None:
            self._waiters_by_deadline.append(w)
        else:
            self._seq += 1
            heapq.heappush(self._odd_deadlines, (w.deadline_ns, self._seq, w))
        self._pending_commands += count
        return w

    @staticmethod
    def _check_command(command: bytes) -> None:
        if not command:
            raise ConfigError("a command must be non-empty bytes")
        if command[0] == 0xFF and bytes(command[: len(INTERNAL_PREFIX)]) == INTERNAL_PREFIX:
            raise ConfigError("commands starting with INTERNAL_PREFIX are reserved for the node")

    async def propose(
        self, command: bytes, *, ack: str | None = None, timeout_ns: int | None = None
    ) -> object:
        """Replicate `command`; returns state_machine.apply's result on this node (None with
        ack="leader"). NotLeaderError / ProposalDroppedError: not applied; CommitUnknownError:
        unknown; NodeStoppedError: the node stopped."""
        self._check_command(command)
        w = self._new_waiter(1, ack, timeout_ns, False)
        self._buf_cmds.append(command)
        self._buf_waiters.append(w)
        self._kick()
        return await w.future

    async def propose_many(
        self, commands: Sequence[bytes], *, ack: str | None = None, timeout_ns: int | None = None
    ) -> list[object]:
        """Replicate several commands in one append; their results in order (one outcome for
        the whole batch: they are contiguous in the log and commit together)."""
        if not commands:
            return []
        if len(commands) > PROPOSAL_BATCH_MAX:
            raise ConfigError(f"propose_many takes at most {PROPOSAL_BATCH_MAX} commands")
        for c in commands:
            self._check_command(c)
        w = self._new_waiter(len(commands), ack, timeout_ns, True)
        self._buf_cmds.extend(commands)
        self._buf_waiters.append(w)
        self._kick()
        result: list[object] = await w.future
        return result

    def _submit_proposals(self) -> None:
        """Append every buffered command in as few core batches as possible (group commit)."""
        host = self._host
        node = self._node
        assert host is not None and node is not None
        cmds, waiters = self._buf_cmds, self._buf_waiters
        self._buf_cmds, self._buf_waiters = [], []
        if any(w.done for w in waiters):
            # A waiter failed while buffered (timeout): its commands must never be appended.
            kept_cmds: list[bytes] = []
            pos = 0
            for w in waiters:
                if not w.done:
                    kept_cmds.extend(cmds[pos : pos + w.count])
                pos += w.count
            cmds = kept_cmds
            waiters = [w for w in waiters if not w.done]
        if node.role != LEADER:
            err = NotLeaderError(node.lead, self.id)
            for w in waiters:
                self._fail_waiter(w, err)
            return
        proposals = host.proposals
        capture = self._machine.capture
        pos = 0
        k = 0
        while k < len(waiters):
            # Group waiters into one core batch of at most PROPOSAL_BATCH_MAX commands.
            start_k, start_pos, n = k, pos, 0
            while k < len(waiters) and n + waiters[k].count <= PROPOSAL_BATCH_MAX:
                n += waiters[k].count
                k += 1
            group = waiters[start_k:k]
            try:
                first = node.propose_batch(cmds[start_pos : start_pos + n])
            except (ProposalDroppedError, NotLeaderError, ConfigError) as exc:
                for w in group:
                    self._fail_waiter(w, exc)
                pos += n
                continue
            term = node.term
            index = first
            for w in group:
                w.first = index
                w.last = index + w.count - 1
                index += w.count
                w.appended = True
                # Results are captured as entries apply (ReplicatedMachine.capture); only the first
                # and the last index are tracked by the host, to learn by their terms whether
                # the whole batch is ours (Log Matching: same index and term, same prefix).
                proposals[w.first] = Proposal(w.first, term, waiter=w)
                w.remaining = 1
                if w.last != w.first:
                    proposals[w.last] = Proposal(w.last, term, waiter=w)
                    w.remaining = 2
                capture.append(w)
                if w.ack == "leader":
                    self._leader_acks.append(w)
            pos += n
        self.counters["proposals"] += len(cmds)

    def _fail_waiter(self, w: Waiter, error: BaseException) -> None:
        if not w.done:
            self._pending_commands -= w.count
            self.counters["proposals_failed"] += w.count
            w.fail(error)

    def _finish_waiter(self, w: Waiter) -> None:
        if not w.done:
            self._pending_commands -= w.count
            w.succeed()

    def _on_done(self, p: Proposal) -> None:
        """Host callback: proposal `p` applied (result) or failed (error)."""
        w = p.waiter
        if w is None:
            return
        if isinstance(w, InternalWaiter):
            w.resolve(p)
            return
        assert isinstance(w, Waiter)
        if w.done:
            return
        if p.error is not None:
            if p.index == w.last and w.last != w.first and w.remaining == 1:
                # The first entry was ours and applied, the last was overwritten: a prefix of
                # the batch applied (a leader change in between).
                self._fail_waiter(
                    w,
                    CommitUnknownError(
                        f"only part of the batch at {w.first}..{w.last} applied before a leader "
                        "change; read to find out which commands did"
                    ),
                )
            else:
                self._fail_waiter(w, p.error)
            return
        w.remaining -= 1
        if w.remaining == 0:
            if w.ack == "all":
                self._all_acks.append(w)
            elif w.ack == "quorum":
                self._finish_waiter(w)

    # ------------------------------------------------------------------ reads

    async def read(self, query: object = None, *, timeout_ns: int | None = None) -> object:
        """A linearizable read: state_machine.query(query) once this node has applied the read
        index confirmed by the leader (ReadIndex, thesis 6.4; lease reads when configured)."""
        q = getattr(self._user_sm, "query", None)
        if q is None:
            raise ConfigError("the state machine has no query(q) method; use barrier() instead")
        if not self.config.unsafe_local_reads:
            await self._read(query, False, timeout_ns)
        else:
            self._check_open()
        return q(query)

    async def barrier(self, *, timeout_ns: int | None = None) -> int:
        """Linearizable read barrier: returns the read index; after it returns (before the next
        await) reading the state machine directly is linearizable."""
        if self.config.unsafe_local_reads:
            self._check_open()
            assert self._host is not None
            return self._host.applied
        index: int = await self._read(None, True, timeout_ns)
        return index

    async def _read(self, query: object, barrier: bool, timeout_ns: int | None) -> int:
        self._check_open()
        node = self._node
        assert node is not None and self._loop is not None
        if node.lead == 0:
            raise NotLeaderError(0, self.id)
        if self._pending_reads >= self.config.reads_pending_max:
            raise ProposalDroppedError(
                f"{self._pending_reads} reads are waiting on node {self.id}; retry later"
            )
        t = self.config.proposal_timeout_ns if timeout_ns is None else timeout_ns
        if t <= 0:
            raise ConfigError(f"timeout_ns must be > 0, got {t}")
        r = ReadWaiter(self._loop.create_future(), query, barrier, self._now_ns() + t)
        self._pending_reads += 1
        self._buf_reads.append(r)
        if timeout_ns is None:
            self._read_deadlines.append(r)
        else:
            self._seq += 1
            heapq.heappush(self._odd_read_deadlines, (r.deadline_ns, self._seq, r))
        self._kick()
        index: int = await r.future
        return index

    def _submit_reads(self) -> None:
        """One ReadIndex round for every read buffered since the last flush (shared)."""
        host = self._host
        assert host is not None
        reads = self._buf_reads
        self._buf_reads = []
        self.counters["read_rounds"] += 1
        try:
            host.read(None, waiter=reads)
        except (NotLeaderError, ProposalDroppedError, ConfigError) as exc:
            for r in reads:
                self._fail_read(r, exc)
        self.counters["reads"] += len(reads)

    def _fail_read(self, r: ReadWaiter, error: BaseException) -> None:
        if not r.done:
            self._pending_reads -= 1
            r.fail(error)

    def _on_read(self, request: ReadRequest) -> None:
        reads = request.waiter
        if not isinstance(reads, list):
            return
        for r in reads:
            if r.done:
                continue
            if request.error is not None:
                self._fail_read(r, request.error)
            else:
                r.done = True
                self._pending_reads -= 1
                if not r.future.done():
                    r.future.set_result(request.index)

    # ------------------------------------------------------------------ membership, leadership

    async def campaign(self) -> None:
        """Start an election now instead of waiting for the election timeout (operators,
        benchmarks, tests). The node may still lose it; wait_leader() tells."""
        self._check_open()
        self._campaign_pending = True
        self._kick()

    async def _core_turn(self) -> None:
        """Wait until no fsync is in flight: the core may only be called between Readys."""
        while self._syncing:
            assert self._loop is not None
            fut: asyncio.Future[None] = self._loop.create_future()
            self._sync_done_waiters.append(fut)
            await fut

    async def wait_leader(self, timeout_ns: int = 5_000_000_000) -> int:
        """Wait until this node knows a leader; returns its id."""
        self._check_open()
        node = self._node
        assert node is not None and self._loop is not None
        if node.lead:
            return node.lead
        fut: asyncio.Future[int] = self._loop.create_future()
        self._leader_futures.append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_ns / 1e9)
        except TimeoutError:
            raise NotLeaderError(0, self.id) from None
        finally:
            if fut in self._leader_futures:
                self._leader_futures.remove(fut)

    async def transfer_leadership(self, to: int, *, timeout_ns: int | None = None) -> None:
        """Hand leadership to voter `to` (thesis 3.10); returns once this node sees `to` lead.

        ProposalDroppedError if it did not happen within `timeout_ns` (default: two election
        timeouts); NotLeaderError on a follower.
        """
        self._check_open()
        node = self._node
        assert node is not None and self._loop is not None
        if node.lead == to and to != 0:
            return
        await self._core_turn()
        node.transfer_leader(to)
        self._kick()
        deadline = self._loop.time() + (timeout_ns or 2 * self.config.election_timeout_ns) / 1e9
        while self._loop.time() < deadline and not self._stopped:
            if node.lead == to:
                return
            await asyncio.sleep(self._tick_s)
        if node.lead != to:
            raise ProposalDroppedError(
                f"leadership transfer from node {self.id} to node {to} did not complete "
                f"(leader now {node.lead}); retry"
            )

    async def add_learner(
        self, node_id: int, address: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Add `node_id` (listening on `address`) as a learner: first its address and metadata
        (so every member can dial it), then the membership change."""
        node = self._require_leader()
        if node_id in node.membership.voters or node_id in node.membership.learners:
            raise ConfigError(f"node {node_id} is already a member")
        await self._propose_internal(internal_member_entry(node_id, address, metadata or {}))
        await self._propose_conf_change(ConfChange([(CC_ADD_LEARNER, node_id)]))

    async def add_voter(
        self,
        node_id: int,
        address: str,
        metadata: Mapping[str, str] | None = None,
        *,
        timeout_ns: int | None = None,
    ) -> None:
        """Add `node_id` as a voter: as a learner first, promoted once it has caught up with the
        commit index (thesis 4.2.1), so the cluster never waits on an empty log to commit."""
        node = self._require_leader()
        assert self._loop is not None
        if node_id in node.membership.voters:
            return
        if node_id not in node.membership.learners:
            await self.add_learner(node_id, address, metadata)
        t = timeout_ns or 10 * self.config.election_timeout_ns
        deadline = self._loop.time() + t / 1e9
        while True:
            node = self._require_leader()
            pr = node.progress(node_id)
            if pr is not None and pr.match >= node.commit:
                try:
                    await self._propose_conf_change(ConfChange([(CC_ADD_VOTER, node_id)]))
                    return
                except ProposalDroppedError:
                    pass  # not caught up after all (the commit moved): wait and retry
            if self._loop.time() >= deadline:
                raise ProposalDroppedError(
                    f"learner {node_id} did not catch up within {t / 1e9:.1f} s; it stays a "
                    "learner (check that it runs and can be reached), then retry add_voter"
                )
            await asyncio.sleep(self._tick_s)

    async def remove(self, node_id: int) -> None:
        """Remove a voter or learner (this node too: it then hands leadership over)."""
        node = self._require_leader()
        if node_id not in node.membership.voters and node_id not in node.membership.learners:
            raise ConfigError(f"node {node_id} is not a member")
        await self._propose_conf_change(ConfChange([(CC_REMOVE_NODE, node_id)]))

    def _require_leader(self) -> RawNode:
        self._check_open()
        node = self._node
        assert node is not None
        if node.role != LEADER:
            raise NotLeaderError(node.lead, self.id)
        return node

    async def _propose_internal(self, data: bytes) -> object:
        self._require_leader()
        host = self._host
        assert host is not None and self._loop is not None
        await self._core_turn()
        self._require_leader()
        w = InternalWaiter(self._loop.create_future())
        p = host.propose(data, waiter=w)
        if p is None:
            raise NotLeaderError(self.leader_id, self.id)
        self._kick()
        return await w.wait(self.config.proposal_timeout_ns)

    async def _propose_conf_change(self, cc: ConfChange) -> object:
        self._require_leader()
        host = self._host
        assert host is not None and self._loop is not None
        await self._core_turn()
        self._require_leader()
        w = InternalWaiter(self._loop.create_future())
        host.propose_conf_change(cc, waiter=w)
        self._kick()
        return await w.wait(self.config.proposal_timeout_ns)

    def _membership_changed(self, before: Membership, after: Membership) -> None:
        """A membership entry applied: forget the members (and transport peers) it removed."""
        self._publish_pending = True  # e.g. this node just became a member: publish its record
        for gone in sorted(set(before.all_ids()) - set(after.all_ids())):
            self._machine.members.pop(gone, None)
            self._member_changed(gone, None)

    def _member_changed(self, node_id: int, address: str | None) -> None:
        transport = self._transport
        if transport is None or node_id == self.id:
            return
        if address is None:
            transport.remove_peer(node_id)
        else:
            transport.set_peer(node_id, self.config.dial.get(node_id, address))

    # ------------------------------------------------------------------ the loop side

    def _kick(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send(self, messages: list[Message]) -> None:
        transport = self._transport
        if transport is not None:
            self.counters["messages_sent"] += len(messages)
            transport.send(messages)

    def _on_messages(self, messages: list[Message]) -> None:
        if self._stopping or self._node is None:
            return
        n = len(messages)
        self.counters["messages_received"] += n
        if n:
            self._heard_ns[messages[0].frm] = now = self._now_ns()
            for m in messages:
                if m.frm != messages[0].frm:
                    self._heard_ns[m.frm] = now
        if self._syncing:
            if self._inbound_n + n > INBOUND_MAX:
                self.counters["inbound_dropped"] += n
                return
            assert self._loop is not None
            self._inbound.append((self._loop.time(), messages))
            self._inbound_n += n
        else:
            step = self._node.step
            for m in messages:
                step(m)
        self._kick()

    def _on_unreachable(self, peer: int) -> None:
        if self._node is not None and not self._stopping and not self._syncing:
            self._node.report_unreachable(peer)
            self._kick()

    def _on_tick(self) -> None:
        self._tick_handle = None
        if self._stopping or self._loop is None or self._failure is not None:
            return
        if not self._syncing:
            self._catch_up_ticks()
        now = self._loop.time()
        if self._next_tick <= now:
            # Only while an fsync runs (ticks wait for it): re-arm at the next grid point.
            missed = int((now - self._next_tick) / self._tick_s) + 1
            at = self._next_tick + missed * self._tick_s
        else:
            at = self._next_tick
        self._tick_handle = self._loop.call_at(at, self._on_tick)
        self._check_deadlines()
        if self._all_acks:
            self._release_all_acks()
        node = self._node
        # Idle ticks stay cheap: a flush only when the tick made work (heartbeat, election...).
        if node is not None and not self._syncing and node.has_ready():
            self._flush()

    def _catch_up_ticks(self, until: float | None = None) -> None:
        """Tick the core once per tick_ns elapsed up to `until` (default now) on a fixed grid
        (bounded catch-up)."""
        loop = self._loop
        node = self._node
        assert loop is not None and node is not None
        # A timer may fire a hair early (clock resolution, libuv's millisecond timers): a tick
        # due within a quarter tick counts as due, so the grid never stalls.
        now = (loop.time() if until is None else until) + self._tick_s / 4
        if now < self._next_tick:
            return
        missed = int((now - self._next_tick) / self._tick_s) + 1
        n = min(missed, TICK_CATCH_UP_MAX)
        for _ in range(n):
            node.tick()
        self.counters["ticks"] += n
        self._next_tick += missed * self._tick_s

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._syncing or self._stopped or self._node is None or self._failure is not None:
            return
        try:
            self._flush_once()
        except BaseException as exc:
            # Storage or state machine failure inside a Ready: fail-stop (the node must
            # restart from its storage); the loop's exception handler logs it.
            self._fail_stop(exc)
            raise

    def _flush_once(self) -> None:
        node = self._node
        assert node is not None
        host = self._host
        assert host is not None
        if self._inbound:
            # What arrived during an fsync, interleaved with the ticks that elapsed meanwhile
            # in arrival order: a busy leader's heartbeat responses count before its
            # check-quorum tick, a follower's heartbeat before its election ticks.
            inbound, self._inbound = self._inbound, []
            self._inbound_n = 0
            step = node.step
            for arrived, batch in inbound:
                self._catch_up_ticks(arrived)
                for m in batch:
                    step(m)
        self._catch_up_ticks()
        if self._campaign_pending:
            self._campaign_pending = False
            if node.role != LEADER:
                node.campaign()
        if self._publish_pending and not self._stopping:
            self._publish_self()
        if self._buf_waiters and not self._stopping:
            self._submit_proposals()
        if self._buf_reads and not self._stopping:
            self._submit_reads()
        for _ in range(READY_ROUNDS_MAX):
            rd = host.take_ready()
            if rd is None:
                break
            self.counters["readys"] += 1
            if rd.snapshot is not None:
                self.counters["snapshots_installed"] += 1
                self._snap_index = rd.snapshot[0].index
            if not rd.must_sync:
                self._finish(rd, False)
                continue
            early = self._may_send_early(rd)
            if early:
                self.counters["early_sends"] += 1
                self._send(rd.messages)
            if self._sync_thread is not None:
                self._syncing = True
                self._sync_thread.submit(
                    self._storage.sync, functools.partial(self._sync_done, rd, early)
                )
                return
            self._storage.sync()
            self._synced(rd)
            self._finish(rd, early)
        else:
            self._kick()  # more work than one flush should do: continue next iteration
        self._after_flush()

    def _finish(self, rd: Ready, sent: bool) -> None:
        host = self._host
        node = self._node
        assert host is not None and node is not None
        membership = node.membership
        host.finish_ready(rd, sent=sent)
        if node.membership is not membership:
            self._membership_changed(membership, node.membership)
        # After apply: proposals this Ready committed resolve before a lost leadership fails
        # the rest.
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state.leader, rd.soft_state.role)
        self._after_ready(rd)

    def _publish_self(self) -> None:
        """Replicate this node's address and metadata once a leader is known (forwarded to it
        from a follower), unless the replicated record already says the same."""
        self._publish_pending = False
        host = self._host
        node = self._node
        assert host is not None and node is not None and self._transport is not None
        address = self._transport.address
        if self._machine.members.get(self.id) == (address, self._metadata) or node.lead == 0:
            return
        if self.id not in node.membership.all_ids():
            return  # not (yet) a member: the node that adds it publishes its record
        try:
            host.propose(internal_member_entry(self.id, address, self._metadata))
        except (NotLeaderError, ProposalDroppedError) as exc:
            log.debug(
                "node %d: publishing its address failed (%s); next leader change", self.id, exc
            )

    def _sync_done(self, rd: Ready, early: bool, error: BaseException | None) -> None:
        self._syncing = False
        if error is not None:
            self._fail_stop(error)
        else:
            try:
                self._synced(rd)
                self._finish(rd, early)
            except BaseException as exc:
                self._fail_stop(exc)
                raise
        waiters, self._sync_done_waiters = self._sync_done_waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)
        if not self._stopped and error is None:
            self._flush()

    def _synced(self, rd: Ready) -> None:
        self.counters["syncs"] += 1
        hs = rd.hard_state
        if hs is not None:
            self._durable_tv = (hs.term, hs.vote)
        if rd.entries:
            self._durable_last = rd.entries[-1].index
        elif rd.snapshot is not None:
            self._durable_last = max(self._durable_last, rd.snapshot[0].index)
        if rd.entries and self._node is not None and self._node.role == LEADER:
            last = rd.entries[-1].index
            now = self._now_ns()
            self._append_idx.append(last)
            self._append_ns.append(now)
            if len(self._append_idx) > 2 * APPEND_TIMES_MAX:
                del self._append_idx[:APPEND_TIMES_MAX]
                del self._append_ns[:APPEND_TIMES_MAX]
            # ack="leader": acknowledged once the leader's own fsync covers the entry.
            acks = self._leader_acks
            mono = time.monotonic_ns()
            while acks and acks[0].last <= last:
                w = acks.popleft()
                if not w.done:
                    w.acked_ns = mono
                    self.counters["ack_leader"] += 1
                    self._finish_waiter(w)
                    self._track_leader_window(w)

    def _track_leader_window(self, w: Waiter) -> None:
        # Remember the acknowledged-but-uncommitted window, closed when the entry commits.
        if len(self._window_watch) < WINDOW_WATCH_MAX:
            self._window_watch.append(w)

    def _may_send_early(self, rd: Ready) -> bool:
        """Thesis 10.2.1: a leader may send its appends before its own fsync. Only when nothing
        in this Ready must be durable first: no snapshot, no new term or vote."""
        if not self.config.parallel_append or not rd.messages or rd.snapshot is not None:
            return False
        node = self._node
        assert node is not None
        if node.role != LEADER:
            return False
        hs = rd.hard_state
        if hs is not None and (hs.term, hs.vote) != self._durable_tv:
            return False
        # Every commit index in these messages must already be durable here. It is whenever a
        # quorum needs a follower (see the module docstring); it is not when this leader alone
        # is a quorum (one voter, maybe with learners): its commit then covers the entries it is
        # about to write, and a learner must not learn that commit before the fsync.
        return node.commit <= self._durable_last

    def _after_ready(self, rd: Ready) -> None:
        if rd.committed_entries and self._window_watch:
            commit_last = rd.committed_entries[-1].index
            now = time.monotonic_ns()  # the loop clock may tick in milliseconds (uvloop)
            watch = self._window_watch
            while watch and watch[0].last <= commit_last:
                w = watch.popleft()
                window = max(0, now - w.acked_ns)
                c = self.counters
                c["ack_leader_window_ns_sum"] += window
                c["ack_leader_window_count"] += 1
                c["ack_leader_window_ns_max"] = max(c["ack_leader_window_ns_max"], window)

    def _after_flush(self) -> None:
        if self._all_acks:
            self._release_all_acks()
        host = self._host
        assert host is not None
        if (
            host.applied - self._snap_index >= self.config.snapshot_entries
            and not self._syncing
            and not self._stopping
        ):
            self._compact()

    def _compact(self) -> None:
        host = self._host
        node = self._node
        assert host is not None and node is not None
        if node.applied != host.applied:
            return  # the core's applied index moves at advance(); compact between Readys only
        host.compact()
        self._snap_index = host.applied
        self.counters["snapshots_taken"] += 1

    def _release_all_acks(self) -> None:
        """ack="all": done once every healthy voter holds the entry (match >= index)."""
        node = self._node
        assert node is not None
        if node.role != LEADER:
            return
        floor = node.commit
        now = self._now_ns()
        window = self.config.healthy_ns or self.config.election_timeout_ns
        ms = node.membership
        for v in sorted(set(ms.voters) | set(ms.voters_outgoing)):  # both sides when joint
            if v == self.id:
                continue
            if now - self._heard_ns.get(v, -(1 << 62)) > window:
                continue  # not healthy: not heard from within the window
            pr = node.progress(v)
            if pr is not None and pr.match < floor:
                floor = pr.match
        acks = self._all_acks
        while acks and acks[0].last <= floor:
            w = acks.popleft()
            if not w.done:
                self.counters["ack_all"] += 1
                self._finish_waiter(w)

    def _soft_state_changed(self, leader: int, role: int) -> None:
        self.counters["role_changes"] += 1
        if leader:
            self._publish_pending = True
        if role != LEADER:
            self._lost_leadership()
        if leader:
            futs, self._leader_futures = self._leader_futures, []
            for f in futs:
                if not f.done():
                    f.set_result(leader)
        name = ROLE_NAMES[role]
        for cb in list(self._role_callbacks):
            cb(name, leader)

    def _lost_leadership(self) -> None:
        """Not (or no longer) the leader: appended proposals have an unknown outcome now."""
        host = self._host
        assert host is not None
        node = self._node
        assert node is not None
        err_unknown = CommitUnknownError(
            f"node {self.id} lost the leadership (leader now {node.lead or 'unknown'}) before "
            "the command was acknowledged; it may still commit: read to find out"
        )
        for p in list(host.proposals.values()):
            w = p.waiter
            if isinstance(w, Waiter):
                self._fail_waiter(w, err_unknown)
            elif isinstance(w, InternalWaiter):
                w.fail(err_unknown)
        host.proposals.clear()
        self._machine.capture.clear()
        self._window_watch.clear()
        for queue_ in (self._all_acks, self._leader_acks):
            for w in queue_:
                self._fail_waiter(w, err_unknown)
            queue_.clear()
        self._append_idx.clear()
        self._append_ns.clear()

    def _check_deadlines(self) -> None:
        now = self._now_ns()
        dq = self._waiters_by_deadline
        while dq and (dq[0].done or dq[0].deadline_ns <= now):
            w = dq.popleft()
            if not w.done:
                self._timeout(w)
        heap = self._odd_deadlines
        while heap and (heap[0][2].done or heap[0][0] <= now):
            w = heapq.heappop(heap)[2]
            if not w.done:
                self._timeout(w)
        rq = self._read_deadlines
        while rq and (rq[0].done or rq[0].deadline_ns <= now):
            r = rq.popleft()
            if not r.done:
                self._read_timed_out(r)
        rheap = self._odd_read_deadlines
        while rheap and (rheap[0][2].done or rheap[0][0] <= now):
            r = heapq.heappop(rheap)[2]
            if not r.done:
                self._read_timed_out(r)

    def _read_timed_out(self, r: ReadWaiter) -> None:
        self._fail_read(r, ProposalDroppedError(f"read timed out on node {self.id}; retry it"))

    def _timeout(self, w: Waiter) -> None:
        if w.appended:
            self._fail_waiter(
                w,
                CommitUnknownError(
                    f"proposal timed out on node {self.id} after it was appended at index "
                    f"{w.first}; it may still commit: read to find out"
                ),
            )
        else:
            self._fail_waiter(w, ProposalDroppedError("proposal timed out before it was appended"))

    def _fail_all(self, error: NodeStoppedError) -> None:
        unknown = CommitUnknownError(
            f"node {self.id} stopped before the command was acknowledged; it may still commit"
        )
        for w in self._buf_waiters:
            self._fail_waiter(w, error)
        self._buf_cmds.clear()
        self._buf_waiters.clear()
        host = self._host
        if host is not None:
            for p in list(host.proposals.values()):
                pw = p.waiter
                if isinstance(pw, Waiter):
                    self._fail_waiter(pw, unknown)
                elif isinstance(pw, InternalWaiter):
                    pw.fail(unknown)
            for request in list(host.reads.values()):
                if isinstance(request.waiter, list):
                    for r in request.waiter:
                        self._fail_read(r, error)
        for dq in (self._all_acks, self._leader_acks, self._waiters_by_deadline):
            for w in dq:
                self._fail_waiter(w, unknown if w.appended else error)
            dq.clear()
        for _, _, w in self._odd_deadlines:
            self._fail_waiter(w, unknown if w.appended else error)
        self._odd_deadlines.clear()
        for r in self._buf_reads:
            self._fail_read(r, error)
        self._buf_reads.clear()
        for r in self._read_deadlines:
            self._fail_read(r, error)
        self._read_deadlines.clear()
        for _, _, r in self._odd_read_deadlines:
            self._fail_read(r, error)
        self._odd_read_deadlines.clear()

    def _fail_stop(self, error: BaseException) -> None:
        """A storage failure (fsync error) poisons the node: fail everything, stop serving."""
        if self._failure is not None:
            return
        log.error("node %d: storage failed, the node stops serving: %r", self.id, error)
        self._failure = error
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._fail_all(NodeStoppedError(f"node {self.id} failed: {error!r}"))

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """JSON-ready state: role, term, leader, indexes, members, per-peer lag, counters."""
        node = self._node
        if node is None:
            return {"id": self.id, "role": "stopped"}
        host = self._host
        assert host is not None
        leading = node.role == LEADER
        last = node.last_index
        stats: dict[int, dict[str, Any]] = {}
        if self._transport is not None:
            stats = self._transport.peer_stats()
        now = self._now_ns() if self._loop is not None else 0
        peers: dict[str, dict[str, Any]] = {}
        ids = sorted(set(node.membership.all_ids()) - {self.id})
        for pid in ids:
            entry: dict[str, Any] = {
                "address": self.member_address(pid),
                "connected": bool(stats.get(pid, {}).get("connected", False)),
                "learner": pid in node.membership.learners,
                "match": None,
                "next": None,
                "state": None,
                "lag_entries": None,
                "lag_seconds": None,
            }
            pr = node.progress(pid) if leading else None
            if pr is not None:
                entry["match"] = pr.match
                entry["next"] = pr.next
                entry["state"] = STATE_NAMES[pr.state]
                entry["lag_entries"] = max(0, last - pr.match)
                entry["lag_seconds"] = self._lag_seconds(pr.match, last, now)
                entry["match_rejects"] = pr.match_rejects
                heard = self._heard_ns.get(pid)
                entry["heard_ago_seconds"] = None if heard is None else (now - heard) / 1e9
            peers[str(pid)] = entry
        storage = self._storage
        wal_bytes = 0
        wb = getattr(storage, "wal_bytes", None)
        if callable(wb):
            wal_bytes = int(wb())
        return {
            "id": self.id,
            "role": "stopped" if self._stopped else ROLE_NAMES[node.role],
            "term": node.term,
            "leader": node.lead,
            "commit": node.commit,
            "applied": host.applied,
            "last_index": last,
            "snapshot_index": self._snap_index,
            "ack_mode": self.config.ack,
            "voters": list(node.membership.voters),
            "learners": list(node.membership.learners),
            "wal_bytes": wal_bytes,
            "proposals_pending": self._pending_commands,
            "reads_pending": self._pending_reads,
            "peers": peers,
            "counters": dict(self.counters),
            "failed": None if self._failure is None else repr(self._failure),
        }

    def _lag_seconds(self, match: int, last: int, now: int) -> float:
        if match >= last:
            return 0.0
        idx = self._append_idx
        k = bisect.bisect_right(idx, match)
        if k >= len(idx):
            return 0.0
        return max(0, now - self._append_ns[k]) / 1e9
