"""Malformed frames: every one raises a typed CodecError, reads nothing out of bounds, allocates
nothing absurd.

Covers every truncation and every single-bit flip of a frame that uses every section, hostile
lengths and counts behind a valid CRC (each bounded before allocation, checked with tracemalloc),
unknown message/entry types, unsupported versions, bad magic, reserved bits and trailing bytes.
"""

import struct
import tracemalloc

import pytest

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.errors import (
    CodecError,
    FrameChecksumError,
    FrameMalformedError,
    FrameTooLargeError,
    FrameTruncatedError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
)
from tests.raft.codec_cases import append_entries, reseal, samples, set_u32

# A frame with every section: scalars, context, entries, snapshot, snap_data.
FULL = m.Message(
    m.MSG_SNAP,
    to=3,
    frm=1,
    term=7,
    log_term=6,
    index=5,
    commit=4,
    reject=True,
    reject_hint=3,
    hint_term=2,
    snap_offset=1,
    snap_done=True,
    context=b"ctx",
    entries=[m.Entry(7, 8, b"first"), m.Entry(7, 9, b"", m.ENTRY_CONF_CHANGE)],
    snapshot=m.SnapshotMeta(10, 6, m.ConfState((1, 2), (3,), (4,), auto_leave=True)),
    snap_data=b"chunk",
)
# Where things are in an AppendEntries frame (6 scalars: to, frm, term, log_term, index, commit).
APP_ENTRY_COUNT_AT = 14 + 6 * 8
APP_TABLE_AT = APP_ENTRY_COUNT_AT + 4


def _entry_field(i: int, field_offset: int) -> int:
    return APP_TABLE_AT + 21 * i + field_offset


def test_error_classes_form_one_hierarchy() -> None:
    for cls in (
        FrameTruncatedError,
        FrameChecksumError,
        UnknownMessageTypeError,
        UnsupportedVersionError,
        FrameTooLargeError,
        FrameMalformedError,
    ):
        assert issubclass(cls, CodecError)
    assert issubclass(CodecError, ValueError)


def test_every_truncation_raises_truncated() -> None:
    frame = codec.encode(FULL)
    for cut in range(len(frame)):
        with pytest.raises(FrameTruncatedError, match="truncated"):
            codec.decode(frame[:cut])
    assert codec.decode(frame) == FULL


def test_every_truncation_is_held_by_the_reader_until_complete() -> None:
    frame = codec.encode(FULL)
    for cut in range(len(frame)):
        reader = codec.FrameReader()
        assert reader.feed(frame[:cut]) == []
        assert reader.pending_bytes == cut
        assert reader.feed(frame[cut:]) == [FULL]
        assert reader.pending_bytes == 0


def test_every_single_bit_flip_raises() -> None:
    frame = codec.encode(FULL)
    seen: set[type] = set()
    for bit in range(len(frame) * 8):
        bad = bytearray(frame)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CodecError) as info:
            codec.decode(bytes(bad))
        seen.add(type(info.value))
        # Through the stream reader: an error at once, or (a flipped length bit that makes
        # the frame longer) a wait for more bytes, and an error when they arrive.
        reader = codec.FrameReader(frame_bytes_max=4 * len(frame))
        with pytest.raises(CodecError):
            if reader.feed(bytes(bad)) == []:
                assert reader.pending_bytes == len(frame)
                reader.feed(bytes(4 * len(frame)))
    # Flips in the body and CRC are caught by the checksum; the header fields by their checks.
    assert FrameChecksumError in seen
    assert {FrameMalformedError, UnsupportedVersionError} <= seen


def test_checksum_error_names_stored_and_computed() -> None:
    frame = bytearray(codec.encode(samples()["heartbeat"]))
    frame[-1] ^= 0xFF
    with pytest.raises(FrameChecksumError, match=r"stored CRC32C 0x[0-9a-f]{8} at offset 8"):
        codec.decode(bytes(frame))


def test_bad_magic_and_unsupported_version() -> None:
    frame = codec.encode(samples()["vote"])
    with pytest.raises(FrameMalformedError, match="bad magic at offset 0"):
        codec.decode(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(FrameMalformedError, match="bad magic"):
        codec.decode(reseal(b"XX" + frame[2:]))
    for version in (0, 2, 255):
        with pytest.raises(UnsupportedVersionError, match=f"frame version {version} at offset 2"):
            codec.decode(reseal(frame[:2] + bytes([version]) + frame[3:]))


def test_unknown_message_type_behind_a_valid_checksum() -> None:
    frame = codec.encode(samples()["vote"])
    for msg_type in (0, 15, 200, 255):
        with pytest.raises(UnknownMessageTypeError, match=f"message type {msg_type} at offset 3"):
            codec.decode(reseal(frame[:3] + bytes([msg_type]) + frame[4:]))


def test_unknown_entry_type_and_bad_auto_leave() -> None:
    frame = codec.encode(append_entries(2))
    bad = bytearray(frame)
    bad[_entry_field(1, 16)] = 9
    with pytest.raises(FrameMalformedError, match="unknown entry type 9"):
        codec.decode(reseal(bad))
    snap = codec.encode(m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(1, 1)))
    bad = bytearray(snap)
    bad[14 + 16] = 2
    with pytest.raises(FrameMalformedError, match="auto_leave"):
        codec.decode(reseal(bad))


