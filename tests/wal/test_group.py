"""Group commit: concurrent appenders (threads and coroutines) share one fdatasync, and nobody
is told "durable" before the fdatasync that covers their record returns.

The tests hold the first fdatasync open with a gate (no timing), let every writer queue, then
release it and count the syncs.
"""

import asyncio
import threading
from pathlib import Path

import pytest

from haperf.errors import WALError, WALPoisonedError
from haperf.wal import AsyncWAL
from tests.wal.helpers import FaultyOps, open_small, payload
from tests.wal.test_faults import wait_until

WRITERS = 8


def test_threads_share_one_fdatasync(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, file_ops=ops)
    base = ops.fdatasyncs
    gate = threading.Event()
    ops.gate = gate
    done: list[int] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        index = wal.append_durable(payload(i))
        assert wal.durable_index >= index
        with lock:
            done.append(index)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    wait_until(lambda: wal.last_index == WRITERS and ops.fdatasyncs == base)
    assert done == []
    gate.set()
    for t in threads:
        t.join()
    assert sorted(done) == list(range(1, WRITERS + 1))
    # The first writer's sync, then one more for everybody who queued behind it.
    assert ops.fdatasyncs - base <= 2
    wal.close()


def test_many_threads_many_records_round_trip(tmp_path: Path) -> None:
    wal = open_small(tmp_path)
    got: dict[int, bytes] = {}
    lock = threading.Lock()

    def writer(t: int) -> None:
        for n in range(40):
            data = b"%d-%d" % (t, n)
            index = wal.append_durable(data) if n % 2 else wal.append(data)
            with lock:
                got[index] = data

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal.close()
    assert sorted(got) == list(range(1, 241))
    with open_small(tmp_path) as again:
        assert all(again.read(i) == data for i, data in got.items())


def test_group_delay_option(tmp_path: Path) -> None:
    with open_small(tmp_path, group_delay_ns=200_000, group_bytes_max=64) as wal:
        assert wal.append_durable(b"a") == 1 and wal.durable_index == 1


def test_interval_policy_syncs_in_the_background(tmp_path: Path) -> None:
    ops = FaultyOps()
    with open_small(
        tmp_path, sync_policy="interval", sync_interval_ns=1_000_000, file_ops=ops
    ) as wal:
        wal.append_batch([b"x"] * 10)
        wait_until(lambda: wal.durable_index == 10)


def test_interval_policy_failure_poisons(tmp_path: Path) -> None:
    ops = FaultyOps()
    wal = open_small(tmp_path, sync_policy="interval", sync_interval_ns=1_000_000, file_ops=ops)
    ops.fail_fdatasync_at = ops.fdatasyncs + 1
    wal.append(b"x")
    wait_until(lambda: wal.failure is not None)
    with pytest.raises(WALPoisonedError):
        wal.append(b"y")
    wal.close()


def test_async_coroutines_share_fdatasync_and_wait_for_it(tmp_path: Path) -> None:
    async def main() -> None:
        ops = FaultyOps()
        # Segments and buffer large enough that no append rolls a segment or fills the buffer
        # here: a roll fsyncs the new segment on the appending thread, which the gate would hold.
        awal = await AsyncWAL.open(
            tmp_path,
            file_ops=ops,
            segment_bytes=1 << 20,
            buffer_bytes=1 << 20,
            record_bytes_max=4096,
        )
        base = ops.fdatasyncs
        gate = threading.Event()
        ops.gate = gate
        try:
            tasks = [asyncio.ensure_future(awal.append_durable(payload(i))) for i in range(200)]
            for _ in range(50):
                await asyncio.sleep(0)
            assert awal.last_index == 200
            assert not any(t.done() for t in tasks)
        finally:
            gate.set()
        indexes = await asyncio.gather(*tasks)
        assert sorted(indexes) == list(range(1, 201))
        assert awal.durable_index == 200
        assert ops.fdatasyncs - base <= 3
        assert await awal.append_batch_durable([b"a", b"b"]) == 202
        await awal.wait_durable(202)
        assert awal.read(201) == b"a"
        assert [bytes(v) for v in awal.iterate(201)] == [b"a", b"b"]
        awal.append(b"c")
        assert await awal.sync() == 203
        await awal.truncate_after(202)
        await awal.compact_before(100)
        assert (awal.first_index, awal.last_index) == (100, 202)
        await awal.close()

    asyncio.run(main())
    with open_small(tmp_path) as wal:
        assert (wal.first_index, wal.last_index) == (100, 202)


