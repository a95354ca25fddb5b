"""WAL test configuration: haperf.wal is POSIX-only (flock, fdatasync, mmap flags, SIGKILL), so
on Windows its tests are not collected (the WAL raises a clear error there instead)."""

import sys

collect_ignore_glob = ["test_*.py"] if sys.platform == "win32" else []
