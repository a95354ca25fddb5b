"""The breaker under concurrency and at volume: threads are not serialised, thousands of
coroutines pass at once, the half-open cap holds across threads, and a million rejections
leave memory and traceback length where they were.

The thread tests assert on overlap (how many calls were inside the protected function at once),
never on wall time: the calls meet at a barrier, which a breaker that held a lock across the
call could never let them reach (the control test shows that).
"""

import asyncio
import contextlib
import gc
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from haperf.errors import CallNotPermittedError
from haperf.resilience import BreakerState, CircuitBreaker, Retry
from tests.resilience.virtual_time_breaker import SECOND, FakeClock

THREADS = 8
CALL_S = 0.020
BARRIER_TIMEOUT_S = 30.0


class Overlap:
    """Counts the calls inside a protected function and the most seen at once."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.barrier = barrier

    def call(self) -> None:
        with self.lock:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
        try:
            # Every thread must be inside the protected call before any may leave it.
            self.barrier.wait()
            time.sleep(CALL_S)
        finally:
            with self.lock:
                self.inside -= 1


def run_threads(fn: Callable[[], Any]) -> list[BaseException | None]:
    errors: list[BaseException | None] = []

    def worker() -> None:
        try:
            fn()
            errors.append(None)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * BARRIER_TIMEOUT_S)
    return errors


def test_threads_through_one_breaker_run_their_calls_concurrently() -> None:
    overlap = Overlap(threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S))
    breaker = CircuitBreaker("threads", window_size=100, calls_min=100)
    errors = run_threads(breaker(overlap.call))
    assert errors == [None] * THREADS
    assert overlap.max_inside == THREADS
    m = breaker.metrics()
    assert (m["calls"], m["successes"]) == (THREADS, THREADS)


def test_threads_through_breaker_slow_call_path_run_concurrently() -> None:
    # A slow-call threshold makes every call read the clock: still no lock across the call.
    overlap = Overlap(threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S))
    breaker = CircuitBreaker("slow", slow_call_ns=SECOND, window="time", window_ns=SECOND * 10)
    errors = run_threads(breaker(overlap.call))
    assert errors == [None] * THREADS
    assert overlap.max_inside == THREADS


def test_control_a_lock_held_across_the_call_fails_the_same_harness() -> None:
    overlap = Overlap(threading.Barrier(THREADS, timeout=0.5))
    lock = threading.Lock()

    def serialised() -> None:
        with lock:
            overlap.call()

    errors = run_threads(serialised)
    assert overlap.max_inside == 1
    assert any(isinstance(e, threading.BrokenBarrierError) for e in errors)


def test_half_open_cap_holds_across_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "cap", window_size=2, calls_min=2, half_open_permits=3, open_duration_ns=SECOND, clock=clock
    )
    breaker.force_open()
    breaker.transition_to(BreakerState.OPEN)
    clock.advance(SECOND)
    start = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S)

    def probe() -> bool:
        start.wait()
        return breaker.allow()

    with ThreadPoolExecutor(THREADS) as pool:
        granted = list(pool.map(lambda _: probe(), range(THREADS)))
    assert sum(granted) == 3
    assert breaker.metrics()["rejections"] == THREADS - 3


def test_thousands_of_concurrent_coroutines_through_breaker_and_retry() -> None:
    n = 5000
    breaker = CircuitBreaker("many", window_size=100, calls_min=100)
    retry = Retry("many", attempts_max=2, initial_delay_ns=0)
    inside = 0
    max_inside = 0

    async def main() -> list[int]:
        release = asyncio.Event()

        @breaker
        @retry
        async def call(i: int) -> int:
            nonlocal inside, max_inside
            inside += 1
            max_inside = max(max_inside, inside)
            if inside == n:
                release.set()
            await release.wait()
            inside -= 1
            return i

        return await asyncio.gather(*(call(i) for i in range(n)))

    assert asyncio.run(main()) == list(range(n))
    assert max_inside == n
    assert breaker.metrics()["successes"] == n
    assert retry.metrics()["successes"] == n


def test_a_million_rejections_keep_memory_and_tracebacks_bounded() -> None:
    breaker = CircuitBreaker("mem")
    breaker.force_open()

    @breaker
    def call() -> None:
        return None

    def reject() -> CallNotPermittedError:
        try:
            call()
        except CallNotPermittedError as exc:
            return exc
        raise AssertionError("the call was not rejected")

    first = reject()
    depth = len(traceback.extract_tb(first.__traceback__))
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        last = first
        for _ in range(1_000_000):
            last = reject()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last is not first  # a fresh error each time, never one object re-raised
    assert len(traceback.extract_tb(last.__traceback__)) == depth
    assert after - before < 64 * 1024, f"memory grew by {after - before} bytes"
    assert breaker.metrics()["rejections"] == 1_000_001


def test_async_rejections_keep_tracebacks_bounded() -> None:
    breaker = CircuitBreaker("amem")
    breaker.force_open()

    @breaker
    async def call() -> None:
        return None

    async def main() -> list[int]:
        depths = []
        for _ in range(10_000):
            try:
                await call()
            except CallNotPermittedError as exc:
                depths.append(len(traceback.extract_tb(exc.__traceback__)))
        return depths

    depths = asyncio.run(main())
    assert len(set(depths)) == 1


@pytest.mark.parametrize("window", ["count", "time"])
def test_outcomes_from_threads_keep_the_window_consistent(window: str) -> None:
    breaker = CircuitBreaker(
        "consistent",
        window=window,  # type: ignore[arg-type]
        window_size=50,
        window_ns=SECOND,
        window_buckets=10,
        calls_min=10**9,
    )
    per_thread = 5000

    def work() -> None:
        for i in range(per_thread):
            if breaker.allow():
                if i % 3:
                    breaker.on_success(i)
                else:
                    breaker.on_failure(i)

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(work) for _ in range(4)]:
            f.result()
    m = breaker.metrics()
    assert m["calls"] == m["successes"] + m["failures"] == 4 * per_thread
    assert 0 <= m["buffered_failures"] <= m["buffered_calls"]


def test_guarded_async_calls_do_not_leak() -> None:
    breaker = CircuitBreaker("leak", window_size=100, calls_min=100, failure_rate_threshold=100)
    retry = Retry("leak", attempts_max=2, initial_delay_ns=0)
    rejecting = CircuitBreaker("leak_open")
    rejecting.force_open()

    @breaker
    @retry
    async def call(i: int) -> int:
        if i % 2:
            raise OSError(i)
        return i

    @rejecting
    async def rejected() -> None:
        return None

    async def run(n: int) -> None:
        for i in range(n):
            with contextlib.suppress(OSError):
                await call(i)
            with contextlib.suppress(CallNotPermittedError):
                await rejected()

    asyncio.run(run(1000))  # warm up caches and free lists
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        asyncio.run(run(50_000))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256 * 1024, f"memory grew by {after - before} bytes"
    assert retry.metrics()["calls"] == 51_000
