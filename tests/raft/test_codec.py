"""The wire codec: round trips, the documented layout, encode bounds, zero-copy payloads.

Covers haperf._native.codec encode / encoded_size / encode_into / encode_many / decode for every
message type with arbitrary field values (hypothesis), a byte-exact golden frame built from the
layout in docs/codec.md, the bounds checked when encoding, and where decoded payloads live.
Malformed input and stream feeding are in test_codec_malformed.py and test_codec_stream.py.
"""

import gc
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.checksum import crc32c
from haperf.errors import CodecError, FrameTooLargeError, UnknownMessageTypeError
from tests.raft.codec_cases import U64_MAX, append_entries, messages, samples


@given(messages())
def test_every_message_round_trips(msg: m.Message) -> None:
    frame = codec.encode(msg)
    assert len(frame) == codec.encoded_size(msg)
    assert frame[:2] == codec.MAGIC and frame[2] == codec.VERSION and frame[3] == msg.type
    assert struct.unpack_from("<I", frame, 4)[0] == len(frame)
    assert codec.decode(frame) == msg
    # Every non-empty payload as a view: same values.
    assert codec.decode(frame, copy_bytes_max=0) == msg


@pytest.mark.parametrize("name", sorted(samples()))
def test_each_raft_message_kind_round_trips(name: str) -> None:
    msg = samples()[name]
    decoded = codec.decode(codec.encode(msg))
    assert decoded == msg
    assert decoded.type == msg.type and decoded.snapshot == msg.snapshot


def test_extreme_scalars_round_trip() -> None:
    msg = m.Message(
        m.MSG_APP,
        to=U64_MAX,
        frm=U64_MAX,
        term=U64_MAX,
        log_term=U64_MAX,
        index=U64_MAX,
        commit=U64_MAX,
        reject=True,
        reject_hint=U64_MAX,
        hint_term=U64_MAX,
        entries=[m.Entry(U64_MAX, U64_MAX, b"", m.ENTRY_CONF_CHANGE)],
        snapshot=m.SnapshotMeta(U64_MAX, U64_MAX, m.ConfState((U64_MAX, 0), (1,), (2**63,))),
        snap_offset=U64_MAX,
        snap_done=True,
    )
    assert codec.decode(codec.encode(msg)) == msg


def test_golden_heartbeat_matches_the_documented_layout() -> None:
    msg = m.Message(m.MSG_HEARTBEAT, to=2, frm=1, term=7, commit=101, context=b"r1")
    bits = codec.FIELD_BITS
    fields = bits["to"] | bits["frm"] | bits["term"] | bits["commit"] | bits["context"]
    assert fields == 0x0827
    body = struct.pack("<H4QI", fields, 2, 1, 7, 101, 2) + b"r1"
    head = b"HR" + bytes([1, m.MSG_HEARTBEAT]) + struct.pack("<I", 12 + len(body))
    crc = crc32c(body, crc32c(head))
    expected = head + struct.pack("<I", crc) + body
    assert codec.encode(msg) == expected
    assert len(expected) == 52


def test_absent_fields_cost_nothing_and_decode_to_defaults() -> None:
    frame = codec.encode(m.Message(m.MSG_TIMEOUT_NOW))
    assert len(frame) == codec.FRAME_SIZE_MIN == 14
    decoded = codec.decode(frame)
    assert decoded == m.Message(m.MSG_TIMEOUT_NOW)
    assert decoded.entries == [] and decoded.context == b"" and decoded.snapshot is None
    assert decoded.snap_data == b""
    # Empty context/entries/snap_data are not encoded either.
    empty = m.Message(m.MSG_APP, entries=[], context=b"", snap_data=b"")
    assert len(codec.encode(empty)) == 14


def test_none_payload_fields_encode_as_empty() -> None:
    msg = m.Message(m.MSG_HEARTBEAT, term=3)
    msg.context = None  # type: ignore[assignment]
    msg.snap_data = None  # type: ignore[assignment]
    msg.entries = None  # type: ignore[assignment]
    assert codec.decode(codec.encode(msg)) == m.Message(m.MSG_HEARTBEAT, term=3)


def test_snapshot_with_default_conf_round_trips() -> None:
    msg = m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(5, 2))
    assert codec.decode(codec.encode(msg)) == msg


