"""haperf._native.wal: frame round trips, FrameBuffer semantics, the scan's classification.

Property tests encode random records and scan them back; mutation tests flip bits, zero and
garbage-fill regions and check the scan says clean/torn/corrupt exactly as docs/wal.md states;
random bytes never crash or hang the scan.
"""

import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import wal as native
from haperf.checksum import crc32c
from haperf.errors import RecordTooLargeError, WALIndexError

SALT = 0x5EED1234
START = 32
RMAX = 4096

records_st = st.lists(st.binary(max_size=300), min_size=1, max_size=40)


def image(records: list[bytes], first: int = 1, tail: int = 256) -> bytearray:
    out = bytearray(START)
    for i, r in enumerate(records):
        out += native.encode(r, first + i, SALT)
    return out + bytearray(tail)


def scan(buf: bytes | bytearray, first: int = 1) -> tuple[int, int, int, list[int], int, int, int]:
    status, end, count, offs, reason, next_valid, data_end = native.scan(
        buf, START, first, SALT, RMAX
    )
    offsets = array.array("I")
    offsets.frombytes(offs)
    return status, end, count, list(offsets), reason, next_valid, data_end


def test_frame_layout_is_as_documented() -> None:
    frame = native.encode(b"abc", 7, SALT)
    assert len(frame) == 24 + 8
    assert int.from_bytes(frame[4:8], "little") == 3
    assert int.from_bytes(frame[8:16], "little") == 7
    assert frame[16] == native.TYPE_DATA and frame[17] == native.MAGIC == 0xA7
    assert frame[18:20] == b"\0\0"
    assert int.from_bytes(frame[20:24], "little") == SALT
    assert frame[24:27] == b"abc" and frame[27:] == bytes(5)
    assert int.from_bytes(frame[0:4], "little") == crc32c(frame[4:24] + b"abc")


@given(records_st, st.integers(1, 2**63))
def test_scan_round_trip(records: list[bytes], first: int) -> None:
    buf = image(records, first)
    status, end, count, offsets, reason, _, data_end = scan(buf, first)
    assert status == native.SCAN_CLEAN and reason == 0
    assert count == len(records)
    for i, (off, rec) in enumerate(zip(offsets, records, strict=True)):
        assert native.read(buf, off, first + i, SALT, RMAX) == rec
        assert native.verify(buf, off, first + i, SALT, RMAX) == len(rec)
    assert end == len(buf) - 256 and data_end <= end


@given(records_st, st.data())
def test_any_cut_of_the_last_record_is_torn_never_corrupt(
    records: list[bytes], data: st.DataObject
) -> None:
    full = image(records, tail=0)
    last_start = len(full) - len(native.encode(records[-1], len(records), SALT))
    cut = data.draw(st.integers(last_start, len(full) - 1))
    fill = data.draw(st.sampled_from(["zero", "garbage"]))
    buf = bytearray(full) + bytearray(64)
    if fill == "zero":
        buf[cut:] = bytes(len(buf) - cut)
    else:
        buf[cut:] = bytes((i * 37 + 11) % 256 for i in range(len(buf) - cut))
    status, end, count, *_ = scan(buf)
    covered_end = last_start + 24 + len(records[-1])
    if fill == "zero" and (cut >= covered_end or not any(full[cut:])):
        # Only zero bytes (padding, or a payload's trailing zeros) were "cut": it is intact.
        assert (status, count) == (native.SCAN_CLEAN, len(records))
        return
    if fill == "zero" and not any(buf[last_start:cut]):
        # Every byte of the last frame that remains is zero: nothing was ever written.
        assert status == native.SCAN_CLEAN
    else:
        assert status == native.SCAN_TORN
    assert count == len(records) - 1 and end == last_start


