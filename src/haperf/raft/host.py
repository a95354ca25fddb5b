"""The Raft host: turns a RawNode's Ready into effects, with the ordering rules written once.

Owns Host, the StateMachine protocol, and the handles for waiting proposals and reads. For each
Ready, process_ready() does, in this order:
  1. persist: the incoming snapshot (then state_machine.restore), the entries (the storage
     truncates a conflicting tail), the hard state; storage.sync() when must_sync (Raft 5.1/5.2:
     term, vote and log must be durable before any message that depends on them leaves);
  2. send the messages;
  3. apply the committed entries, in order, exactly once (conf changes go to
     node.apply_conf_change), resolving proposals by (index, term);
  4. node.advance(ready), then answer reads whose index is applied (thesis 6.4 step 4).
A shell that overlaps the fsync with other work splits process_ready() in two: take_ready()
(step 1 without the sync), its own storage.sync(), then finish_ready() (steps 2-4); a leader's
shell may pass sent=True when it sent the messages before the sync (thesis 10.2.1, see
docs/raft-node.md). `on_done` / `on_read` callbacks tell the shell when a Proposal or a
ReadRequest completes, so it never scans for finished ones.
Synchronous and pure: no asyncio, socket, os, time, random or threading (tests/test_tidy.py);
the shell (runtime or simulator) owns the clock and the transport, and calls tick()/step().
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from haperf._native.confchange import ConfChange
from haperf._native.raft import RawNode, Ready, apply_entries
from haperf._native.raftmsg import Message, SnapshotMeta
from haperf.errors import CommitUnknownError, ConfigError, ProposalDroppedError
from haperf.raft.storage import Storage

# Bounds on what a host keeps waiting (named maxima: proposals and reads not yet resolved).
PENDING_PROPOSALS_MAX = 65536
PENDING_READS_MAX = 65536


class StateMachine(Protocol):
    """The replicated application: deterministic apply, plus snapshot/restore for compaction."""

    def apply(self, index: int, data: bytes) -> object: ...
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...


@dataclass(slots=True)
class Proposal:
    """A command proposed on this node; `done` once its index is applied (or it was dropped)."""

    index: int
    term: int
    done: bool = False
    result: object = None
    error: Exception | None = None
    waiter: object = None  # the shell's handle (e.g. a future); the host never reads it


@dataclass(slots=True)
class ReadRequest:
    """A linearizable read; `ready` once the state machine has applied `index` (thesis 6.4)."""

    ctx: bytes
    index: int = 0
    ready: bool = False
    error: Exception | None = None
    waiter: object = None  # the shell's handle (e.g. a future); the host never reads it


class Host:
    """Drives one RawNode: persist, send, apply, advance (see the module docstring).

    The node, storage, send function and state machine are fixed at construction (a restart
    builds a new Host around the new RawNode).
    """

    def __init__(
        self,
        node: RawNode,
        storage: Storage,
        send: Callable[[list[Message]], None],
        state_machine: StateMachine,
    ) -> None:
        self.node = node
        self.storage = storage
        self.send = send
        self.state_machine = state_machine
        self.applied = node.applied
        self.proposals: dict[int, Proposal] = {}
        self.reads: dict[bytes, ReadRequest] = {}
        self._read_points: list[ReadRequest] = []
        self._read_seq = 0
        self._leader = node.lead
        # Bound once: process_ready runs for every Ready, creating them per call costs.
        self._apply_command = state_machine.apply
        self._apply_conf_change = node.apply_conf_change
        self._resolve_proposal = self._resolve
        # Completion callbacks for shells (None: poll `done` / `ready` instead).
        self.on_done: Callable[[Proposal], None] | None = None
        self.on_read: Callable[[ReadRequest], None] | None = None

    # ------------------------------------------------------------------ requests

    def propose(self, data: bytes, waiter: object = None) -> Proposal | None:
        """Propose on the node; a Proposal on the leader, None when forwarded to the leader.

        Raises NotLeaderError when there is no leader to forward to (or forwarding is off).
        """
        if len(self.proposals) >= PENDING_PROPOSALS_MAX:
            raise ProposalDroppedError(
                f"{PENDING_PROPOSALS_MAX} proposals are waiting to apply; process Readys first"
            )
        index = self.node.propose(data)
        if index == 0:
            return None
        proposal = Proposal(index, self.node.term, waiter=waiter)
        self.proposals[index] = proposal
        return proposal

    def propose_batch(self, datas: list[bytes], waiter: object = None) -> list[Proposal]:
        """Propose several commands in one append; one Proposal each (empty when forwarded)."""
        if len(self.proposals) + len(datas) > PENDING_PROPOSALS_MAX:
            raise ProposalDroppedError(
                f"{PENDING_PROPOSALS_MAX} proposals are waiting to apply; process Readys first"
            )
        first = self.node.propose_batch(datas)
        if first == 0:
            return []
        term = self.node.term
        out = [Proposal(first + k, term, waiter=waiter) for k in range(len(datas))]
        for p in out:
            self.proposals[p.index] = p
        return out

    def propose_conf_change(self, change: ConfChange, waiter: object = None) -> Proposal:
        index = self.node.propose_conf_change(change)
        proposal = Proposal(index, self.node.term, waiter=waiter)
        self.proposals[index] = proposal
        return proposal

    def read(self, ctx: bytes | None = None, waiter: object = None) -> ReadRequest:
        """Start a linearizable read; poll `ready`, then read the state machine."""
        if len(self.reads) >= PENDING_READS_MAX:
            raise ProposalDroppedError(f"{PENDING_READS_MAX} reads are waiting; retry later")
        if ctx is None:
            self._read_seq += 1
            ctx = b"r" + self._read_seq.to_bytes(8, "big")
        if ctx in self.reads:
            raise ConfigError(f"read context {ctx!r} is already waiting; use a unique context")
        request = ReadRequest(ctx, waiter=waiter)
        self.reads[ctx] = request
        try:
            self.node.read_index(ctx)
        except Exception:
            del self.reads[ctx]
            raise
        return request

    def compact(self) -> None:
        """Snapshot the state machine at the applied index and compact log and storage."""
        data = self.state_machine.snapshot()
        meta = self.node.compact(self.applied, data)
        self.storage.install_snapshot(meta, data)
        self.storage.sync()

    # ------------------------------------------------------------------ the Ready loop

    def process_ready(self) -> bool:
        """Handle one Ready if there is one; False when the node had nothing to do."""
        rd = self.take_ready()
        if rd is None:
            return False
        if rd.must_sync:
            self.storage.sync()
        self.finish_ready(rd)
        return True

    def take_ready(self) -> Ready | None:
        """Step 1 without the sync: take a Ready and write what it persists (None if nothing).

        The caller must then sync the storage when `rd.must_sync` and call finish_ready(rd)
        before the next take_ready() (ready and advance strictly alternate).
        """
        node = self.node
        if not node.has_ready():
            return None
        rd: Ready = node.ready()
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state.leader)
        # 1. Persist before anything leaves the node.
        if rd.snapshot is not None:
            self._install_snapshot(rd.snapshot)
        entries = rd.entries
        if entries:
            self.storage.append(entries)
        hard_state = rd.hard_state
        if hard_state is not None:
            self.storage.set_hard_state(hard_state)
        return rd

    def finish_ready(self, rd: Ready, *, sent: bool = False) -> None:
        """Steps 2-4 of a Ready from take_ready(), once its writes are synced (if must_sync).

        `sent`: the shell already sent rd.messages (a leader's appends, thesis 10.2.1).
        """
        # 2. Send.
        messages = rd.messages
        if messages and not sent:
            self.send(messages)
        # 3. Apply committed entries, in order, exactly once. The per-entry loop is native
        # (apply_entries): skip what is applied, conf changes to the node, empty entries are
        # the leader's no-op, commands to state_machine.apply(index, data).
        committed = rd.committed_entries
        if committed:
            self.applied = apply_entries(
                committed,
                self.applied,
                self._apply_command,
                self._apply_conf_change,
                self.proposals,
                self._resolve_proposal,
            )
        read_states = rd.read_states
        if read_states:
            for index, ctx in read_states:
                self._read_point(index, ctx)
        # 4. Advance, then serve reads whose point is applied.
        self.node.advance(rd)
        if self._read_points:
            self._serve_reads()

    def _soft_state_changed(self, leader: int) -> None:
        if leader != self._leader:
            self._leader = leader
            if self.reads:
                self._fail_unconfirmed_reads()

    def _install_snapshot(self, snapshot: tuple[SnapshotMeta, bytes]) -> None:
        meta, data = snapshot
        self.storage.install_snapshot(meta, data)
        self.state_machine.restore(data)
        self.applied = meta.index
        self._drop_proposals_upto(meta.index)

    def _resolve(self, index: int, term: int, result: object) -> None:
        proposal = self.proposals.pop(index)
        proposal.done = True
        if proposal.term == term:
            proposal.result = result
        else:
            proposal.error = ProposalDroppedError(
                f"proposal at index {index} (term {proposal.term}) was replaced by an entry of "
                f"term {term} after a leader change; retry it"
            )
        if self.on_done is not None:
            self.on_done(proposal)

    def _drop_proposals_upto(self, index: int) -> None:
        for i in [i for i in self.proposals if i <= index]:
            proposal = self.proposals.pop(i)
            proposal.done = True
            proposal.error = CommitUnknownError(
                f"proposal at index {i} was covered by an installed snapshot; its outcome is "
                "unknown here: read the state to find out"
            )
            if self.on_done is not None:
                self.on_done(proposal)

    def _fail_unconfirmed_reads(self) -> None:
        # A leader change drops the core's pending read confirmations (thesis 6.4 confirms
        # leadership of one term); reads with a confirmed index stay valid and wait to apply.
        for ctx, request in list(self.reads.items()):
            if request.index == 0:
                del self.reads[ctx]
                request.error = ProposalDroppedError(
                    "the leader changed before the read was confirmed; retry it"
                )
                request.ready = True
                if self.on_read is not None:
                    self.on_read(request)

    def _read_point(self, index: int, ctx: bytes) -> None:
        request = self.reads.get(ctx)
        if request is None:
            return
        if index == 0:
            del self.reads[ctx]
            request.error = ProposalDroppedError("the leader refused the read (queue full); retry")
            request.ready = True
            if self.on_read is not None:
                self.on_read(request)
            return
        request.index = index
        self._read_points.append(request)

    def _serve_reads(self) -> None:
        waiting = []
        for request in self._read_points:
            if request.index <= self.applied:
                request.ready = True
                self.reads.pop(request.ctx, None)
                if self.on_read is not None:
                    self.on_read(request)
            else:
                waiting.append(request)
        self._read_points = waiting
