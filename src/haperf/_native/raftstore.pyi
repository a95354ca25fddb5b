"""Stub for haperf._native.raftstore: Raft entries framed into the WAL buffer and decoded back."""

from typing import Final

from typing_extensions import Buffer

from haperf._native.raftmsg import Entry
from haperf._native.wal import FrameBuffer

HEADER_BYTES_MAX: Final[int]

def header(term: int, entry_type: int) -> bytes: ...
def append_entries(fb: FrameBuffer, entries: list[Entry], index: int) -> int: ...
def decode_entry(record: Buffer, index: int) -> Entry: ...
