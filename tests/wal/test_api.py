"""The WAL API: append/read/iterate, batches, expected indexes, truncation, compaction, reopen,
locking, policies, configuration errors, and a hypothesis model test against a plain list.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haperf.errors import ConfigError
from haperf.wal import (
    WAL,
    RecordTooLargeError,
    WALClosedError,
    WALIndexError,
    WALLockedError,
    open_wal,
)
from haperf.wal.format import META_NAME
from tests.wal.helpers import SMALL, open_small, payload, segment_files


def test_append_read_iterate_across_segments(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        assert (wal.first_index, wal.last_index) == (1, 0)
        for i in range(1, 301):
            assert wal.append(payload(i)) == i
        # Records still in the buffer are readable, and so are flushed ones.
        assert wal.read(300) == payload(300)
        wal.sync()
        assert len(segment_files(tmp_path)) > 1
        assert [wal.read(i) for i in (1, 150, 300)] == [payload(1), payload(150), payload(300)]
        views = list(wal.iterate(1, 301))
        assert [bytes(v) for v in views] == [payload(i) for i in range(1, 301)]
        assert [bytes(v) for v in wal.iterate(299)] == [payload(299), payload(300)]
        del views
    with open_small(tmp_path) as wal:
        assert (wal.first_index, wal.last_index, wal.durable_index) == (1, 300, 300)
        assert [bytes(v) for v in wal.iterate()] == [payload(i) for i in range(1, 301)]


def test_batches_and_expected_indexes(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        assert wal.append_batch([b"a", b"b", bytearray(b"c"), memoryview(b"d")]) == 4
        assert wal.append(b"e", 5) == 5
        with pytest.raises(WALIndexError, match="next index is 6"):
            wal.append(b"x", 7)
        assert wal.append_batch((b"f", b"g"), 6) == 7
        with pytest.raises(WALIndexError):
            wal.append_batch([b"h"], 3)
        assert wal.append_batch_durable([b"h"]) == 8
        assert wal.durable_index == 8
        assert [bytes(v) for v in wal.iterate()] == [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"]


def test_read_errors(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append(b"x")
        for bad in (0, 2):
            with pytest.raises(WALIndexError, match="outside the log"):
                wal.read(bad)
        with pytest.raises(WALIndexError):
            list(wal.iterate(1, 3))
        with pytest.raises(RecordTooLargeError, match="record_bytes_max"):
            wal.append(bytes(SMALL["record_bytes_max"] + 1))
        assert wal.append(bytes(SMALL["record_bytes_max"])) == 2


def test_truncate_after_is_durable_and_appends_continue(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append_batch([payload(i) for i in range(1, 201)])
        wal.sync()
        segs_before = len(segment_files(tmp_path))
        wal.truncate_after(20)
        assert wal.last_index == 20 and wal.durable_index == 20
        assert len(segment_files(tmp_path)) < segs_before
        with pytest.raises(WALIndexError):
            wal.read(21)
        assert wal.append(b"new-21", 21) == 21
        wal.truncate_after(21)  # no-op: nothing after 21
        with pytest.raises(WALIndexError):
            wal.truncate_after(22)
        wal.sync()
    with open_small(tmp_path) as wal:
        assert wal.last_index == 21
        assert wal.read(20) == payload(20) and wal.read(21) == b"new-21"


def test_truncate_everything_then_reuse(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append_batch([b"x"] * 10)
        wal.truncate_after(0)
        assert wal.last_index == 0
        assert wal.append(b"again") == 1
    with open_small(tmp_path) as wal:
        assert wal.last_index == 1 and wal.read(1) == b"again"


def test_compact_before_keeps_first_index_durable(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append_batch([payload(i) for i in range(1, 301)])
        wal.sync()
        n = len(segment_files(tmp_path))
        wal.compact_before(150)
        assert wal.first_index == 150
        assert len(segment_files(tmp_path)) < n
        with pytest.raises(WALIndexError):
            wal.read(149)
        assert wal.read(150) == payload(150)
        wal.compact_before(100)  # below first: nothing to do
        assert wal.first_index == 150
    with open_small(tmp_path) as wal:
        assert (wal.first_index, wal.last_index) == (150, 300)
        assert [bytes(v) for v in wal.iterate()] == [payload(i) for i in range(150, 301)]
        # Past the end: the log restarts at the snapshot index.
        wal.compact_before(1000)
        assert (wal.first_index, wal.last_index) == (1000, 999)
        assert wal.append(b"after-snapshot") == 1000
    with open_small(tmp_path) as wal:
        assert (wal.first_index, wal.last_index) == (1000, 1000)
        assert wal.read(1000) == b"after-snapshot"
        assert len(segment_files(tmp_path)) == 1


def test_first_index_option_and_open_function(tmp_path: Path) -> None:
    with open_wal(tmp_path, first_index=42, **SMALL) as wal:
        assert (wal.first_index, wal.last_index) == (42, 41)
        assert wal.append(b"x") == 42
    with WAL.open(tmp_path, **SMALL) as wal:
        assert wal.read(42) == b"x"


def test_single_writer_lock(tmp_path: Path) -> None:
    wal = open_small(tmp_path)
    try:
        with pytest.raises(WALLockedError, match="already open"):
            open_small(tmp_path)
    finally:
        wal.close()
    open_small(tmp_path).close()  # released by close


def test_closed_wal_refuses_everything(tmp_path: Path) -> None:
    wal = open_small(tmp_path)
    wal.append(b"x")
    wal.close()
    wal.close()  # idempotent
    assert wal.closed
    with pytest.raises(WALClosedError):
        wal.append(b"y")
    with pytest.raises(WALClosedError):
        wal.sync()
    with pytest.raises(WALClosedError):
        wal.read(1)
    with open_small(tmp_path) as again:
        assert again.read(1) == b"x"  # close synced it


@pytest.mark.parametrize("policy", ["always", "group", "interval", "none"])
def test_every_policy_round_trips(tmp_path: Path, policy: str) -> None:
    with open_small(tmp_path, sync_policy=policy, sync_interval_ns=1_000_000) as wal:
        for i in range(1, 51):
            wal.append(payload(i))
        if policy == "always":
            assert wal.durable_index == 50
        assert wal.append_durable(b"last") == 51
        if policy != "none":
            assert wal.durable_index == 51
    with open_small(tmp_path) as wal:
        assert wal.last_index == 51 and wal.read(7) == payload(7)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("sync_policy", "sometimes", "sync_policy must be one of"),
        ("segment_bytes", 100, "segment_bytes must be"),
        ("record_bytes_max", 0, "record_bytes_max must be"),
        ("record_bytes_max", 1 << 20, "does not fit a segment"),
        ("buffer_bytes", 16, "buffer_bytes must hold"),
        ("sync_interval_ns", 10, "sync_interval_ns must be"),
        ("group_delay_ns", -1, "group_delay_ns must be"),
        ("first_index", 0, "first_index must be"),
    ],
)
def test_bad_configuration_raises_config_error(
    tmp_path: Path, option: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        open_small(tmp_path, **{option: value})
    assert not (tmp_path / META_NAME).exists()


ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=600)),
        st.tuples(st.just("batch"), st.lists(st.binary(max_size=200), min_size=1, max_size=30)),
        st.tuples(st.just("truncate"), st.integers(0, 10_000)),
        st.tuples(st.just("compact"), st.integers(0, 10_000)),
        st.tuples(st.just("reopen"), st.none()),
        st.tuples(st.just("sync"), st.none()),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops_st)
def test_model(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, object]]) -> None:
    """Random operation sequences agree with a dict model, across reopens."""
    directory = tmp_path_factory.mktemp("model")
    model: dict[int, bytes] = {}
    first, nxt = 1, 1
    wal = open_small(directory)
    try:
        for op, arg in ops:
            if op == "append":
                assert isinstance(arg, bytes)
                assert wal.append(arg) == nxt
                model[nxt] = arg
                nxt += 1
            elif op == "batch":
                assert isinstance(arg, list)
                assert wal.append_batch(arg) == nxt + len(arg) - 1
                for rec in arg:
                    model[nxt] = rec
                    nxt += 1
            elif op == "truncate":
                assert isinstance(arg, int)
                at = first - 1 + arg % (nxt - first + 1)
                wal.truncate_after(at)
                nxt = at + 1
            elif op == "compact":
                assert isinstance(arg, int)
                at = first + arg % (nxt - first + 3)
                wal.compact_before(at)
                first = max(first, at)
                nxt = max(nxt, first)
            elif op == "reopen":
                wal.close()
                wal = open_small(directory)
            else:
                wal.sync()
            assert (wal.first_index, wal.last_index) == (first, nxt - 1)
        assert [bytes(v) for v in wal.iterate()] == [model[i] for i in range(first, nxt)]
        wal.close()
        wal = open_small(directory)
        assert (wal.first_index, wal.last_index) == (first, nxt - 1)
        assert [wal.read(i) for i in range(first, nxt)] == [model[i] for i in range(first, nxt)]
    finally:
        wal.close()
    assert os.path.exists(directory / META_NAME)


def test_waiting_for_a_truncated_record_raises_instead_of_hanging(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append_batch([b"a", b"b", b"c"])
        wal.truncate_after(1)
        with pytest.raises(WALIndexError, match="does not exist"):
            wal._sync_through(3)
        with pytest.raises(WALIndexError, match="was not appended"):
            wal.wait_durable(3)
        wal.wait_durable(1)


def test_append_batch_checks_every_record_first(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        too_big = bytes(SMALL["record_bytes_max"] + 1)
        with pytest.raises(RecordTooLargeError, match="record 1 of the batch"):
            wal.append_batch([b"ok", too_big])
        assert wal.last_index == 0
