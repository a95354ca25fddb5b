"""The simulated disk of one node: a Raft Storage whose unsynced writes a crash can lose or tear.

Owns SimDisk, which implements the Storage protocol of the Raft host (`install_snapshot(meta,
data)`, `append(entries)`, `set_hard_state(hs)`, `sync()`), and DiskState, what is stored.

Two views are kept. `volatile` is what the node has written (the page cache): reads see it at
once. `durable` is what survives a crash: every write is queued as pending and reaches `durable`
only at `sync()`. `crash()` discards the pending writes, except that with `keep_prefix` a crash
may keep a prefix of them (writes reach the platter in order but unflushed) and tear the last
kept one: an append keeps only some of its entries. That is the failure model of a log with
checksummed, ordered writes: whatever survives is a state the node really passed through.

Invariants: the entries of a state are contiguous from `snapshot_index + 1`; `append` truncates
a conflicting suffix before writing (never leaves a hole); after `sync()` durable == volatile;
at most `pending_writes_max` writes wait for a sync (a host that never syncs fails loudly).
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from haperf._native.raftmsg import Entry

PENDING_WRITES_MAX = 100_000

# Pending write kinds.
_APPEND = 0
_HARD_STATE = 1
_SNAPSHOT = 2


@dataclass(slots=True)
class DiskState:
    """A snapshot (meta, data), the hard state, and the entries after the snapshot."""

    snapshot_meta: Any = None
    snapshot_data: bytes = b""
    hard_state: Any = None
    entries: list[Entry] = field(default_factory=list)

    @property
    def snapshot_index(self) -> int:
        return 0 if self.snapshot_meta is None else int(self.snapshot_meta.index)

    @property
    def snapshot_term(self) -> int:
        return 0 if self.snapshot_meta is None else int(self.snapshot_meta.term)

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`; the snapshot's term at its index; None if absent."""
        offset = self.snapshot_index
        if index == offset:
            return self.snapshot_term
        if offset < index <= offset + len(self.entries):
            return int(self.entries[index - offset - 1].term)
        return None

    def entry(self, index: int) -> Entry | None:
        offset = self.snapshot_index
        if offset < index <= offset + len(self.entries):
            return self.entries[index - offset - 1]
        return None

    def copy(self) -> "DiskState":
        return DiskState(
            self.snapshot_meta, self.snapshot_data, self.hard_state, list(self.entries)
        )

    def apply(self, kind: int, payload: Any) -> None:
        if kind == _APPEND:
            entries: list[Entry] = payload
            if not entries:
                return
            first = int(entries[0].index)
            offset = self.snapshot_index
            assert first > offset, f"append at index {first} at or below the snapshot {offset}"
            assert first <= offset + len(self.entries) + 1, (
                f"append at index {first} leaves a hole after last index "
                f"{offset + len(self.entries)}"
            )
            del self.entries[first - offset - 1 :]
            self.entries.extend(entries)
        elif kind == _HARD_STATE:
            self.hard_state = payload
        else:
            meta, data = payload
            keep: list[Entry] = []
            # Raft 7: entries after the snapshot that agree with it are kept.
            if self.term_at(int(meta.index)) == int(meta.term):
                keep = self.entries[int(meta.index) - self.snapshot_index :]
            self.snapshot_meta, self.snapshot_data = meta, data
            self.entries = keep


def _copy_entry(e: Any) -> Entry:
    # Entry data may be a memoryview into a received frame: the disk keeps its own bytes.
    return Entry(int(e.term), int(e.index), bytes(e.data), int(e.type))


AppendObserver = Callable[[Sequence[Entry], int | None], None]


class SimDisk:
    """Storage for one simulated node; see the module docstring for the crash model."""

    def __init__(self, pending_writes_max: int = PENDING_WRITES_MAX) -> None:
        self.volatile = DiskState()
        self.durable = DiskState()
        self._pending: list[tuple[int, Any]] = []
        self.pending_writes_max = pending_writes_max
        self.syncs = 0
        self.writes = 0
        # Called with (entries, term of the entry before them) before each append: the
        # simulator's log checkers watch every entry a node writes.
        self.on_append: AppendObserver | None = None

    # -- the Storage protocol --------------------------------------------------------------
    def _write(self, kind: int, payload: Any) -> None:
        assert len(self._pending) < self.pending_writes_max, (
            f"{self.pending_writes_max} writes without a sync"
        )
        self.writes += 1
        self.volatile.apply(kind, payload)
        self._pending.append((kind, payload))

    def append(self, entries: Sequence[Any]) -> None:
        if not entries:
            return
        copied = [_copy_entry(e) for e in entries]
        if self.on_append is not None:
            self.on_append(copied, self.volatile.term_at(int(copied[0].index) - 1))
        self._write(_APPEND, copied)

    def set_hard_state(self, hard_state: Any) -> None:
        self._write(_HARD_STATE, hard_state)

    def install_snapshot(self, meta: Any, data: Any) -> None:
        self._write(_SNAPSHOT, (meta, bytes(data)))

    def sync(self) -> None:
        self.syncs += 1
        durable = self.durable
        for kind, payload in self._pending:
            durable.apply(kind, payload)
        self._pending.clear()

    # -- faults ----------------------------------------------------------------------------
    @property
    def unsynced_writes(self) -> int:
        return len(self._pending)

    def crash(self, rng: random.Random | None = None, keep_prefix: bool = False) -> int:
        """Lose the unsynced writes (or, with keep_prefix, all but a random, maybe torn,
        prefix of them); returns how many writes were lost or torn."""
        pending = self._pending
        kept = 0
        torn = False
        if keep_prefix and pending and rng is not None:
            kept = rng.randint(0, len(pending))
            if kept and pending[kept - 1][0] == _APPEND and rng.random() < 0.5:
                torn = True
        durable = self.durable
        for i in range(kept):
            kind, payload = pending[i]
            if torn and i == kept - 1:
                payload = payload[: rng.randint(0, len(payload) - 1)] if rng else []
            durable.apply(kind, payload)
        lost = len(pending) - kept + (1 if torn else 0)
        pending.clear()
        self.volatile = durable.copy()
        return lost