def test_async_waiters_fail_when_sync_fails(tmp_path: Path) -> None:
    async def main() -> None:
        ops = FaultyOps()
        async with await AsyncWAL.open(tmp_path, file_ops=ops, **_small()) as awal:
            ops.fail_fdatasync_at = ops.fdatasyncs + 1
            results = await asyncio.gather(
                *(awal.append_durable(b"x") for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, WALPoisonedError) for r in results)
            with pytest.raises(WALError):
                await awal.append_durable(b"y")

    asyncio.run(main())


def _small() -> dict[str, int]:
    from tests.wal.helpers import SMALL

    return dict(SMALL)


def test_batches_from_concurrent_threads_stay_contiguous(tmp_path: Path) -> None:
    """Each batch that fits the buffer gets contiguous indexes, whatever other threads do."""
    wal = open_small(tmp_path, buffer_bytes=4096)
    batches: list[tuple[int, list[bytes]]] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for n in range(30):
            batch = [b"%d-%d-%d" % (t, n, k) for k in range(1 + (t + n) % 9)]
            last = wal.append_batch(batch)
            with lock:
                batches.append((last, batch))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal.sync()
    for last, batch in batches:
        first = last - len(batch) + 1
        assert [wal.read(i) for i in range(first, last + 1)] == batch
    assert wal.last_index == sum(len(b) for _, b in batches)
    wal.close()


def test_readers_see_every_appended_record_while_writers_run(tmp_path: Path) -> None:
    """Reads race with appends, buffer flushes and segment rolls and always see the record."""
    wal = open_small(tmp_path, buffer_bytes=4096)
    written: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    mismatches: list[int] = []

    def writer(t: int) -> None:
        for n in range(150):
            data = b"%d:%d:" % (t, n) + bytes(n % 200)
            index = wal.append_durable(data) if n % 10 == 0 else wal.append(data)
            with lock:
                written[index] = data

    def reader() -> None:
        while not stop.is_set():
            with lock:
                items = list(written.items())[-50:]
            for index, data in items:
                if wal.read(index) != data:
                    mismatches.append(index)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert mismatches == []
    assert sorted(written) == list(range(1, 601))
    wal.close()


def test_async_waiters_beyond_the_maximum_wait_for_room_before_appending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WAITERS_MAX durable appends waiting, the next one waits for room BEFORE it appends
    (it used to append, then raise WALError: a refused write that was in fact in the log)."""
    from haperf.wal import aio

    monkeypatch.setattr(aio, "WAITERS_MAX", 2)

    async def main() -> None:
        ops = FaultyOps()
        awal = await AsyncWAL.open(
            tmp_path, file_ops=ops, segment_bytes=1 << 20, buffer_bytes=1 << 20,
            record_bytes_max=4096,
        )
        gate = threading.Event()
        ops.gate = gate
        try:
            tasks = [asyncio.ensure_future(awal.append_durable(payload(i))) for i in range(4)]
            for _ in range(50):
                await asyncio.sleep(0)
            assert awal.last_index == 2  # two appended and waiting, two waiting for room
        finally:
            gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [1, 2, 3, 4]
        assert awal.last_index == 4 and awal.durable_index == 4
        await awal.close()

    asyncio.run(asyncio.wait_for(main(), 30))
