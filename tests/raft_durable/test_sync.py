"""sync() costs: exactly one WAL fdatasync for the common Ready, a hard-state fdatasync only when
term or vote changed, nothing when nothing changed; wal_bytes() follows appends and compaction.
"""

from pathlib import Path

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from tests.raft_durable.helpers import open_small
from tests.wal.helpers import FaultyOps


def test_fdatasyncs_per_ready(tmp_path: Path) -> None:
    ops = FaultyOps()
    disk = open_small(tmp_path / "d", file_ops=ops)

    def syncs_for(entries: list[Entry], hs: HardState | None) -> int:
        before = ops.fdatasyncs
        disk.append(entries)
        if hs is not None:
            disk.set_hard_state(hs)
        disk.sync()
        return ops.fdatasyncs - before

    # An election: term and vote change, no entries: one fdatasync (the hard-state file).
    assert syncs_for([], HardState(1, 1, 0)) == 1
    # The leader's common Ready: entries + a commit move: one fdatasync (the WAL).
    for k in range(5):
        batch = [Entry(1, 1 + 10 * k + j, b"x" * 100) for j in range(10)]
        assert syncs_for(batch, HardState(1, 1, 10 * k)) == 1
    # Commit moved alone: written, not synced.
    assert syncs_for([], HardState(1, 1, 50)) == 0
    # Nothing changed: nothing to do.
    assert syncs_for([], None) == 0
    # A new term with entries: the WAL and the hard state.
    assert syncs_for([Entry(2, 51, b"y")], HardState(2, 0, 50)) == 2
    disk.close()
    with open_small(tmp_path / "d") as again:
        hs = again.initial_state()[0]
        assert (hs.term, hs.vote, hs.commit) == (2, 0, 50)


def test_wal_bytes_follows_appends_and_compaction(tmp_path: Path) -> None:
    with open_small(tmp_path / "d", fsync=False) as disk:
        assert disk.wal_bytes() == 0
        sizes = []
        for k in range(40):
            disk.append([Entry(1, 1 + 10 * k + j, b"z" * 200) for j in range(10)])
            sizes.append(disk.wal_bytes())
        assert sizes == sorted(sizes) and sizes[0] == 10 * (24 + 208)
        disk.install_snapshot(SnapshotMeta(390, 1, ConfState((1,))), b"s")
        assert disk.wal_bytes() < sizes[-1] // 4  # 8 KiB segments before 390 are gone
        assert disk.first_index == 391


def test_small_compaction_defers_the_wal_part(tmp_path: Path) -> None:
    ops = FaultyOps()
    with open_small(tmp_path / "d", file_ops=ops) as disk:
        disk.append([Entry(1, i, b"e%d" % i) for i in range(1, 11)])
        disk.sync()
        held = disk.wal_bytes()
        before = ops.fdatasyncs
        disk.install_snapshot(SnapshotMeta(4, 1, ConfState((1,))), b"snap")
        # The snapshot file (fsync) and its directory (fsync_dir, not counted here); the
        # WAL keeps its records (4 small entries free no segment), ignored from now on.
        assert ops.fdatasyncs == before
        assert disk.wal_bytes() == held
        assert disk.first_index == 5
        assert [e.index for e in disk.initial_state()[2]] == list(range(5, 11))
    with open_small(tmp_path / "d") as again:
        assert again.first_index == 5
        assert [e.index for e in again.initial_state()[2]] == list(range(5, 11))
        again.append([Entry(2, 7, b"new")])  # overwriting after the snapshot still works
        assert [e.index for e in again.initial_state()[2]] == [5, 6, 7]