def test_reserved_bit_and_trailing_bytes() -> None:
    frame = codec.encode(samples()["timeout_now"])
    fields = struct.unpack_from("<H", frame, 12)[0] | 0x8000
    with pytest.raises(FrameMalformedError, match="reserved bit 15"):
        codec.decode(reseal(frame[:12] + struct.pack("<H", fields) + frame[14:]))
    # A length field that claims less than the body holds: bytes left after the last field.
    frame = codec.encode(samples()["heartbeat"])
    longer = set_u32(frame + b"\0\0\0", 4, len(frame) + 3)
    with pytest.raises(FrameMalformedError, match="3 bytes after the last field"):
        codec.decode(longer)
    with pytest.raises(FrameMalformedError, match="exactly one frame"):
        codec.decode(frame + frame)


def test_frame_length_below_minimum() -> None:
    frame = codec.encode(samples()["timeout_now"])
    for length in (0, 11, 13):
        with pytest.raises(FrameMalformedError, match=f"frame length {length} at offset 4"):
            codec.decode(set_u32(frame, 4, length))
        with pytest.raises(FrameMalformedError):
            codec.FrameReader().feed(set_u32(frame, 4, length))


def test_body_lengths_that_overrun_the_frame_are_truncation() -> None:
    frame = codec.encode(append_entries(3))
    # Entry 2's data length one past the frame end.
    with pytest.raises(FrameTruncatedError, match="entry 2 data"):
        codec.decode(set_u32(frame, _entry_field(2, 17), 101))
    # Entry 0 longer: entries 1 and 2 no longer fit.
    with pytest.raises(FrameTruncatedError, match=r"entry [12] data"):
        codec.decode(set_u32(frame, _entry_field(0, 17), 250))
    # More entries announced than the table has room for.
    with pytest.raises(FrameTruncatedError, match="table of 40 entries"):
        codec.decode(set_u32(frame, APP_ENTRY_COUNT_AT, 40))
    # Fewer entries announced: the rest of the table is trailing garbage.
    with pytest.raises(CodecError):
        codec.decode(set_u32(frame, APP_ENTRY_COUNT_AT, 2))
    ctx = codec.encode(m.Message(m.MSG_HEARTBEAT, context=b"abc"))
    with pytest.raises(FrameTruncatedError, match="the context at offset 18"):
        codec.decode(set_u32(ctx, 14, 4))
    snap = codec.encode(m.Message(m.MSG_SNAP, snap_data=b"abc"))
    with pytest.raises(FrameTruncatedError, match="snap_data at offset 18"):
        codec.decode(set_u32(snap, 14, 1000))


def _peak_bytes(fn: object, *args: object) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(CodecError):
            fn(*args)  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


ABSURD = 0xFFFFFFFF


def test_absurd_counts_and_lengths_raise_without_allocating() -> None:
    frame = codec.encode(append_entries(3))
    snap = codec.encode(m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(1, 1), snap_data=b"x"))
    ctx = codec.encode(m.Message(m.MSG_HEARTBEAT, context=b"abc"))
    hostile = {
        "entry count": (set_u32(frame, APP_ENTRY_COUNT_AT, ABSURD), FrameTooLargeError),
        "entry count below max": (set_u32(frame, APP_ENTRY_COUNT_AT, 65536), FrameTruncatedError),
        "entry length": (set_u32(frame, _entry_field(0, 17), ABSURD), FrameTooLargeError),
        "context length": (set_u32(ctx, 14, ABSURD), FrameTooLargeError),
        "conf ids": (set_u32(snap, 14 + 17, ABSURD), FrameTooLargeError),
        "conf ids below max": (set_u32(snap, 14 + 21, 4096), FrameTruncatedError),
        "snap_data length": (set_u32(snap, 14 + 29, ABSURD), FrameTooLargeError),
        "frame length": (set_u32(frame, 4, ABSURD), FrameTooLargeError),
    }
    for name, (bad, error) in hostile.items():
        with pytest.raises(error):
            codec.decode(bad)
        peak = _peak_bytes(codec.decode, bad)
        assert peak < 64 * 1024, f"{name}: {peak} bytes allocated for a {len(bad)}-byte frame"


def test_reader_refuses_an_oversized_header_before_buffering() -> None:
    reader = codec.FrameReader(frame_bytes_max=1024)
    head = codec.encode(append_entries(20))[:12]  # announces about 2.6 KB
    with pytest.raises(FrameTooLargeError, match="above the limit of 1024 bytes"):
        reader.feed(head)
    huge = set_u32(codec.encode(samples()["heartbeat"]), 4, ABSURD)[:12]
    peak = _peak_bytes(codec.FrameReader().feed, huge)
    assert peak < 64 * 1024
    # Header split across chunks: refused as soon as its 12th byte arrives.
    reader = codec.FrameReader(frame_bytes_max=1024)
    assert reader.feed(head[:11]) == []
    with pytest.raises(FrameTooLargeError):
        reader.feed(head[11:])


def test_the_largest_allowed_frame_is_accepted_by_a_tight_reader() -> None:
    frame = codec.encode(append_entries(20))
    reader = codec.FrameReader(frame_bytes_max=len(frame))
    assert reader.feed(frame[:100]) == [] and reader.feed(frame[100:]) == [append_entries(20)]
    with pytest.raises(FrameTooLargeError):
        codec.FrameReader(frame_bytes_max=len(frame) - 1).feed(frame)
