"""Test doubles for the simulator: a toy replicated log and a toy host.

Owns ToyCore (a fixed-leader replicated log: node 1 leads term 1 forever, followers forward
proposals to it; no elections, so it only stands for Raft when nothing crashes) and ToyHost (the
host ordering rules: persist, sync, send, apply, advance). They let the simulator's own
machinery (scheduler, network, disk, checkers, runner, CLI) be tested without the Raft core.
"""

from dataclasses import dataclass, field
from typing import Any

from haperf._native.raftmsg import (
    MSG_APP,
    MSG_APP_RESP,
    MSG_PROP,
    Entry,
    Message,
)
from haperf.errors import HaperfError
from haperf.sim.node import ROLE_LEADER, CoreSpec, StateMachine


class ToyNotLeader(HaperfError):
    """The toy refuses a proposal."""


@dataclass(frozen=True, slots=True)
class ToyHardState:
    term: int
    vote: int
    commit: int


@dataclass(slots=True)
class ToyReady:
    entries: list[Entry] = field(default_factory=list)
    hard_state: ToyHardState | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


LEADER = 1
BATCH_MAX = 64


class ToyCore:
    """Node 1 leads term 1 forever; see the module docstring."""

    def __init__(self, spec: CoreSpec) -> None:
        self.id = spec.node_id
        self.peers = [p for p in spec.voters if p != self.id]
        self.voters = spec.voters
        self.heartbeat_tick = spec.heartbeat_tick
        self.log: list[Entry] = list(spec.entries)
        hs = spec.hard_state
        self.commit = 0 if hs is None else hs.commit
        self.applied = 0
        self.unstable = 0  # index into log of the first entry not yet handed out
        self.unstable = len(self.log)
        self.msgs: list[Message] = []
        self.hs_dirty = False
        self.elapsed = 0
        self.match = {p: 0 for p in self.peers}
        self.next = {p: len(self.log) + 1 for p in self.peers}

    @property
    def is_leader(self) -> bool:
        return self.id == LEADER

    def _append(self, data: bytes) -> None:
        self.log.append(Entry(1, len(self.log) + 1, data))
        if len(self.voters) == 1:
            self._set_commit(len(self.log))

    def _set_commit(self, commit: int) -> None:
        if commit > self.commit:
            self.commit = commit
            self.hs_dirty = True

    def _replicate(self, peer: int) -> None:
        nxt = self.next[peer]
        prev = nxt - 1
        entries = self.log[prev : prev + BATCH_MAX]
        self.msgs.append(
            Message(
                type=MSG_APP,
                to=peer,
                frm=self.id,
                term=1,
                log_term=1 if prev else 0,
                index=prev,
                entries=entries,
                commit=self.commit,
            )
        )

    def tick(self) -> None:
        self.elapsed += 1
        if self.is_leader and self.elapsed >= self.heartbeat_tick:
            self.elapsed = 0
            for p in self.peers:
                self._replicate(p)

    def propose(self, data: bytes) -> None:
        if self.is_leader:
            self._append(data)
            for p in self.peers:
                self._replicate(p)
        else:
            self.msgs.append(
                Message(type=MSG_PROP, to=LEADER, frm=self.id, term=1, entries=[Entry(data=data)])
            )

    def step(self, msg: Message) -> None:
        if msg.type == MSG_PROP:
            for e in msg.entries:
                self.propose(bytes(e.data))
        elif msg.type == MSG_APP and not self.is_leader:
            prev = msg.index
            if prev > len(self.log):
                self.msgs.append(
                    Message(
                        type=MSG_APP_RESP,
                        to=msg.frm,
                        frm=self.id,
                        term=1,
                        reject=True,
                        reject_hint=len(self.log),
                    )
                )
                return
            for e in msg.entries:
                if e.index > len(self.log):
                    self.log.append(Entry(e.term, e.index, bytes(e.data), e.type))
            self.unstable = min(self.unstable, prev + len(msg.entries))
            self._set_commit(min(msg.commit, len(self.log)))
            self.msgs.append(
                Message(
                    type=MSG_APP_RESP,
                    to=msg.frm,
                    frm=self.id,
                    term=1,
                    index=prev + len(msg.entries),
                )
            )
        elif msg.type == MSG_APP_RESP and self.is_leader:
            p = msg.frm
            if msg.reject:
                self.next[p] = min(self.next[p], msg.reject_hint + 1)
                return
            self.match[p] = max(self.match[p], msg.index)
            self.next[p] = max(self.next[p], self.match[p] + 1)
            matches = sorted([len(self.log), *self.match.values()], reverse=True)
            self._set_commit(matches[len(self.voters) // 2])

    def has_ready(self) -> bool:
        return bool(
            self.msgs
            or self.hs_dirty
            or self.unstable < len(self.log)
            or self.applied < self.commit
        )

    def ready(self) -> ToyReady:
        rd = ToyReady(
            entries=self.log[self.unstable :],
            hard_state=ToyHardState(1, LEADER, self.commit) if self.hs_dirty else None,
            committed_entries=self.log[self.applied : self.commit],
            messages=self.msgs,
        )
        self.msgs = []
        return rd

    def advance(self, rd: ToyReady) -> None:
        self.unstable = len(self.log)
        self.hs_dirty = False
        if rd.committed_entries:
            self.applied = rd.committed_entries[-1].index

    @property
    def role(self) -> int:
        return ROLE_LEADER if self.is_leader else 0

    term = 1
    lead = LEADER


class ToyHost:
    """Persist entries and hard state, sync, send, apply, advance: the host contract's order."""

    def __init__(self, core: ToyCore, storage: Any, send: Any, sm: StateMachine) -> None:
        self.core, self.storage, self.send, self.sm = core, storage, send, sm

    def compact(self) -> None:
        raise AssertionError("the toy does not compact")

    def read(self, ctx: bytes | None = None) -> Any:
        raise ToyNotLeader("the toy serves no reads")

    def process_ready(self) -> bool:
        rd = self.core.ready()
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if rd.entries or rd.hard_state is not None:
            self.storage.sync()
        if rd.messages:
            self.send(rd.messages)
        for e in rd.committed_entries:
            self.sm.apply(e.index, bytes(e.data))
        self.core.advance(rd)
        return True


TOY_FAULTS = ("drop", "duplicate", "reorder", "asymmetric", "drift")


def toy_config(**overrides: Any) -> Any:
    """A SimConfig running the toy core and host (and the real codec)."""
    from haperf.sim.runner import SimConfig

    base: dict[str, Any] = {
        "core_factory": ToyCore,
        "host_factory": ToyHost,
        "faults": TOY_FAULTS,
        "safety_ticks": 100,
        "compact_entries": 0,
        "read_interval_ns": 0,
    }
    base.update(overrides)
    return SimConfig(**base)
