"""The meta file and segment header: exact round trips, and any damage is a CorruptionError.

Fuzzed with random and mutated bytes: decoding never crashes and never accepts a changed byte.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import CorruptionError
from haperf.wal.format import (
    META_BYTES,
    SEGMENT_HEADER_BYTES,
    Meta,
    SegmentHeader,
    parse_segment_name,
    segment_name,
)

u64 = st.integers(1, 2**64 - 1)


@given(u64, u64, u64, st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_meta_round_trip(log_id: int, first: int, last: int, limit: int | None) -> None:
    meta = Meta(log_id, first, last, limit)
    data = meta.encode()
    assert len(data) == META_BYTES
    assert Meta.decode(data, "m") == meta


@given(st.integers(0, 2**32 - 1), u64, st.integers(0, 2**32 - 1))
def test_segment_header_round_trip(salt: int, first: int, size: int) -> None:
    header = SegmentHeader(salt, first, size)
    data = header.encode()
    assert len(data) == SEGMENT_HEADER_BYTES
    assert SegmentHeader.decode(data, "s") == header


@given(st.integers(0, META_BYTES - 1), st.integers(1, 255))
def test_any_changed_meta_byte_is_rejected(at: int, mask: int) -> None:
    data = bytearray(Meta(0x1234_5678_9ABC_DEF1, 10, 20, 15).encode())
    data[at] ^= mask
    with pytest.raises(CorruptionError):
        Meta.decode(bytes(data), "wal.meta")


@given(st.integers(0, SEGMENT_HEADER_BYTES - 1), st.integers(1, 255))
def test_any_changed_segment_header_byte_is_rejected(at: int, mask: int) -> None:
    data = bytearray(SegmentHeader(0xDEADBEEF, 77, 65536).encode())
    data[at] ^= mask
    with pytest.raises(CorruptionError):
        SegmentHeader.decode(bytes(data), "seg")


@given(st.binary(max_size=80))
def test_random_bytes_never_crash_the_decoders(junk: bytes) -> None:
    for decode in (Meta.decode, SegmentHeader.decode):
        try:
            value = decode(junk, "junk")
        except CorruptionError:
            continue
        assert value.encode() == junk  # only an exact encoding is ever accepted


def test_segment_names() -> None:
    assert segment_name(42) == "00000000000000000042.wal"
    assert parse_segment_name(segment_name(2**64 - 1)) == 2**64 - 1
    for bad in ("42.wal", "0000000000000000004x.wal", "00000000000000000042.tmp", "wal.meta"):
        assert parse_segment_name(bad) is None
