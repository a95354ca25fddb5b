"""Failure semantics through the pluggable file layer: fsync errors poison, ENOSPC is clean.

An fdatasync error must never be retried or followed by a success report; every later append,
sync, truncation and compaction fails with the poison error. ENOSPC (even after part of a write
reached the file) leaves nothing half-written visible after reopen.
"""

import threading
from pathlib import Path

import pytest

from haperf.errors import WALFullError, WALPoisonedError
from tests.wal.helpers import FaultyOps, open_small, payload


def wait_until(predicate: "object", limit: int = 20_000) -> None:
    """Spin (yielding the GIL) until predicate() holds; bounded by iterations, not time."""
    import time

    for _ in range(limit):
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.0005)
    raise AssertionError("condition never became true")


def test_fdatasync_error_poisons_for_good(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    for i in range(1, 11):
        wal.append(payload(i))
    assert wal.sync() == 10
    for i in range(11, 21):
        wal.append(payload(i))
    ops.fail_fdatasync_at = ops.fdatasyncs + 1
    with pytest.raises(WALPoisonedError, match="refuses further writes") as info:
        wal.sync()
    assert isinstance(info.value.__cause__, OSError)
    assert wal.durable_index == 10 and wal.failure is not None
    calls = ops.fdatasyncs
    for attempt in (
        lambda: wal.append(b"x"),
        lambda: wal.append_batch([b"x"]),
        wal.sync,
        lambda: wal.append_durable(b"x"),
        lambda: wal.truncate_after(5),
        lambda: wal.compact_before(5),
        wal.flush,
    ):
        with pytest.raises(WALPoisonedError):
            attempt()
    assert ops.fdatasyncs == calls, "an fsync was retried after it failed"
    wal.close()  # releases files without reporting anything durable
    with open_small(tmp_path) as again:
        assert again.last_index >= 10
        assert [again.read(i) for i in range(1, 11)] == [payload(i) for i in range(1, 11)]


def test_always_policy_append_fails_when_its_sync_fails(tmp_path: Path) -> None:
    ops = FaultyOps()
    with open_small(tmp_path, file_ops=ops, sync_policy="always") as wal:
        assert wal.append(b"ok") == 1
        ops.fail_fdatasync_at = ops.fdatasyncs + 1
        with pytest.raises(WALPoisonedError):
            wal.append(b"lost")
        assert wal.durable_index == 1


def test_group_waiters_all_fail_when_the_shared_sync_fails(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    gate = threading.Event()
    ops.gate = gate
    outcomes: list[object] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        try:
            got: object = wal.append_durable(payload(i))
        except WALPoisonedError as exc:
            got = exc
        with lock:
            outcomes.append(got)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: wal.last_index == 8)
    assert outcomes == []  # nobody was told "durable" while the sync is held
    ops.fail_fdatasync_at = ops.fdatasyncs + 1
    gate.set()
    for t in threads:
        t.join()
    assert len(outcomes) == 8
    assert all(isinstance(o, WALPoisonedError) for o in outcomes)
    assert wal.durable_index == 0
    wal.close()


@pytest.mark.parametrize("room", [0, 1, 23, 24, 100, 700])
def test_enospc_on_write_leaves_nothing_half_written(tmp_path: Path, room: int) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    wal.append_batch([payload(i) for i in range(1, 21)])
    durable = wal.sync()
    ops.enospc_write_after = ops.bytes_written + room
    for i in range(21, 41):
        wal.append(payload(i))
    with pytest.raises(WALFullError, match="disk full"):
        wal.sync()
    with pytest.raises(WALFullError):
        wal.append(b"more")
    wal.close()
    with open_small(tmp_path) as again:
        last = again.last_index
        assert durable <= last < 40
        assert [bytes(v) for v in again.iterate()] == [payload(i) for i in range(1, last + 1)]
        assert again.append(b"after") == last + 1


def test_enospc_when_preallocating_a_segment(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    wal.append_batch([payload(i) for i in range(1, 11)])
    wal.sync()
    ops.enospc_write_after = ops.bytes_written + 4000  # enough for records, not a new segment
    with pytest.raises(WALFullError):
        for i in range(11, 400):
            wal.append(payload(i))
        wal.sync()
    wal.close()
    with open_small(tmp_path) as again:
        last = again.last_index
        assert last >= 10
        assert [again.read(i) for i in range(1, last + 1)] == [
            payload(i) for i in range(1, last + 1)
        ]


def test_directory_fsync_error_when_rolling_poisons(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    ops.fail_fsync_dir = True
    with pytest.raises(WALPoisonedError):
        for i in range(1, 400):
            wal.append(payload(i))
        wal.sync()
    with pytest.raises(WALPoisonedError):
        wal.append(b"x")
    wal.close()
