"""Shared helpers for the DiskStorage tests: small geometry, state comparison in plain tuples.

Owns SMALL (segment and entry sizes small enough that tests roll segments), `plain()` which
turns an initial_state() into comparable tuples, and `open_small`.
"""

from pathlib import Path
from typing import Any

from haperf._native.raft import HardState
from haperf._native.raftmsg import Entry, SnapshotMeta
from haperf.raft.durable import DiskStorage

SMALL: dict[str, Any] = {"segment_bytes": 8192, "entry_bytes_max": 1024}

Plain = tuple[
    tuple[int, int, int],
    tuple[int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], bool, bytes] | None,
    list[tuple[int, int, int, bytes]],
]


def open_small(directory: Path | str, **options: Any) -> DiskStorage:
    return DiskStorage(directory, **{**SMALL, **options})


def plain_snapshot(
    snapshot: tuple[SnapshotMeta, bytes] | None,
) -> tuple[int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], bool, bytes] | None:
    if snapshot is None:
        return None
    meta, data = snapshot
    c = meta.conf
    return (
        meta.index,
        meta.term,
        tuple(c.voters),
        tuple(c.learners),
        tuple(c.voters_outgoing),
        bool(c.auto_leave),
        bytes(data),
    )


def plain_entries(entries: list[Entry]) -> list[tuple[int, int, int, bytes]]:
    return [(e.index, e.term, e.type, bytes(e.data)) for e in entries]


def plain(
    state: tuple[HardState, tuple[SnapshotMeta, bytes] | None, list[Entry]],
) -> Plain:
    hs, snapshot, entries = state
    return (hs.term, hs.vote, hs.commit), plain_snapshot(snapshot), plain_entries(entries)
