"""Crash injection for DiskStorage tests: a FileOps that ends the process at the n-th change.

Owns CrashOps (counts every call that changes files: pwrite, fsync, fdatasync, fsync_dir,
rename, unlink; at call number `crash_at`, before doing it, the process exits at once with
CRASH_EXIT, like a kill -9: nothing is flushed, the page cache keeps what was written) and
`run_forked`, which runs a function in a forked child and returns its exit status.
"""

import os
from collections.abc import Callable

from typing_extensions import Buffer

from haperf.wal.files import OsFileOps

CRASH_EXIT = 17
DONE_EXIT = 0


class CrashOps(OsFileOps):
    def __init__(self, crash_at: int) -> None:
        self.crash_at = crash_at
        self.armed = False
        self.calls = 0

    def _step(self) -> None:
        if not self.armed:
            return
        self.calls += 1
        if self.calls >= self.crash_at:
            os._exit(CRASH_EXIT)

    def pwrite(self, fd: int, data: Buffer, offset: int) -> None:
        self._step()
        super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        self._step()
        super().fdatasync(fd)

    def fsync(self, fd: int) -> None:
        self._step()
        super().fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self._step()
        super().fsync_dir(path)

    def rename(self, src: str, dst: str) -> None:
        self._step()
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self._step()
        super().unlink(path)


def run_forked(job: Callable[[], None]) -> int:
    """Run job() in a forked child; its exit status (DONE_EXIT when it returned)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            job()
            code = DONE_EXIT
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
