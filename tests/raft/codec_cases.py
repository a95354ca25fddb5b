"""Shared material for the codec tests: hypothesis strategies, sample messages, frame surgery.

Owns `messages()` (any Message the codec must round-trip: every type, every field arbitrary,
uint64 extremes, empty and view-sized payloads), `samples()` (one realistic message per Raft
message kind), and `reseal()` / `set_u32()`, which edit a frame's bytes and recompute its CRC so
that a test can reach the body parser with a checksum-valid but hostile frame.
"""

import struct

from hypothesis import strategies as st

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.checksum import crc32c

U64_MAX = 2**64 - 1
u64 = st.one_of(
    st.sampled_from([0, 1, 2**32, 2**63, U64_MAX - 1, U64_MAX]), st.integers(0, U64_MAX)
)
msg_types = st.sampled_from(sorted(m.MSG_TYPE_NAMES))
# Mostly small payloads (copied on decode), some above COPY_SIZE_MAX (zero-copy views).
payloads = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=codec.COPY_SIZE_MAX - 2, max_size=codec.COPY_SIZE_MAX + 300),
)
entries = st.builds(
    m.Entry,
    term=u64,
    index=u64,
    data=payloads,
    type=st.sampled_from([m.ENTRY_NORMAL, m.ENTRY_CONF_CHANGE]),
)
ids = st.lists(u64, max_size=6)
conf_states = st.builds(
    m.ConfState, voters=ids, learners=ids, voters_outgoing=ids, auto_leave=st.booleans()
)
snapshots = st.one_of(st.none(), st.builds(m.SnapshotMeta, index=u64, term=u64, conf=conf_states))


@st.composite
def messages(draw: st.DrawFn) -> m.Message:
    """Any message: every field is arbitrary whatever the type (the codec carries them all)."""
    return m.Message(
        type=draw(msg_types),
        to=draw(u64),
        frm=draw(u64),
        term=draw(u64),
        log_term=draw(u64),
        index=draw(u64),
        commit=draw(u64),
        reject=draw(st.booleans()),
        reject_hint=draw(u64),
        hint_term=draw(u64),
        entries=draw(st.lists(entries, max_size=8)),
        context=draw(st.binary(max_size=40)),
        snapshot=draw(snapshots),
        snap_offset=draw(u64),
        snap_data=draw(payloads),
        snap_done=draw(st.booleans()),
    )


def append_entries(n: int, size: int = 100, *, first_index: int = 100) -> m.Message:
    """An AppendEntries (MSG_APP) carrying n entries of `size` bytes, as a leader sends it."""
    data = bytes(range(256)) * (size // 256 + 1)
    batch = [m.Entry(7, first_index + i, data[i % 256 : i % 256 + size]) for i in range(n)]
    return m.Message(
        m.MSG_APP,
        to=2,
        frm=1,
        term=7,
        log_term=7,
        index=first_index - 1,
        commit=first_index - 1,
        entries=batch,
    )


def samples() -> dict[str, m.Message]:
    """One realistic message of each kind the issue lists, fields as raftmsg.pxd documents."""
    conf = m.ConfState(voters=(1, 2, 3), learners=(4,), voters_outgoing=(1, 2), auto_leave=True)
    return {
        "append": append_entries(3),
        "append_resp_reject": m.Message(
            m.MSG_APP_RESP,
            to=1,
            frm=2,
            term=7,
            index=120,
            reject=True,
            reject_hint=90,
            hint_term=5,
        ),
        "append_resp_ok": m.Message(m.MSG_APP_RESP, to=1, frm=2, term=7, index=102),
        "vote": m.Message(m.MSG_VOTE, to=2, frm=1, term=8, log_term=7, index=102),
        "vote_transfer": m.Message(
            m.MSG_VOTE, to=2, frm=1, term=8, log_term=7, index=102, context=b"transfer"
        ),
        "vote_resp": m.Message(m.MSG_VOTE_RESP, to=1, frm=2, term=8, reject=True),
        "prevote": m.Message(m.MSG_PREVOTE, to=3, frm=1, term=9, log_term=7, index=102),
        "prevote_resp": m.Message(m.MSG_PREVOTE_RESP, to=1, frm=3, term=9),
        "heartbeat": m.Message(m.MSG_HEARTBEAT, to=2, frm=1, term=7, commit=101, context=b"r1"),
        "heartbeat_resp": m.Message(m.MSG_HEARTBEAT_RESP, to=1, frm=2, term=7, context=b"r1"),
        "snapshot_chunk": m.Message(
            m.MSG_SNAP,
            to=3,
            frm=1,
            term=7,
            snapshot=m.SnapshotMeta(500, 6, conf),
            snap_offset=65536,
            snap_data=bytes(range(256)) * 8,
            snap_done=True,
        ),
        "snapshot_resp": m.Message(
            m.MSG_SNAP_RESP, to=1, frm=3, term=7, index=500, snap_offset=67584
        ),
        "timeout_now": m.Message(m.MSG_TIMEOUT_NOW, to=2, frm=1, term=7),
        "read_index": m.Message(m.MSG_READ_INDEX, to=1, frm=2, term=7, context=b"req-42"),
        "read_index_resp": m.Message(
            m.MSG_READ_INDEX_RESP, to=2, frm=1, term=7, index=101, context=b"req-42"
        ),
        "propose": m.Message(m.MSG_PROP, to=1, frm=2, entries=[m.Entry(data=b"set x=1")]),
    }


def reseal(frame: bytes | bytearray) -> bytes:
    """The frame with its CRC32C recomputed (header bytes 0..7, then the body from byte 12)."""
    buf = bytearray(frame)
    crc = crc32c(bytes(buf[12:]), crc32c(bytes(buf[:8])))
    buf[8:12] = struct.pack("<I", crc)
    return bytes(buf)


def set_u32(frame: bytes, offset: int, value: int) -> bytes:
    """The frame with the u32 at `offset` replaced, and resealed."""
    buf = bytearray(frame)
    buf[offset : offset + 4] = struct.pack("<I", value)
    return reseal(buf)
