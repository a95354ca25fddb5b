"""fsync and write errors: fail-stop, never retried, never reported as durable.

A failed hard-state fdatasync raises StorageError and closes the storage (every later call
raises); a failed WAL fdatasync poisons the WAL (WALPoisonedError on every later write). After
reopening, the state is the last one that was acknowledged, or the unacknowledged one that
reached the disk anyway, never a mix.
"""

import errno
import os
from pathlib import Path

import pytest

from haperf._native.raft import HardState
from haperf._native.raftmsg import Entry
from haperf.errors import StorageError, WALPoisonedError
from tests.raft_durable.helpers import open_small
from tests.wal.helpers import FaultyOps


class FailHardStateSync(FaultyOps):
    """Fails fdatasync of the hard-state file only."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False
        self.hardstate_fds: set[int] = set()

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        fd = super().open(path, flags, mode)
        if os.path.basename(path) == "hardstate":
            self.hardstate_fds.add(fd)
        return fd

    def fdatasync(self, fd: int) -> None:
        if self.fail and fd in self.hardstate_fds:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fdatasync(fd)


def test_hard_state_fsync_error_is_fail_stop(tmp_path: Path) -> None:
    ops = FailHardStateSync()
    disk = open_small(tmp_path / "d", file_ops=ops)
    disk.append([Entry(1, 1, b"a")])
    disk.set_hard_state(HardState(1, 1, 0))
    disk.sync()
    ops.fail = True
    disk.set_hard_state(HardState(2, 2, 0))
    with pytest.raises(StorageError, match="write or fsync failed"):
        disk.sync()
    for call in (disk.sync, lambda: disk.append([Entry(2, 2, b"b")])):
        with pytest.raises(StorageError, match="closed"):
            call()
    disk.close()
    with open_small(tmp_path / "d") as again:
        hs = again.initial_state()[0]
        # Not acknowledged, so either may be there; the page cache may have kept the write.
        assert (hs.term, hs.vote) in ((1, 1), (2, 2))
        assert again.last_index == 1


def test_wal_fsync_error_poisons(tmp_path: Path) -> None:
    ops = FaultyOps()
    disk = open_small(tmp_path / "d", file_ops=ops)
    disk.append([Entry(1, 1, b"a")])
    disk.sync()
    ops.fail_fdatasync_at = ops.fdatasyncs + 1
    disk.append([Entry(1, 2, b"b")])
    with pytest.raises(WALPoisonedError):
        disk.sync()
    with pytest.raises(WALPoisonedError):
        disk.append([Entry(1, 3, b"c")])
    disk.close()  # releases the files; the poisoned WAL writes nothing more
    ops.fail_fdatasync_at = None
    with open_small(tmp_path / "d") as again:
        assert again.last_index in (1, 2)
        assert [bytes(e.data) for e in again.initial_state()[2]][:1] == [b"a"]