@given(st.lists(messages(), max_size=5))
def test_encode_many_and_encode_into_concatenate_frames(msgs: list[m.Message]) -> None:
    many = codec.encode_many(msgs)
    assert many == b"".join(codec.encode(x) for x in msgs)
    buf = bytearray(b"xy")
    sizes = [codec.encode_into(x, buf) for x in msgs]
    assert bytes(buf) == b"xy" + many
    assert sizes == [codec.encoded_size(x) for x in msgs]
    assert codec.FrameReader().feed(many) == msgs


def test_payloads_of_any_buffer_type_encode() -> None:
    data = bytearray(b"abc")
    msg = m.Message(
        m.MSG_APP,
        entries=[m.Entry(1, 1, data), m.Entry(1, 2, memoryview(b"xyz"))],
        snap_data=memoryview(b"0123456789")[2:5],
    )
    decoded = codec.decode(codec.encode(msg))
    assert [bytes(e.data) for e in decoded.entries] == [b"abc", b"xyz"]
    assert bytes(decoded.snap_data) == b"234"


def test_encode_does_not_mutate_the_message() -> None:
    msg = samples()["snapshot_chunk"]
    before = repr(msg), bytes(msg.snap_data)
    codec.encode(msg)
    assert (repr(msg), bytes(msg.snap_data)) == before


# -- bounds checked when encoding: a typed error, before the frame is allocated ------------


def test_encode_rejects_unknown_message_and_entry_types() -> None:
    for bad in (0, 15, 255):
        with pytest.raises(UnknownMessageTypeError, match=f"message type {bad}"):
            codec.encode(m.Message(bad))
    with pytest.raises(UnknownMessageTypeError, match="entry type 2"):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, b"x", 2)]))


def test_encode_rejects_too_many_entries() -> None:
    batch = [m.Entry(1, i, b"") for i in range(codec.ENTRIES_MAX)]
    assert len(codec.decode(codec.encode(m.Message(m.MSG_APP, entries=batch))).entries) == len(
        batch
    )
    batch.append(m.Entry(1, 0, b""))
    with pytest.raises(FrameTooLargeError, match=f"entry count is {codec.ENTRIES_MAX + 1}"):
        codec.encode(m.Message(m.MSG_APP, entries=batch))


def test_max_sized_fields_round_trip_and_one_more_byte_is_refused() -> None:
    big = bytes(codec.ENTRY_SIZE_MAX)
    msg = m.Message(m.MSG_APP, entries=[m.Entry(1, 1, big)], context=bytes(codec.CONTEXT_SIZE_MAX))
    decoded = codec.decode(codec.encode(msg))
    assert len(decoded.entries[0].data) == codec.ENTRY_SIZE_MAX
    assert len(decoded.context) == codec.CONTEXT_SIZE_MAX
    with pytest.raises(FrameTooLargeError, match="entries\\[0\\] data length"):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, big + b"x")]))
    with pytest.raises(FrameTooLargeError, match="context length"):
        codec.encode(m.Message(m.MSG_HEARTBEAT, context=bytes(codec.CONTEXT_SIZE_MAX + 1)))
    with pytest.raises(FrameTooLargeError, match="snap_data length"):
        codec.encode(m.Message(m.MSG_SNAP, snap_data=bytes(codec.SNAP_DATA_SIZE_MAX + 1)))
    # Four max entries each fit, but not in one frame.
    with pytest.raises(FrameTooLargeError, match="frame size"):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, i, big) for i in range(4)]))


def test_conf_id_lists_are_bounded_and_typed() -> None:
    limit = codec.CONF_IDS_PER_LIST_MAX
    ok = m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(1, 1, m.ConfState(range(limit))))
    assert codec.decode(codec.encode(ok)) == ok
    over = m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(1, 1, m.ConfState(range(limit + 1))))
    with pytest.raises(FrameTooLargeError, match="conf id list length"):
        codec.encode(over)
    for bad in (-1, 2**64, "3"):
        msg = m.Message(m.MSG_SNAP, snapshot=m.SnapshotMeta(1, 1, m.ConfState((1, bad))))
        with pytest.raises(TypeError, match=r"voters\[1\]"):
            codec.encode(msg)


