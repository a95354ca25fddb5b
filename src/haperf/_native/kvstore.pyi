"""Stub for haperf._native.kvstore: KVCore, the native apply of haperf.kv.KVStore."""

from typing import Final

EXPIRE_SWEEP_MAX: Final[int]
EXPIRE_HEAP_SLACK: Final[int]
EXPIRE_HEAP_MIN_REBUILD: Final[int]

class KVCore:
    _data: dict[bytes, bytes]
    _expires: dict[bytes, int]
    _heap: list[tuple[int, bytes]]
    clock_ns: int
    applied_index: int
    key_bytes_max: int
    value_bytes_max: int
    def __init__(self, key_bytes_max: int, value_bytes_max: int) -> None: ...
    def apply(self, index: int, data: bytes) -> object: ...
    def snapshot_records(self, chunk_bytes: int) -> list[bytes]: ...
    def prefix_scan(self, prefix: bytes, clock_ns: int) -> list[bytes]: ...

def parse_records(
    buf: bytes,
    pos: int,
    count: int,
    first_record: int,
    key_bytes_max: int,
    value_bytes_max: int,
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
) -> tuple[int, int]: ...
