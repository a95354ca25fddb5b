"""Shared helpers for the WAL tests: small geometry, deterministic payloads, a faulty file layer.

Owns FaultyOps, a FileOps over the real one that fails chosen calls (EIO from fdatasync,
ENOSPC from a write, optionally after writing part of it) and counts calls, so tests can prove
the failure semantics without a failing disk.
"""

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typing_extensions import Buffer

from haperf.wal import WAL
from haperf.wal.files import OsFileOps

SMALL: dict[str, Any] = {
    "segment_bytes": 16384,
    "record_bytes_max": 2048,
    "buffer_bytes": 8192,
}


def open_small(directory: Path | str, **options: Any) -> WAL:
    return WAL(directory, **{**SMALL, **options})


def payload(index: int, seed: int = 0) -> bytes:
    """Deterministic record content for index (length 0..300), so a reader can check it."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=32).digest()
    length = digest[0] + digest[1] % 45
    return (digest * 10)[:length]


def segment_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".wal")


class FaultyOps(OsFileOps):
    """OsFileOps that fails on command and counts calls.

    fail_fdatasync_at: the n-th fdatasync call (1-based) raises EIO, and every one after it too
    if sticky. enospc_write_after: once this many bytes were written in total, pwrite writes what
    still fits and raises ENOSPC. `gate`, when set, makes fdatasync wait for it (tests use it to
    hold a sync open while they check nothing was acknowledged).
    """

    def __init__(self) -> None:
        self.fdatasyncs = 0
        self.writes = 0
        self.bytes_written = 0
        self.fail_fdatasync_at: int | None = None
        self.fail_fsync_dir = False
        self.enospc_write_after: int | None = None
        self.gate: threading.Event | None = None
        self.gate_timeout_s = 10.0
        self.on_fdatasync: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def pwrite(self, fd: int, data: Buffer, offset: int) -> None:
        view = memoryview(data).cast("B")
        with self._lock:
            self.writes += 1
            limit = self.enospc_write_after
            if limit is not None and self.bytes_written + len(view) > limit:
                room = max(0, limit - self.bytes_written)
                if room:
                    super().pwrite(fd, view[:room], offset)
                    self.bytes_written += room
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.bytes_written += len(view)
        super().pwrite(fd, view, offset)

    def fdatasync(self, fd: int) -> None:
        if self.gate is not None:
            self.gate.wait(self.gate_timeout_s)
        with self._lock:
            self.fdatasyncs += 1
            n = self.fdatasyncs
        if self.on_fdatasync is not None:
            self.on_fdatasync()
        if self.fail_fdatasync_at is not None and n >= self.fail_fdatasync_at:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fdatasync(fd)

    def fsync_dir(self, path: str) -> None:
        if self.fail_fsync_dir:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync_dir(path)


class NoSyncOps(OsFileOps):
    """OsFileOps without fsyncs: for tests of recovery logic that run thousands of opens (the
    kill -9 and fault tests prove durability with the real syncs)."""

    def fdatasync(self, fd: int) -> None:
        return None

    def fsync(self, fd: int) -> None:
        return None

    def fsync_dir(self, path: str) -> None:
        return None
