"""FrameReader: whole messages out of a byte stream cut at arbitrary TCP chunk boundaries.

Covers random split points (hypothesis) and byte-by-byte feeding, pending_bytes, where payload
views point (the caller's bytes chunk, an internal frame buffer, or a borrowed mutable buffer),
that feed() copies mutable input, that a failed reader refuses further input, and the
constructor's bounds.
"""

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.errors import CodecError, ConfigError, FrameChecksumError, FrameMalformedError
from tests.raft.codec_cases import append_entries, messages, samples

BIG = bytes(range(256)) * 3  # above COPY_SIZE_MAX: decoded as a view


def _feed_in_pieces(reader: codec.FrameReader, stream: bytes, cuts: list[int]) -> list[m.Message]:
    out: list[m.Message] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        out += reader.feed(stream[start:cut])
        start = cut
    return out


@given(st.lists(messages(), min_size=1, max_size=6), st.data())
def test_random_split_points_yield_every_message_in_order(
    msgs: list[m.Message], data: st.DataObject
) -> None:
    stream = codec.encode_many(msgs)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    reader = codec.FrameReader()
    assert _feed_in_pieces(reader, stream, cuts) == msgs
    assert reader.pending_bytes == 0


@given(st.lists(messages(), min_size=1, max_size=4), st.data())
def test_random_splits_of_mutable_chunks_through_both_feeds(
    msgs: list[m.Message], data: st.DataObject
) -> None:
    stream = codec.encode_many(msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [bytearray(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    copied, borrowed = codec.FrameReader(), codec.FrameReader()
    out_copied: list[m.Message] = []
    out_borrowed: list[m.Message] = []
    for piece in pieces:
        out_copied += copied.feed(piece)
        out_borrowed += borrowed.feed_borrowed(memoryview(piece))
    assert out_copied == msgs and out_borrowed == msgs
    for piece in pieces:
        piece[:] = bytes(len(piece))  # feed() copied: its messages do not change
    assert out_copied == msgs


def test_byte_by_byte_feeding() -> None:
    msgs = list(samples().values())
    stream = codec.encode_many(msgs)
    reader = codec.FrameReader()
    out: list[m.Message] = []
    ends = set()
    total = 0
    for msg in msgs:
        total += codec.encoded_size(msg)
        ends.add(total)
    last_end = 0
    for i in range(len(stream)):
        got = reader.feed(stream[i : i + 1])
        if i + 1 in ends:
            last_end = i + 1
        assert len(got) == (1 if i + 1 == last_end else 0)
        assert reader.pending_bytes == i + 1 - last_end
        out += got
    assert out == msgs


def test_pending_bytes_counts_the_unfinished_frame() -> None:
    frame = codec.encode(append_entries(5))
    reader = codec.FrameReader()
    assert reader.pending_bytes == 0
    assert reader.feed(frame + frame[:5]) == [append_entries(5)]
    assert reader.pending_bytes == 5
    assert reader.feed(frame[5:40]) == [] and reader.pending_bytes == 40
    assert reader.feed(frame[40:] + frame) == [append_entries(5)] * 2
    assert reader.pending_bytes == 0
    assert reader.feed(b"") == []


def test_whole_frames_in_a_bytes_chunk_are_viewed_in_place() -> None:
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, BIG)])
    frame = codec.encode(msg)
    chunk = frame + frame + frame[:30]
    first, second = codec.FrameReader().feed(chunk)
    assert first.entries[0].data.obj is chunk and second.entries[0].data.obj is chunk
    assert first == msg == second


def test_a_frame_spanning_chunks_is_assembled_once() -> None:
    msg = m.Message(m.MSG_SNAP, snap_data=BIG)
    frame = codec.encode(msg)
    reader = codec.FrameReader()
    reader.feed(frame[:100])
    (out,) = reader.feed(frame[100:])
    owner = out.snap_data.obj
    assert type(owner) is bytes and owner == frame and owner is not frame


def test_feed_copies_mutable_input() -> None:
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, BIG)])
    buf = bytearray(codec.encode(msg))
    (out,) = codec.FrameReader().feed(buf)
    buf[-1] ^= 0xFF
    buf.extend(b"reusable")  # no export on buf remains
    assert out == msg


