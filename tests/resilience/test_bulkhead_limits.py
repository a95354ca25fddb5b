"""Bulkhead: concurrency bound, bounded FIFO queue, queue timeout and rejection counts, for
thousands of coroutines in virtual time and for real threads."""

import asyncio
import threading

import pytest

from haperf.errors import BulkheadFullError, ConfigError
from haperf.resilience import Bulkhead
from tests.resilience.vloop_limits import VirtualLoop, run_virtual

MS = 1_000_000


def test_thousands_of_coroutines_never_exceed_the_limit() -> None:
    async def main(loop: VirtualLoop) -> None:
        bh = Bulkhead(16, queue_max=5000)
        running = 0
        peak = 0

        @bh
        async def work(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001 * (i % 7))
            running -= 1
            return i

        results = await asyncio.gather(*(work(i) for i in range(4000)))
        assert results == list(range(4000))
        assert peak == 16
        m = bh.metrics()
        assert m["successes"] == 4000 and m["rejections"] == 0 and m["inflight"] == 0
        assert m["inflight_peak"] == 16 and m["queued"] == 0 and m["handovers"] > 0

    run_virtual(main)


def test_full_queue_rejects_at_once_and_counts() -> None:
    async def main(loop: VirtualLoop) -> None:
        bh = Bulkhead(2, queue_max=3, name="db")

        @bh
        async def work() -> None:
            await asyncio.sleep(1)

        tasks = [asyncio.create_task(work()) for _ in range(10)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        rejected = [r for r in results if isinstance(r, BulkheadFullError)]
        assert len(rejected) == 5 and all(r.policy == "db" for r in rejected)
        m = bh.metrics()
        assert (m["successes"], m["rejections"], m["calls"]) == (5, 5, 10)

    run_virtual(main)


def test_queue_timeout_in_virtual_time() -> None:
    async def main(loop: VirtualLoop) -> None:
        bh = Bulkhead(1, queue_max=10, queue_timeout_ns=50 * MS)

        async def hold() -> None:
            async with bh:
                await asyncio.sleep(1)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        t0 = loop.clock_ns()
        with pytest.raises(BulkheadFullError, match="queue timeout"):
            async with bh:
                pass
        assert loop.clock_ns() - t0 == 50 * MS
        await holder
        m = bh.metrics()
        assert m["queue_timeouts"] == 1 and m["rejections"] == 1 and m["queued"] == 0
        async with bh:  # the slot is free again
            assert bh.inflight == 1

    run_virtual(main)


def test_fifo_handover_no_barging() -> None:
    async def main(loop: VirtualLoop) -> list[int]:
        bh = Bulkhead(1, queue_max=100)
        order: list[int] = []

        async def work(i: int) -> None:
            async with bh:
                order.append(i)
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(work(i)) for i in range(20)]
        await asyncio.gather(*tasks)
        return order

    assert run_virtual(main) == list(range(20))


def test_cancelled_waiter_leaves_the_queue_and_granted_one_returns_its_slot() -> None:
    async def main(loop: VirtualLoop) -> None:
        bh = Bulkhead(1, queue_max=10)

        async def hold(delay: float) -> None:
            async with bh:
                await asyncio.sleep(delay)

        holder = asyncio.create_task(hold(1))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(hold(1))
        await asyncio.sleep(0)
        assert bh.queued == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert bh.queued == 0
        # Now a waiter that is granted the slot but cancelled before it resumes.
        granted = asyncio.create_task(hold(1))
        await asyncio.sleep(0)
        await holder  # handover happens here; `granted` has not run yet
        granted.cancel()
        with pytest.raises(asyncio.CancelledError):
            await granted
        assert bh.inflight == 0 and bh.queued == 0
        async with bh:
            pass

    run_virtual(main)


def test_sync_threads_respect_the_limit() -> None:
    bh = Bulkhead(4, queue_max=64)
    lock = threading.Lock()
    running = 0
    peak = 0

    @bh
    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        for _ in range(200):
            pass
        with lock:
            running -= 1

    def worker() -> None:
        for _ in range(200):
            work()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert 1 <= peak <= 4
    m = bh.metrics()
    assert m["successes"] == 3200 and m["inflight"] == 0 and m["queued"] == 0
    assert m["rejections"] == 0


def test_thread_queue_full_and_queue_timeout() -> None:
    bh = Bulkhead(1, queue_max=1, queue_timeout_ns=20 * MS)
    release = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        with bh:
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(30)
    # One waiter may queue: it times out (the holder is blocked until we release it).
    with pytest.raises(BulkheadFullError, match="queue timeout"), bh:
        pass
    release.set()
    holder.join(30)
    m = bh.metrics()
    assert m["queue_timeouts"] == 1 and m["inflight"] == 0 and m["queued"] == 0
    bh0 = Bulkhead(1)
    with bh0, pytest.raises(BulkheadFullError, match="queue is full"):
        bh0.__enter__()


def test_thread_waiter_is_handed_the_slot() -> None:
    bh = Bulkhead(1, queue_max=4)
    order: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def first() -> None:
        with bh:
            entered.set()
            release.wait(30)
            order.append("first")

    def second() -> None:
        with bh:
            order.append("second")

    t1 = threading.Thread(target=first)
    t1.start()
    assert entered.wait(30)
    t2 = threading.Thread(target=second)
    t2.start()
    while bh.queued == 0 and t2.is_alive():
        threading.Event().wait(0.001)
    release.set()
    t1.join(30)
    t2.join(30)
    assert order == ["first", "second"]
    assert bh.metrics()["handovers"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrent": 0},
        {"max_concurrent": 1, "queue_max": -1},
        {"max_concurrent": 1, "queue_timeout_ns": -1},
        {"max_concurrent": 1.5},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Bulkhead(**kwargs)  # type: ignore[arg-type]


def test_thread_hands_its_slot_to_a_coroutine_on_another_thread() -> None:
    bh = Bulkhead(1, queue_max=2)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with bh:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)

    async def main() -> int:
        loop = asyncio.get_running_loop()

        async def enter() -> int:
            async with bh:
                return bh.inflight

        task = asyncio.create_task(enter())
        while bh.queued == 0:
            await asyncio.sleep(0)
        # The holder releases from its own thread: the slot is handed over through
        # call_soon_threadsafe and the waiting coroutine resumes on this loop.
        loop.call_soon(release.set)
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(main()) == 1
    holder.join(30)
    m = bh.metrics()
    assert m["handovers"] == 1 and m["inflight"] == 0 and m["successes"] == 2