@given(st.lists(st.binary(max_size=200), min_size=2, max_size=20), st.data())
def test_a_bit_flip_before_the_last_frame_is_corruption(
    records: list[bytes], data: st.DataObject
) -> None:
    buf = image(records)
    frames_end = len(buf) - 256
    last_start = frames_end - len(native.encode(records[-1], len(records), SALT))
    byte = data.draw(st.integers(START, last_start - 1))
    bit = data.draw(st.integers(0, 7))
    buf[byte] ^= 1 << bit
    status, end, _count, _, reason, next_valid, _ = scan(buf)
    if _is_padding(records, byte):
        # Padding is outside the CRC but must be zero, so a flip there is damage too.
        assert native.reason_text(reason) == "nonzero padding after the payload"
    assert status == native.SCAN_CORRUPT, (byte, bit)
    assert end <= byte and next_valid > end and reason != 0


def _is_padding(records: list[bytes], byte: int) -> bool:
    off = START
    for i, r in enumerate(records):
        size = len(native.encode(r, i + 1, SALT))
        if off <= byte < off + size:
            return byte >= off + 24 + len(r)
        off += size
    return False


def test_a_flip_in_the_last_frame_is_torn() -> None:
    records = [b"a" * 50, b"b" * 50, b"c" * 50]
    buf = image(records)
    last = len(buf) - 256 - len(native.encode(records[-1], 3, SALT))
    for byte in range(last, last + 24 + 50):
        flipped = bytearray(buf)
        flipped[byte] ^= 0x10
        status, end, count, *_ = scan(flipped)
        assert (status, end, count) == (native.SCAN_TORN, last, 2), byte


def test_out_of_sequence_and_foreign_frames_are_corruption() -> None:
    buf = bytearray(START) + native.encode(b"x", 1, SALT) + native.encode(b"y", 3, SALT)
    status, end, count, _, reason, *_ = scan(buf + bytes(64))
    assert (status, count, end) == (native.SCAN_CORRUPT, 1, START + 32)
    assert "out-of-sequence" in native.reason_text(reason)
    foreign = bytearray(START) + native.encode(b"x", 1, SALT ^ 1)
    status, _end, count, _, reason, *_ = scan(foreign + bytes(64))
    assert (status, count) == (native.SCAN_CORRUPT, 0) and "another log" in native.reason_text(
        reason
    )


def test_zero_gap_then_a_valid_frame_is_corruption() -> None:
    records = [b"r%d" % i for i in range(5)]
    buf = image(records)
    second = START + len(native.encode(records[0], 1, SALT))
    third = second + len(native.encode(records[1], 2, SALT))
    buf[second:third] = bytes(third - second)
    status, end, count, _, _, next_valid, _ = scan(buf)
    assert (status, end, count, next_valid) == (native.SCAN_CORRUPT, second, 1, third)


def test_stop_index_stops_before() -> None:
    buf = image([b"a", b"b", b"c"])
    status, _end, count, *_ = native.scan(buf, START, 1, SALT, RMAX, 2)
    assert (status, count) == (native.SCAN_LIMIT, 2)


@given(st.binary(max_size=2000))
def test_scan_of_random_bytes_never_crashes(junk: bytes) -> None:
    status, end, _count, *_ = native.scan(bytes(START) + junk, START, 1, SALT, RMAX)
    assert status in (native.SCAN_CLEAN, native.SCAN_TORN, native.SCAN_CORRUPT)
    assert START <= end <= START + len(junk)


def test_verify_and_read_reject_damage() -> None:
    frame = bytearray(native.encode(b"hello", 1, SALT))
    with pytest.raises(ValueError, match="out-of-sequence"):
        native.read(frame, 0, 2, SALT, RMAX)
    frame[26] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        native.verify(frame, 0, 1, SALT, RMAX)
    with pytest.raises(ValueError, match="outside"):
        native.read(frame, 999, 1, SALT, RMAX)


