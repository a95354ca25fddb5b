"""Raft storage: the Storage protocol the host persists through, and MemoryStorage.

Owns what "persisted" means for the host (haperf.raft.host): a snapshot, the log entries after
it, and the hard state (term, vote, commit). Invariants of every Storage: entries are contiguous
and start right after the snapshot index; append() first drops any stored entry at or after the
first new index (a new leader may overwrite an uncommitted tail, Raft 5.3); after sync() returns,
everything written before it survives a crash; install_snapshot never lets the entries it
replaces disappear before the snapshot itself is durable (write the snapshot first).
MemoryStorage keeps it all in lists (tests, benchmarks, and the simulator's base), and counts
syncs so tests can check the ordering rules.
"""

from typing import Protocol

from haperf._native.raft import HardState
from haperf._native.raftmsg import Entry, SnapshotMeta


class Storage(Protocol):
    """What the host writes Raft state through; see the module docstring for the invariants."""

    def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None: ...
    def append(self, entries: list[Entry]) -> None: ...
    def set_hard_state(self, hard_state: HardState) -> None: ...
    def sync(self) -> None: ...


class MemoryStorage:
    """An in-memory Storage. `initial_state()` returns what RawNode needs to restart."""

    def __init__(self) -> None:
        self.snapshot: tuple[SnapshotMeta, bytes] | None = None
        self.entries: list[Entry] = []
        self.hard_state = HardState()
        self.syncs = 0
        self.writes = 0
        self._first_index = 1  # index of entries[0]: snapshot index + 1

    @property
    def snap_index(self) -> int:
        return 0 if self.snapshot is None else self.snapshot[0].index

    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Keep the snapshot; drop the entries it covers (all of them if the log disagrees)."""
        offset = meta.index - self.snap_index
        keep: list[Entry] = []
        if 0 < offset <= len(self.entries) and self.entries[offset - 1].term == meta.term:
            keep = self.entries[offset:]
        self.snapshot = (meta, bytes(data))
        self.entries = keep
        self._first_index = meta.index + 1
        if self.hard_state.commit < meta.index:
            hs = self.hard_state
            self.hard_state = HardState(hs.term, hs.vote, meta.index)
        self.writes += 1

    def append(self, entries: list[Entry]) -> None:
        if not entries:
            return
        stored = self.entries
        offset = entries[0].index - self._first_index
        if offset == len(stored):
            stored.extend(entries)  # the common case: the log grows at its end
        elif 0 <= offset < len(stored):
            del stored[offset:]
            stored.extend(entries)
        else:
            raise AssertionError(
                f"append at {entries[0].index} does not continue the log ending at "
                f"{self.last_index()} (snapshot {self.snap_index})"
            )
        self.writes += 1

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state
        self.writes += 1

    def sync(self) -> None:
        self.syncs += 1

    def initial_state(self) -> tuple[HardState, tuple[SnapshotMeta, bytes] | None, list[Entry]]:
        """(hard_state, snapshot, entries) for RawNode(..., hard_state=, snapshot=, entries=)."""
        return self.hard_state, self.snapshot, list(self.entries)