def test_encode_rejects_wrong_object_types() -> None:
    for fn in (codec.encode, codec.encoded_size, codec.encode_many):
        for bad in (b"not a message", None, m.Entry()):
            with pytest.raises(TypeError, match=r"raftmsg\.Message"):
                fn([bad] if fn is codec.encode_many else bad)  # type: ignore[operator]
    with pytest.raises(TypeError, match=r"raftmsg\.Message"):
        codec.encode_into(None, bytearray())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"entries\[1\] must be a raftmsg.Entry"):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(), b"raw"]))  # type: ignore[list-item]
    with pytest.raises(TypeError):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, 12345)]))  # type: ignore[arg-type]
    strided = memoryview(bytes(10))[::2]
    with pytest.raises(TypeError, match="C-contiguous"):
        codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, strided)]))


def test_encode_many_names_the_failing_message_and_returns_nothing() -> None:
    good = samples()["heartbeat"]
    with pytest.raises(UnknownMessageTypeError, match="message 1 of the batch"):
        codec.encode_many([good, m.Message(99), good])
    assert codec.encode_many([]) == b""


def test_encode_into_leaves_the_buffer_unchanged_on_error() -> None:
    buf = bytearray(b"keep")
    with pytest.raises(CodecError):
        codec.encode_into(m.Message(0), buf)
    assert buf == b"keep"


# -- where decoded payloads live ------------------------------------------------------------


def test_large_payloads_are_read_only_views_into_the_frame() -> None:
    big = bytes(range(256)) * 4
    msg = m.Message(m.MSG_SNAP, entries=[m.Entry(1, 1, big)], snap_data=big[:600])
    frame = codec.encode(msg)
    decoded = codec.decode(frame)
    for view in (decoded.entries[0].data, decoded.snap_data):
        assert isinstance(view, memoryview)
        assert view.obj is frame and view.readonly
    # The view's bytes sit inside the frame: a known offset, found by content.
    assert frame.find(big) == frame.index(bytes(decoded.entries[0].data))


def test_small_payloads_are_copied_unless_asked_for_views() -> None:
    frame = codec.encode(append_entries(3, size=codec.COPY_SIZE_MAX))
    assert all(type(e.data) is bytes for e in codec.decode(frame).entries)
    views = codec.decode(frame, copy_bytes_max=0).entries
    assert all(isinstance(e.data, memoryview) and e.data.obj is frame for e in views)
    assert type(codec.decode(frame, copy_bytes_max=codec.COPY_SIZE_MAX - 1).entries[0].data) is (
        memoryview
    )


def test_views_keep_the_decoded_bytes_alive() -> None:
    payload = bytes(range(200)) * 5
    frame = codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, payload)]))
    view = codec.decode(frame).entries[0].data
    del frame
    gc.collect()
    assert bytes(view) == payload
    assert view.obj[:2] == codec.MAGIC


def test_views_into_a_mutable_frame_are_read_only_and_pin_it() -> None:
    buf = bytearray(codec.encode(m.Message(m.MSG_APP, entries=[m.Entry(1, 1, bytes(700))])))
    view = codec.decode(buf).entries[0].data
    assert view.readonly and view.obj is buf
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]
    with pytest.raises(BufferError):
        buf.extend(b"x")


def test_copy_bytes_max_is_validated() -> None:
    from haperf.errors import ConfigError

    frame = codec.encode(samples()["heartbeat"])
    for bad in (-1, codec.ENTRY_SIZE_MAX + 1):
        with pytest.raises(ConfigError, match="copy_bytes_max"):
            codec.decode(frame, copy_bytes_max=bad)


def test_a_frame_inside_a_larger_buffer_decodes_from_a_slice() -> None:
    msg = m.Message(
        m.MSG_SNAP, entries=[m.Entry(1, 1, b"a" * 600), m.Entry(1, 2, b"bc")], snap_data=b"xyz"
    )
    frame = codec.encode(msg)
    buf = bytearray(b"<" * 37) + frame + bytearray(b">" * 11)
    window = memoryview(buf)[37 : 37 + len(frame)]
    decoded = codec.decode(window, copy_bytes_max=0)
    assert decoded == msg
    assert all(e.data.obj is buf for e in decoded.entries)


def test_objects_floor_builds_what_a_decode_returns() -> None:
    msg = codec._objects_floor(bytes(range(6)), 3)
    assert msg.type == m.MSG_APP
    assert [(e.index, e.data) for e in msg.entries] == [(0, b"\0\1"), (1, b"\2\3"), (2, b"\4\5")]
    with pytest.raises(ValueError, match="count must be >= 1"):
        codec._objects_floor(b"", 0)
