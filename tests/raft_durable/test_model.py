"""DiskStorage against MemoryStorage as the model (hypothesis state machine).

Random sequences of append (growing, and overwriting a tail: Raft 5.3), install_snapshot
(inside the log with the matching term: the suffix is kept; inside with another term, or
beyond the log: the log restarts after it; at or before the stored snapshot: StorageError),
set_hard_state and sync, with reopen (close and open again) and crash (a copy of the
directory taken right after a sync, the way a process crash leaves it) steps. After every
step the visible log agrees with the model; after a reopen, initial_state() equals the
model's; after a crash, the copy's initial_state() equals the model's state at that sync.
"""

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.errors import StorageError
from haperf.raft.durable import DiskStorage
from haperf.raft.storage import MemoryStorage
from tests.raft_durable.helpers import open_small, plain

payloads = st.binary(min_size=0, max_size=300)


class DiskVsMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="haperf-ds-model-"))
        self.dir = self.root / "data"
        self.disk: DiskStorage = open_small(self.dir, fsync=False)
        self.model = MemoryStorage()
        self.clean = True  # nothing written since the last sync
        self.crashes = 0

    def teardown(self) -> None:
        self.disk.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def term_at(self, index: int) -> int:
        m = self.model
        if m.snapshot is not None and index == m.snap_index:
            return m.snapshot[0].term
        pos = index - m.snap_index - 1
        return m.entries[pos].term if 0 <= pos < len(m.entries) else 0

    # ------------------------------------------------------------------ rules

    @rule(
        back=st.integers(0, 6),
        count=st.integers(1, 6),
        term_step=st.integers(0, 2),
        datas=st.lists(payloads, min_size=6, max_size=6),
        conf_change=st.booleans(),
        views=st.booleans(),
        split=st.integers(1, 7),
    )
    def append(
        self,
        *,
        back: int,
        count: int,
        term_step: int,
        datas: list[bytes],
        conf_change: bool,
        views: bool,
        split: int,
    ) -> None:
        m = self.model
        first = max(m.snap_index + 1, m.last_index() + 1 - back)
        term = max(self.term_at(first - 1), 1) + term_step
        entries = [
            Entry(
                term + (k >= split),  # a batch may span two terms
                first + k,
                memoryview(datas[k]) if views else datas[k],
                1 if conf_change and k == 0 else 0,
            )
            for k in range(count)
        ]
        m.append(entries)
        self.disk.append(entries)
        self.clean = False

    @rule(
        where=st.integers(0, 8),
        match_term=st.booleans(),
        term=st.integers(1, 9),
        voters=st.lists(st.integers(1, 2**64 - 1), max_size=5),
        learners=st.lists(st.integers(1, 9), max_size=3),
        auto_leave=st.booleans(),
        data=payloads,
    )
    def install_snapshot(
        self,
        *,
        where: int,
        match_term: bool,
        term: int,
        voters: list[int],
        learners: list[int],
        auto_leave: bool,
        data: bytes,
    ) -> None:
        m = self.model
        index = m.snap_index + 1 + where  # inside the log, or beyond its end
        if match_term and m.snap_index < index <= m.last_index():
            term = self.term_at(index)
        meta = SnapshotMeta(index, term, ConfState(voters, learners, (), auto_leave))
        m.install_snapshot(meta, data)
        self.disk.install_snapshot(meta, data)
        self.clean = False

    @rule(
        term=st.one_of(st.integers(0, 3), st.just(2**64 - 1)),
        vote=st.integers(0, 2),
        commit_ahead=st.integers(0, 6),
    )
    def set_hard_state(self, *, term: int, vote: int, commit_ahead: int) -> None:
        hs = HardState(term, vote, self.model.snap_index + commit_ahead)
        self.model.set_hard_state(hs)
        self.disk.set_hard_state(hs)
        self.clean = False

    @rule()
    def older_snapshot_is_refused(self) -> None:
        m = self.model
        if m.snapshot is None:
            return
        meta = SnapshotMeta(m.snap_index, m.snapshot[0].term)
        with pytest.raises(StorageError, match="not newer"):
            self.disk.install_snapshot(meta, b"again")

    @rule()
    def sync(self) -> None:
        self.model.sync()
        self.disk.sync()
        self.clean = True

    @rule()
    def reopen(self) -> None:
        self.disk.close()
        self.disk = open_small(self.dir, fsync=False)
        assert plain(self.disk.initial_state()) == plain(self.model.initial_state())

    @precondition(lambda self: self.clean)
    @rule()
    def crash(self) -> None:
        # What a process crash leaves is what the files hold now (the page cache survives).
        self.crashes += 1
        copy = self.root / f"crash{self.crashes}"
        shutil.copytree(self.dir, copy)
        other = open_small(copy, fsync=False)
        try:
            assert plain(other.initial_state()) == plain(self.model.initial_state())
        finally:
            other.close()
            shutil.rmtree(copy)

    @invariant()
    def same_log(self) -> None:
        m = self.model
        assert self.disk.first_index == m.snap_index + 1
        assert self.disk.last_index == m.last_index()


DiskVsMemory.TestCase.settings = settings(
    DiskVsMemory.TestCase.settings, max_examples=60, stateful_step_count=30, deadline=None
)
test_disk_storage_matches_memory_storage = DiskVsMemory.TestCase
