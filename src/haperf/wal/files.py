"""The WAL's file layer: every syscall that changes a WAL directory goes through a FileOps.

Owns the FileOps protocol and OsFileOps, the real one over `os`. Tests substitute a FileOps that
fails on command (EIO from fdatasync, ENOSPC from a write) to prove the failure semantics; the
WAL never calls `os` for writes, syncs, renames or removals except through this layer.

Invariants: pwrite writes every byte or raises (a short write is retried until done or an
error); fdatasync falls back to fsync where the platform has no fdatasync; fsync_dir makes a
directory's entries (create, rename, unlink) durable.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer



class FileOps(Protocol):
    """The syscalls a WAL uses to change files; see OsFileOps for the meaning of each."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int: ...
    def close(self, fd: int) -> None: ...
    def pwrite(self, fd: int, data: Buffer, offset: int) -> None: ...
    def fdatasync(self, fd: int) -> None: ...
    def fsync(self, fd: int) -> None: ...
    def fsync_dir(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def unlink(self, path: str) -> None: ...


# A write that makes no progress this many times in a row is an error, not a loop.
SHORT_WRITES_MAX = 64


class OsFileOps:
    """FileOps over the os module."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pwrite(self, fd: int, data: Buffer, offset: int) -> None:
        view = memoryview(data).cast("B")
        done = 0
        stalls = 0
        while done < len(view):
            n = os.pwrite(fd, view[done:], offset + done)
            if n <= 0:
                stalls += 1
                if stalls >= SHORT_WRITES_MAX:
                    raise OSError(f"pwrite made no progress at offset {offset + done}")
                continue
            done += n

    def fdatasync(self, fd: int) -> None:
        sync = getattr(os, "fdatasync", os.fsync)
        sync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)
