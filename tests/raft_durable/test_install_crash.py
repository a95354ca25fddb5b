"""A crash at every step of install_snapshot leaves the old state or the new one, never a mix.

Each case prepares a durable directory, then, for n = 1, 2, ..., forks a child that opens a
copy and runs install_snapshot with CrashOps ending the process right before its n-th file
change (write, fsync, rename, unlink, directory fsync; the WAL's included), until a child
finishes. After each crash the copy is reopened: initial_state() must equal the state before
the install or the state MemoryStorage (the model) has after it. Cases: a compaction keeping
the suffix (entry at meta.index has meta.term), a snapshot inside the log with another term, and
one beyond the log (the WAL restarts at meta.index + 1).
"""

import shutil
from pathlib import Path

import pytest

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.raft.durable import DiskStorage
from haperf.raft.storage import MemoryStorage
from tests.raft_durable.faults import CRASH_EXIT, DONE_EXIT, CrashOps, run_forked
from tests.raft_durable.helpers import Plain, open_small, plain

STEPS_MAX = 80


def prepare(directory: Path) -> MemoryStorage:
    """A log 1..60 (terms 1 then 2 from 31) with a snapshot at 10; returns the same as a model."""
    model = MemoryStorage()
    with open_small(directory) as disk:
        entries = [Entry(1 if i <= 30 else 2, i, f"e{i}".encode() * 20) for i in range(1, 61)]
        for store in (model, disk):
            store.append(entries)
            store.set_hard_state(HardState(2, 1, 40))
            store.install_snapshot(SnapshotMeta(10, 1, ConfState((1, 2, 3))), b"snap@10")
            store.sync()
    return model


CASES = {
    "keep-suffix": SnapshotMeta(45, 2, ConfState((1, 2, 3))),
    "other-term": SnapshotMeta(45, 3, ConfState((1, 2), (4,))),
    "beyond-log": SnapshotMeta(500, 4, ConfState((1, 2, 3, 4, 5), (), (1, 2, 3), True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crash_at_every_step_of_install_snapshot(tmp_path: Path, case: str) -> None:
    meta = CASES[case]
    data = f"snapshot data for {case} ".encode() * 50
    base = tmp_path / "base"
    model = prepare(base)
    before: Plain = plain(model.initial_state())
    model.install_snapshot(meta, data)
    after: Plain = plain(model.initial_state())
    assert before != after
    seen = {"before": 0, "after": 0}
    for n in range(1, STEPS_MAX + 1):
        work = tmp_path / f"crash{n}"
        shutil.copytree(base, work)

        def job(work: Path = work, n: int = n) -> None:
            ops = CrashOps(n)
            disk = DiskStorage(work, segment_bytes=8192, entry_bytes_max=1024, file_ops=ops)
            ops.armed = True
            disk.install_snapshot(meta, data)

        code = run_forked(job)
        assert code in (CRASH_EXIT, DONE_EXIT), code
        with open_small(work) as disk:
            got = plain(disk.initial_state())
        assert got in (before, after), f"crash before file change {n}: {got}"
        seen["before" if got == before else "after"] += 1
        shutil.rmtree(work)
        if code == DONE_EXIT:
            assert got == after
            break
    else:
        raise AssertionError(f"install_snapshot made more than {STEPS_MAX} file changes")
    # The crash points cover both outcomes: before the rename and after it.
    assert seen["before"] >= 3 and seen["after"] >= 1, seen
