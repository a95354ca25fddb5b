"""The shared Raft message types: defaults, equality across bytes and memoryviews, names."""

from haperf._native import raftmsg as m


def test_defaults_are_zero_and_empty() -> None:
    msg = m.Message(m.MSG_HEARTBEAT, to=2, frm=1, term=5)
    assert (msg.log_term, msg.index, msg.commit, msg.reject) == (0, 0, 0, False)
    assert msg.entries == [] and msg.context == b"" and msg.snapshot is None
    assert m.MSG_TYPE_NAMES[m.MSG_HEARTBEAT] == "MSG_HEARTBEAT"
    assert m.MsgType(msg.type) is m.MsgType.MSG_HEARTBEAT


def test_equality_compares_payload_bytes_not_buffer_kind() -> None:
    a = m.Message(m.MSG_APP, to=2, frm=1, term=3, entries=[m.Entry(3, 4, b"abc")])
    b = m.Message(m.MSG_APP, to=2, frm=1, term=3, entries=[m.Entry(3, 4, memoryview(b"abc"))])
    c = m.Message(m.MSG_APP, to=2, frm=1, term=3, entries=[m.Entry(3, 4, b"abd")])
    assert a == b
    assert a != c
    conf = m.ConfState(voters=[1, 2, 3], learners=[4])
    snap = m.SnapshotMeta(index=9, term=2, conf=conf)
    assert snap == m.SnapshotMeta(9, 2, m.ConfState((1, 2, 3), (4,)))
    assert snap != m.SnapshotMeta(9, 2, m.ConfState((1, 2, 3)))
    assert m.SnapshotMeta().conf == m.ConfState()


def test_uint64_fields_reject_out_of_range_values() -> None:
    msg = m.Message(term=2**64 - 1)
    assert msg.term == 2**64 - 1
    for bad in (-1, 2**64):
        try:
            m.Message(term=bad)
        except OverflowError:
            continue
        raise AssertionError(f"term={bad} was accepted")
