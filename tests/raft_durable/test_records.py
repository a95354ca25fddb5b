"""Raft entries as WAL records (haperf._native.raftstore): header, framing, decoding.

The header is minimal and round-trips for every term and type; append_entries frames exactly
the bytes header + data (bytes, bytearray or memoryview data) that the pure-Python encode_entry
builds, at the right indexes; bad batches (wrong index, unknown type, a record too large, a
non-Entry) append nothing; malformed records are a ValueError, never a wrong Entry.
"""

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import raftstore
from haperf._native.raftmsg import Entry
from haperf.errors import RecordTooLargeError, WALIndexError
from haperf.raft.durable import encode_entry
from tests.wal.helpers import open_small

terms = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1))


@given(term=terms, kind=st.integers(0, 1), data=st.binary(max_size=64))
def test_header_is_minimal_and_decodes_back(term: int, kind: int, data: bytes) -> None:
    head = raftstore.header(term, kind)
    assert len(head) == 1 + (term.bit_length() + 7) // 8
    e = raftstore.decode_entry(head + data, 7)
    assert (e.term, e.index, e.type, bytes(e.data)) == (term, 7, kind, data)


@given(
    st.lists(
        st.tuples(terms, st.integers(0, 1), st.binary(max_size=200), st.sampled_from("bvm")),
        min_size=1,
        max_size=40,
    )
)
def test_append_entries_frames_the_same_records_as_encode_entry(
    items: list[tuple[int, int, bytes, str]],
) -> None:
    def wrap(data: bytes, how: str) -> object:
        return {"b": data, "v": memoryview(data), "m": bytearray(data)}[how]

    entries = [Entry(t, 5 + k, wrap(d, how), ty) for k, (t, ty, d, how) in enumerate(items)]
    with tempfile.TemporaryDirectory() as a, open_small(a, sync_policy="none", first_index=5) as w:
        last = w.append_framed(lambda fb: raftstore.append_entries(fb, entries, 5))
        assert last == 4 + len(entries)
        assert [bytes(v) for v in w.iterate()] == [encode_entry(e) for e in entries]
        for k, view in enumerate(w.iterate()):
            e = raftstore.decode_entry(view, 5 + k)
            assert (e.term, e.type, bytes(e.data)) == (items[k][0], items[k][1], items[k][2])


def test_bad_batches_append_nothing(tmp_path: Path) -> None:
    with open_small(tmp_path, sync_policy="none") as w:
        fb_call = w.append_framed
        with pytest.raises(ValueError, match="entry 1 has index 3, expected 2"):
            fb_call(lambda fb: raftstore.append_entries(fb, [Entry(1, 1), Entry(1, 3)], 1))
        with pytest.raises(ValueError, match="has type 2"):
            fb_call(lambda fb: raftstore.append_entries(fb, [Entry(1, 1, b"", 2)], 1))
        big = b"x" * 2048
        with pytest.raises(RecordTooLargeError, match="entry 2"):
            fb_call(lambda fb: raftstore.append_entries(fb, [Entry(1, 1), Entry(1, 2, big)], 1))
        with pytest.raises(TypeError):
            fb_call(lambda fb: raftstore.append_entries(fb, [b"not an entry"], 1))  # type: ignore[list-item]
        with pytest.raises(WALIndexError):
            fb_call(lambda fb: raftstore.append_entries(fb, [Entry(1, 4)], 4))
        with pytest.raises(ValueError, match="at least one"):
            fb_call(lambda fb: raftstore.append_entries(fb, [], 1))
        assert w.last_index == 0
        assert fb_call(lambda fb: raftstore.append_entries(fb, [Entry(9, 1, b"ok")], 1)) == 1


@pytest.mark.parametrize(
    "record",
    [b"", b"\x90" + b"\x01" * 9, b"\x02abc", b"\x30\x01\x02", b"\x0f"],
    ids=["empty", "nine-term-bytes", "type-2", "short-term", "type-15"],
)
def test_malformed_records_are_value_errors(record: bytes) -> None:
    with pytest.raises(ValueError):
        raftstore.decode_entry(record, 1)


def test_header_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match="entry type 5"):
        raftstore.header(1, 5)