class Sink:
    """A flush callback that drains the FrameBuffer into a list of chunks."""

    def __init__(self) -> None:
        self.fb: native.FrameBuffer | None = None
        self.chunks: list[tuple[bytes, int, int, bytes]] = []

    def __call__(self) -> None:
        assert self.fb is not None
        got = self.fb.take(1 << 30, START)
        assert got is not None
        self.chunks.append(got)


@given(records_st)
def test_framebuffer_matches_encode_and_flushes_when_full(records: list[bytes]) -> None:
    sink = Sink()
    fb = native.FrameBuffer(1024 + 24 + 8, 1024, 1, SALT, sink)
    sink.fb = fb
    for i, r in enumerate(records):
        assert fb.append(r) == i + 1
        assert fb.read(i + 1) if r else True
    rest = fb.take(1 << 30, START)
    chunks = sink.chunks + ([rest] if rest else [])
    assert b"".join(c[0] for c in chunks) == b"".join(
        native.encode(r, i + 1, SALT) for i, r in enumerate(records)
    )
    assert sum(c[2] for c in chunks) == len(records)
    assert fb.take(1 << 30, 0) is None and fb.next_index == len(records) + 1


def test_framebuffer_take_prefix_and_offsets() -> None:
    fb = native.FrameBuffer(4096, 1024, 10, SALT, lambda: None)
    assert fb.append_batch([b"a" * 10, b"b" * 100, b"c"]) == 12
    sizes = [24 + 16, 24 + 104, 24 + 8]
    chunk, first, count, offs = fb.take(sizes[0] + sizes[1] + 5, 1000)  # type: ignore[misc]
    got = array.array("I")
    got.frombytes(offs)
    assert (first, count, list(got)) == (10, 2, [1000, 1000 + sizes[0]])
    assert len(chunk) == sizes[0] + sizes[1]
    assert fb.first_index == 12 and fb.pending_count == 1 and fb.read(12) == b"c"
    assert fb.take(10, 0) == (b"", 12, 0, b"")
    assert fb.take(1 << 20, 0)[2] == 1  # type: ignore[index]


def test_framebuffer_errors() -> None:
    fb = native.FrameBuffer(4096, 100, 1, SALT, lambda: None)
    with pytest.raises(RecordTooLargeError, match="record_bytes_max=100"):
        fb.append(bytes(101))
    with pytest.raises(WALIndexError, match="next index is 1"):
        fb.append(b"x", 5)
    assert fb.append(b"x", 1) == 1
    with pytest.raises(WALIndexError):
        fb.append_batch([b"x"], 7)
    with pytest.raises(ValueError, match="at least one"):
        fb.append_batch([])
    with pytest.raises(KeyError):
        fb.read(5)
    fb.fail(RuntimeError("poisoned for test"))
    with pytest.raises(RuntimeError, match="poisoned"):
        fb.append(b"y")
    with pytest.raises(ValueError, match="must hold one frame"):
        native.FrameBuffer(64, 100, 1, SALT, lambda: None)
    fb2 = native.FrameBuffer(4096, 100, 1, SALT, lambda: None)
    assert fb2.append(memoryview(b"abc")) == 1 and fb2.append(bytearray(b"de")) == 2
    fb2.reset(50)
    assert fb2.pending_count == 0 and fb2.append(b"z") == 50


def test_take_hands_out_the_buffer_without_copy_and_never_reuses_a_live_chunk() -> None:
    fb = native.FrameBuffer(4096, 1024, 1, SALT, lambda: None)
    fb.append(b"first")
    got = fb.take(1 << 20, 0)
    assert got is not None
    first_chunk = got[0]
    kept = bytes(first_chunk)
    assert not isinstance(first_chunk, bytes)  # the buffer itself, no copy
    assert memoryview(first_chunk).readonly
    # While that chunk is alive, new frames never overwrite its memory.
    for i in range(3):
        fb.append(b"next-%d" % i)
        got2 = fb.take(1 << 20, 0)
        assert got2 is not None
        assert bytes(first_chunk) == kept
    assert bytes(first_chunk) == native.encode(b"first", 1, SALT)