def test_feed_borrowed_views_the_callers_buffer() -> None:
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, BIG)])
    buf = bytearray(codec.encode(msg))
    (out,) = codec.FrameReader().feed_borrowed(buf)
    view = out.entries[0].data
    assert view.obj is buf and view.readonly
    with pytest.raises(BufferError):
        buf.extend(b"x")  # pinned while the view lives
    buf[-1] ^= 0xFF  # the documented hazard: a change shows through
    assert bytes(view) != BIG
    del out, view
    buf.extend(b"x")


def test_feed_borrowed_copies_the_unfinished_tail() -> None:
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, BIG)])
    frame = codec.encode(msg)
    buf = bytearray(frame[:50])
    reader = codec.FrameReader()
    assert reader.feed_borrowed(buf) == []
    buf[:] = bytes(50)  # the caller reuses its buffer at once
    assert reader.feed_borrowed(memoryview(frame)[50:]) == [msg]


def test_a_failed_reader_refuses_further_input() -> None:
    frame = bytearray(codec.encode(samples()["heartbeat"]))
    frame[-1] ^= 1
    reader = codec.FrameReader()
    with pytest.raises(FrameChecksumError):
        reader.feed(bytes(frame))
    assert reader.pending_bytes == 0
    with pytest.raises(FrameMalformedError, match="already failed"):
        reader.feed(codec.encode(samples()["heartbeat"]))


def test_error_in_a_later_frame_of_the_chunk_raises() -> None:
    good = codec.encode(samples()["vote"])
    with pytest.raises(CodecError):
        codec.FrameReader().feed(good + b"\x00" * 20)


@pytest.mark.parametrize("bad", [0, 13, codec.FRAME_SIZE_MAX + 1, -5])
def test_frame_bytes_max_is_validated(bad: int) -> None:
    with pytest.raises(ConfigError, match="frame_bytes_max"):
        codec.FrameReader(frame_bytes_max=bad)


def test_reader_settings_are_visible() -> None:
    reader = codec.FrameReader(frame_bytes_max=4096, copy_bytes_max=0)
    assert (reader.frame_bytes_max, reader.copy_bytes_max) == (4096, 0)
    assert codec.FrameReader().frame_bytes_max == codec.FRAME_SIZE_MAX
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, b"tiny")])
    (out,) = reader.feed(codec.encode(msg))
    assert isinstance(out.entries[0].data, memoryview)
    with pytest.raises(ConfigError, match="copy_bytes_max"):
        codec.FrameReader(copy_bytes_max=-1)


def test_a_bare_header_cannot_make_the_reader_allocate_much() -> None:
    frame = codec.encode(m.Message(m.MSG_SNAP, snap_data=bytes(64)))
    head = frame[:4] + struct.pack("<I", 60 << 20) + frame[8:12]  # announces 60 MiB
    reader = codec.FrameReader()
    tracemalloc.start()
    try:
        assert reader.feed(head) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reader.pending_bytes == 12
    assert peak < 2 * codec.FRAME_PREALLOC_SIZE_MAX, peak


def test_a_large_frame_grows_with_what_arrives_and_decodes() -> None:
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB, above FRAME_PREALLOC_SIZE_MAX
    msg = m.Message(m.MSG_SNAP, to=3, frm=1, term=2, snap_data=data, snap_done=True)
    frame = codec.encode(msg)
    assert len(frame) > codec.FRAME_PREALLOC_SIZE_MAX
    reader = codec.FrameReader()
    chunk = 65536
    tracemalloc.start()
    try:
        assert reader.feed(frame[:chunk]) == []
        assert reader.feed(frame[chunk : 2 * chunk]) == []
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 4 * chunk, held
    assert reader.pending_bytes == 2 * chunk
    out: list[m.Message] = []
    for start in range(2 * chunk, len(frame), chunk):
        out += reader.feed(frame[start : start + chunk])
    assert out == [msg] and reader.pending_bytes == 0
    owner = out[0].snap_data.obj
    assert type(owner) is bytes and len(owner) == len(frame)
