"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


class WALError(HaperfError):
    """A write-ahead log operation failed (base of every haperf.wal error)."""


class CorruptionError(WALError):
    """A WAL file holds damage that recovery must not skip: names segment, offset and index."""


class WALPoisonedError(WALError):
    """An earlier write or fsync failed; the WAL refuses every later append and sync (reopen)."""


class WALFullError(WALPoisonedError):
    """The disk is full (ENOSPC); nothing half-written stays visible; free space and reopen."""


class WALLockedError(WALError):
    """Another WAL (in this or another process) holds the directory's lock."""


class WALClosedError(WALError):
    """The WAL was closed; open it again to use it."""


class WALIndexError(WALError, IndexError):
    """An index outside the log, or an append whose expected index is not the next one."""


class RecordTooLargeError(WALError, ValueError):
    """A record is longer than the WAL's record_bytes_max."""
