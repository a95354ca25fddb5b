"""haperf.wal: a durable append-only log (the Raft log's storage, and usable on its own).

    >>> from haperf.wal import WAL
    >>> with WAL("/var/lib/app/wal") as wal:           # doctest: +SKIP
    ...     i = wal.append_durable(b"record")           # on disk when it returns
    ...     assert wal.read(i) == b"record"

Owns the public names: WAL (threads), AsyncWAL (asyncio), open(), the sync policies, the
pluggable file layer (FileOps, OsFileOps) and the recovery scan used by `python -m haperf wal`.
Guarantees (docs/wal.md): an acknowledged record survives a crash intact; a torn tail is
truncated and logged; mid-log corruption is an error naming file, offset and index, never
skipped; an fsync error poisons the WAL for good.
"""

from haperf.errors import (
    CorruptionError,
    RecordTooLargeError,
    WALClosedError,
    WALError,
    WALFullError,
    WALIndexError,
    WALLockedError,
    WALPoisonedError,
)
from haperf.wal.aio import AsyncWAL
from haperf.wal.files import FileOps, OsFileOps
from haperf.wal.log import SYNC_POLICIES, WAL, SyncPolicy, open_wal

open = open_wal

__all__ = [
    "SYNC_POLICIES",
    "WAL",
    "AsyncWAL",
    "CorruptionError",
    "FileOps",
    "OsFileOps",
    "RecordTooLargeError",
    "SyncPolicy",
    "WALClosedError",
    "WALError",
    "WALFullError",
    "WALIndexError",
    "WALLockedError",
    "WALPoisonedError",
    "open",
    "open_wal",
]
