"""WAL directory layout and the two small checksummed headers: segment header and meta file.

Owns file names and the byte layout of everything except record frames (those are in
haperf._native.wal). docs/wal.md documents both byte by byte.

Segment header (SEGMENT_HEADER_BYTES = 32, at offset 0 of every segment, little-endian):
    0  8s  SEGMENT_MAGIC b"HAPERFWS"     8  u16 FORMAT_VERSION      10 u16 header bytes (32)
    12 u32 salt (low 32 bits of log id)  16 u64 first index          24 u32 segment bytes
    28 u32 crc32c of bytes 0..28
Meta file `wal.meta` (META_BYTES = 56):
    0  8s  META_MAGIC b"HAPERFWM"        8  u16 FORMAT_VERSION      10 u16 flags (bit 0: limit)
    12 u32 salt                          16 u64 log id               24 u64 first index
    32 u64 first index of the last segment                           40 u64 truncation limit
    48 u32 crc32c of bytes 0..48         52 u32 reserved, 0
Invariants: decoding checks magic, version, sizes and CRC, and raises CorruptionError naming
the file and what is wrong; encoding and decoding are exact inverses.
"""

import struct
from dataclasses import dataclass

from haperf.checksum import crc32c
from haperf.errors import CorruptionError

SEGMENT_SUFFIX = ".wal"
SEGMENT_NAME_DIGITS = 20
META_NAME = "wal.meta"
META_TMP_NAME = "wal.meta.tmp"
LOCK_NAME = "LOCK"
PREALLOC_NAME = "segment.prealloc"
TMP_SUFFIXES = (".tmp", ".prealloc")

FORMAT_VERSION = 1
SEGMENT_MAGIC = b"HAPERFWS"
META_MAGIC = b"HAPERFWM"
SEGMENT_HEADER_BYTES = 32
META_BYTES = 56
META_FLAG_LIMIT = 1

_SEGMENT = struct.Struct("<8sHHIQI")  # 28 bytes, then the CRC
_META = struct.Struct("<8sHHIQQQQ")  # 48 bytes, then the CRC and 4 reserved bytes
_U32 = struct.Struct("<I")


def segment_name(first_index: int) -> str:
    return f"{first_index:0{SEGMENT_NAME_DIGITS}d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first index a segment file name carries, or None if it is not a segment name."""
    stem = name[: -len(SEGMENT_SUFFIX)]
    if not name.endswith(SEGMENT_SUFFIX) or len(stem) != SEGMENT_NAME_DIGITS or not stem.isdigit():
        return None
    return int(stem)


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    salt: int
    first_index: int
    segment_bytes: int

    def encode(self) -> bytes:
        head = _SEGMENT.pack(
            SEGMENT_MAGIC,
            FORMAT_VERSION,
            SEGMENT_HEADER_BYTES,
            self.salt,
            self.first_index,
            self.segment_bytes,
        )
        return head + _U32.pack(crc32c(head))

    @staticmethod
    def decode(data: bytes, where: str) -> "SegmentHeader":
        if len(data) < SEGMENT_HEADER_BYTES:
            raise CorruptionError(
                f"{where}: segment header is {len(data)} bytes, expected {SEGMENT_HEADER_BYTES}"
            )
        magic, version, size, salt, first, seg_bytes = _SEGMENT.unpack_from(data)
        (stored,) = _U32.unpack_from(data, _SEGMENT.size)
        if magic != SEGMENT_MAGIC:
            raise CorruptionError(f"{where}: not a haperf WAL segment (magic {magic!r})")
        if crc32c(data[: _SEGMENT.size]) != stored:
            raise CorruptionError(f"{where}: segment header checksum mismatch at offset 0")
        if version != FORMAT_VERSION or size != SEGMENT_HEADER_BYTES:
            raise CorruptionError(
                f"{where}: segment format version {version} (header {size} bytes) is not "
                f"supported; this haperf reads version {FORMAT_VERSION}"
            )
        return SegmentHeader(salt, first, seg_bytes)


@dataclass(frozen=True, slots=True)
class Meta:
    """The directory's durable state: log id, first index, last segment, pending truncation."""

    log_id: int
    first_index: int
    last_segment: int
    truncate_limit: int | None = None

    @property
    def salt(self) -> int:
        return self.log_id & 0xFFFFFFFF

    def encode(self) -> bytes:
        flags = META_FLAG_LIMIT if self.truncate_limit is not None else 0
        head = _META.pack(
            META_MAGIC,
            FORMAT_VERSION,
            flags,
            self.salt,
            self.log_id,
            self.first_index,
            self.last_segment,
            self.truncate_limit or 0,
        )
        return head + _U32.pack(crc32c(head)) + bytes(4)

    @staticmethod
    def decode(data: bytes, where: str) -> "Meta":
        if len(data) != META_BYTES:
            raise CorruptionError(f"{where}: meta file is {len(data)} bytes, expected {META_BYTES}")
        magic, version, flags, salt, log_id, first, last, limit = _META.unpack_from(data)
        (stored,) = _U32.unpack_from(data, _META.size)
        if magic != META_MAGIC:
            raise CorruptionError(f"{where}: not a haperf WAL meta file (magic {magic!r})")
        if crc32c(data[: _META.size]) != stored:
            raise CorruptionError(f"{where}: meta file checksum mismatch")
        if version != FORMAT_VERSION:
            raise CorruptionError(f"{where}: meta format version {version} is not supported")
        if salt != log_id & 0xFFFFFFFF or first < 1 or last < 1 or any(data[_META.size + 4 :]):
            raise CorruptionError(f"{where}: meta file fields are inconsistent")
        return Meta(log_id, first, last, limit if flags & META_FLAG_LIMIT else None)
