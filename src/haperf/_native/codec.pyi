"""Stub for haperf._native.codec: the checksummed binary wire format of Raft messages."""

from collections.abc import Iterable
from typing import Final

from typing_extensions import Buffer

from haperf._native.raftmsg import Message

VERSION: Final[int]
MAGIC: Final[bytes]
HEADER_SIZE: Final[int]
FRAME_SIZE_MIN: Final[int]
FRAME_SIZE_MAX: Final[int]
ENTRIES_MAX: Final[int]
ENTRY_SIZE_MAX: Final[int]
CONTEXT_SIZE_MAX: Final[int]
CONF_IDS_PER_LIST_MAX: Final[int]
SNAP_DATA_SIZE_MAX: Final[int]
COPY_SIZE_MAX: Final[int]
FRAME_PREALLOC_SIZE_MAX: Final[int]
FIELD_BITS: Final[dict[str, int]]

def encode(msg: Message) -> bytes: ...
def encoded_size(msg: Message) -> int: ...
def encode_into(msg: Message, buf: bytearray) -> int: ...
def encode_many(msgs: Iterable[Message]) -> bytes: ...
def decode(frame: Buffer, copy_bytes_max: int = ...) -> Message: ...
def _objects_floor(payloads: Buffer, count: int) -> Message: ...

class FrameReader:
    @property
    def frame_bytes_max(self) -> int: ...
    @property
    def copy_bytes_max(self) -> int: ...
    def __init__(self, frame_bytes_max: int = ..., copy_bytes_max: int = ...) -> None: ...
    @property
    def pending_bytes(self) -> int: ...
    def feed(self, data: Buffer) -> list[Message]: ...
    def feed_borrowed(self, data: Buffer) -> list[Message]: ...
