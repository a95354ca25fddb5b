"""WAL.append_batch_prefixed: records built as prefix + item inside the frame (one copy).

The records read back equal prefixes[i] + items[i] (items as bytes, bytearray or memoryview),
across a buffer flush and a reopen; sizes are checked before anything is appended; a wrong
index, mismatched lengths or a non-bytes prefix change nothing.
"""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import RecordTooLargeError, WALIndexError
from tests.wal.helpers import SMALL, open_small


def test_records_are_prefix_then_item_across_flush_and_reopen(tmp_path: Path) -> None:
    items: list[object] = [b"", b"abc", bytearray(b"xyz" * 100), memoryview(b"0123456789")[2:7]]
    prefixes = [b"", b"\x10\x03", b"P" * 9, b"\x01"]
    expected = [p + bytes(i) for p, i in zip(prefixes, items, strict=True)]  # type: ignore[call-overload]
    with open_small(tmp_path, sync_policy="none") as wal:
        wal.append(b"first")
        last = wal.append_batch_prefixed(prefixes, items, 2)  # type: ignore[arg-type]
        assert last == 5
        assert [wal.read(i) for i in range(2, 6)] == expected
        for _ in range(30):  # fill past the 8 KiB buffer and 16 KiB segments
            wal.append_batch_prefixed(prefixes, items)  # type: ignore[arg-type]
        assert [bytes(v) for v in wal.iterate(2, 6)] == expected
        total = wal.last_index
    with open_small(tmp_path, sync_policy="none") as wal:
        assert wal.last_index == total
        got = [bytes(v) for v in wal.iterate()]
        assert got[0] == b"first"
        assert got[1:] == expected * 31


def test_bad_calls_append_nothing(tmp_path: Path) -> None:
    limit = SMALL["record_bytes_max"]
    with open_small(tmp_path, sync_policy="none") as wal:
        with pytest.raises(RecordTooLargeError, match="record 1 of the batch"):
            wal.append_batch_prefixed([b"a", b"bb"], [b"x", b"y" * (limit - 1)])
        with pytest.raises(WALIndexError):
            wal.append_batch_prefixed([b"a"], [b"x"], 7)
        with pytest.raises(ValueError, match="1 prefixes for 2 records"):
            wal.append_batch_prefixed([b"a"], [b"x", b"y"])
        with pytest.raises(TypeError, match="prefix 0 must be bytes"):
            wal.append_batch_prefixed([bytearray(b"a")], [b"x"])  # type: ignore[list-item]
        assert wal.last_index == 0
        assert wal.append_batch_prefixed([b"a"], [b"y" * (limit - 1)]) == 1


@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=200)), min_size=1))
def test_same_bytes_as_joined_records(pairs: list[tuple[bytes, bytes]]) -> None:
    import tempfile

    with (
        tempfile.TemporaryDirectory() as a,
        tempfile.TemporaryDirectory() as b,
        open_small(a, sync_policy="none") as joined,
        open_small(b, sync_policy="none") as pre,
    ):
        joined.append_batch([p + d for p, d in pairs])
        pre.append_batch_prefixed([p for p, _ in pairs], [memoryview(d) for _, d in pairs])
        assert [bytes(v) for v in joined.iterate()] == [bytes(v) for v in pre.iterate()]
