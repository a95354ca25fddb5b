"""Resilience part B benchmarks: groups ratelimit, bulkhead, timeout, hedge and sketch.

Owns the rows for the rate limiters, the bulkhead, the timeout, hedging and the latency/error
budgets. Sync rows divide by floor.py_call (one no-op call with one argument); async rows by
floor.await_call (awaiting a no-op coroutine in the same coroutine loop). Peers run when
installed (pip install 'haperf[peers]'): aiolimiter, pyrate-limiter and limits for rate limits;
asyncio.Semaphore, threading.Semaphore and hyx for the bulkhead; asyncio.timeout and hyx for the
timeout; ddsketch and hdrhistogram for the sketch. Every limiter is configured so the measured
path is the common one (tokens available, a slot free, no deadline hit), and a *_rejected row
measures the refusal path.
"""

import asyncio
import threading
import time
from collections.abc import Callable

from haperf._native.sketch import LatencySketch
from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.bench.timing import bench_loop
from haperf.resilience import (
    AdaptiveLimiter,
    Bulkhead,
    ErrorBudget,
    Hedge,
    KeyedRateLimiter,
    LatencyBudget,
    RateLimiter,
    Timeout,
    timeout_scope,
)

RATE_UNBOUNDED = 1e12  # tokens per second: the bucket never runs dry during a row
SKETCH_VALUE = 1_234_567.0
QUANTILE_SAMPLES = 100_000


async def _anoop(_x: object) -> None:
    return None


# -- ratelimit --------------------------------------------------------------------------------


def _try_acquire() -> Op:
    rl = RateLimiter(RATE_UNBOUNDED, RATE_UNBOUNDED)
    return Op(rl.try_acquire, (1.0,))


def _try_acquire_at() -> Op:
    rl = RateLimiter(RATE_UNBOUNDED, RATE_UNBOUNDED)
    return Op(rl.try_acquire_at, (time.monotonic_ns(), 1.0))


def _clock_read() -> Op:
    return Op(time.monotonic_ns)


def _try_acquire_rejected() -> Op:
    rl = RateLimiter(1e-9, 1)
    rl.try_acquire(1.0)
    return Op(rl.try_acquire, (1.0,))


def _acquire_async() -> Op:
    bench_loop()
    rl = RateLimiter(RATE_UNBOUNDED, RATE_UNBOUNDED)
    return Op(rl.acquire, (1.0,), is_async=True)


def _keyed() -> Op:
    kl = KeyedRateLimiter(RATE_UNBOUNDED, RATE_UNBOUNDED, keys_max=1024)
    return Op(kl.try_acquire, ("client-42",))


def _adaptive() -> Op:
    limiter = AdaptiveLimiter()
    try_acquire, release = limiter.try_acquire, limiter.release

    def acquire_release(_x: object) -> None:
        start = try_acquire()
        assert start is not None
        release(start)

    return Op(acquire_release, (None,))


def _pyrate() -> Op:
    from pyrate_limiter import Duration, Limiter, Rate  # type: ignore[import-not-found,import-untyped,unused-ignore]

    limiter = Limiter(Rate(1_000_000_000, Duration.SECOND))
    return Op(limiter.try_acquire, ("k",))


def _limits_moving() -> Op:
    from limits import RateLimitItemPerSecond, storage, strategies  # type: ignore[import-not-found,import-untyped,unused-ignore]

    limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(1_000_000_000)
    return Op(limiter.hit, (item, "k"))


def _limits_fixed() -> Op:
    from limits import RateLimitItemPerSecond, storage, strategies  # type: ignore[import-not-found,import-untyped,unused-ignore]

    limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(1_000_000_000)
    return Op(limiter.hit, (item, "k"))


def _aiolimiter() -> Op:
    from aiolimiter import AsyncLimiter  # type: ignore[import-not-found,import-untyped,unused-ignore]

    bench_loop()
    limiter = AsyncLimiter(RATE_UNBOUNDED, 1)
    return Op(limiter.acquire, (1,), is_async=True)


# -- bulkhead ---------------------------------------------------------------------------------


def _bulkhead_async() -> Op:
    bench_loop()
    bh = Bulkhead(1024)

    async def enter_exit(_x: object) -> None:
        async with bh:
            pass

    return Op(enter_exit, (None,), is_async=True)


def _bulkhead_call_async() -> Op:
    bench_loop()
    call = Bulkhead(1024)(_anoop)
    return Op(call, (None,), is_async=True)


def _semaphore_async() -> Op:
    bench_loop()
    sem = asyncio.Semaphore(1024)

    async def enter_exit(_x: object) -> None:
        async with sem:
            pass

    return Op(enter_exit, (None,), is_async=True)


def _hyx_bulkhead() -> Op:
    from hyx.bulkhead import bulkhead  # type: ignore[import-not-found,import-untyped,unused-ignore]

    bench_loop()
    bh = bulkhead(max_concurrency=1024, max_capacity=2048)

    async def enter_exit(_x: object) -> None:
        async with bh:
            pass

    return Op(enter_exit, (None,), is_async=True)


def _bulkhead_sync() -> Op:
    bh = Bulkhead(1024)

    def enter_exit(_x: object) -> None:
        with bh:
            pass

    return Op(enter_exit, (None,))


def _thread_semaphore() -> Op:
    sem = threading.BoundedSemaphore(1024)

    def enter_exit(_x: object) -> None:
        with sem:
            pass

    return Op(enter_exit, (None,))


# -- timeout ----------------------------------------------------------------------------------


def _timeout_call() -> Op:
    bench_loop()
    call = Timeout(1_000_000_000)(_anoop)
    return Op(call, (None,), is_async=True)


def _timeout_scope() -> Op:
    bench_loop()

    async def scoped(_x: object) -> None:
        async with timeout_scope(1_000_000_000):
            await _anoop(None)

    return Op(scoped, (None,), is_async=True)


def _asyncio_timeout() -> Op:
    bench_loop()

    async def scoped(_x: object) -> None:
        async with asyncio.timeout(1.0):
            await _anoop(None)

    return Op(scoped, (None,), is_async=True)


def _hyx_timeout() -> Op:
    from hyx.timeout import timeout  # type: ignore[import-not-found,import-untyped,unused-ignore]

    bench_loop()
    scope = timeout(1.0)

    async def scoped(_x: object) -> None:
        async with scope:
            await _anoop(None)

    return Op(scoped, (None,), is_async=True)


# -- hedge ------------------------------------------------------------------------------------


def _hedge_fast() -> Op:
    bench_loop()
    call = Hedge(delay_ns=1_000_000_000)(_anoop)
    return Op(call, (None,), is_async=True)


def _task_floor() -> Op:
    bench_loop()

    async def task_and_wait(_x: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_task(_anoop(None))

    return Op(task_and_wait, (None,), is_async=True)


# -- sketch and budgets -----------------------------------------------------------------------


def _sketch_record() -> Op:
    return Op(LatencySketch(0.01).record, (SKETCH_VALUE,))


def _sketch_quantile() -> Op:
    sketch = LatencySketch(0.01)
    for i in range(QUANTILE_SAMPLES):
        sketch.record(1_000.0 + (i * 7919) % 10_000_000)
    return Op(sketch.quantile, (0.99,))


def _ddsketch_add() -> Op:
    from ddsketch import DDSketch  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return Op(DDSketch(0.01).add, (SKETCH_VALUE,))


def _hdr_record() -> Op:
    from hdrh.histogram import HdrHistogram  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return Op(HdrHistogram(1, 3_600_000_000_000, 2).record_value, (1_234_567,))


def _latency_budget_record() -> Op:
    return Op(LatencyBudget().record, (1_234_567,))


def _error_budget_record() -> Op:
    return Op(ErrorBudget().record, (True,))


def _peer(name: str, setup: Callable[[], Op], note: str = "") -> Peer:
    return Peer(name, setup, note)


register_all(
    [
        Benchmark(
            "ratelimit.try_acquire",
            "ratelimit",
            "RateLimiter.try_acquire(1.0): token available (injected monotonic_ns clock)",
            _try_acquire,
            peers=(
                _peer("pyrate-limiter", _pyrate, "Limiter.try_acquire, in-memory bucket"),
                _peer("limits.moving", _limits_moving, "MovingWindowRateLimiter.hit, memory"),
                _peer("limits.fixed", _limits_fixed, "FixedWindowRateLimiter.hit, memory"),
            ),
        ),
        Benchmark(
            "ratelimit.try_acquire_at",
            "ratelimit",
            "RateLimiter.try_acquire_at(now_ns, 1.0): the caller passes the time it already holds",
            _try_acquire_at,
        ),
        Benchmark(
            "ratelimit.clock_read",
            "ratelimit",
            "time.monotonic_ns(): the default clock every facade call reads once",
            _clock_read,
        ),
        Benchmark(
            "ratelimit.try_acquire_rejected",
            "ratelimit",
            "RateLimiter.try_acquire(1.0): empty bucket, refused",
            _try_acquire_rejected,
        ),
        Benchmark(
            "ratelimit.acquire_async",
            "ratelimit",
            "await RateLimiter.acquire(1.0): token available",
            _acquire_async,
            floor="floor.await_call",
            peers=(_peer("aiolimiter", _aiolimiter, "await AsyncLimiter.acquire(1)"),),
        ),
        Benchmark(
            "ratelimit.keyed_try_acquire",
            "ratelimit",
            "KeyedRateLimiter.try_acquire(key): known key, LRU touch",
            _keyed,
        ),
        Benchmark(
            "ratelimit.adaptive_acquire_release",
            "ratelimit",
            "AdaptiveLimiter (AIMD) try_acquire + release: one sample",
            _adaptive,
        ),
        Benchmark(
            "bulkhead.enter_exit_async",
            "bulkhead",
            "async with Bulkhead: pass (slot free)",
            _bulkhead_async,
            floor="floor.await_call",
            peers=(
                _peer("asyncio.Semaphore", _semaphore_async, "async with Semaphore: pass"),
                _peer("hyx", _hyx_bulkhead, "async with hyx bulkhead: pass"),
            ),
        ),
        Benchmark(
            "bulkhead.call_async",
            "bulkhead",
            "await Bulkhead-decorated no-op coroutine",
            _bulkhead_call_async,
            floor="floor.await_call",
        ),
        Benchmark(
            "bulkhead.enter_exit_sync",
            "bulkhead",
            "with Bulkhead: pass (thread path, slot free)",
            _bulkhead_sync,
            peers=(_peer("threading.BoundedSemaphore", _thread_semaphore, "with sem: pass"),),
        ),
        Benchmark(
            "timeout.call_async",
            "timeout",
            "await Timeout(1 s)-decorated no-op coroutine (deadline queue, no timer per call)",
            _timeout_call,
            floor="floor.await_call",
            peers=(
                _peer("asyncio.timeout", _asyncio_timeout, "async with asyncio.timeout(1)"),
                _peer("hyx", _hyx_timeout, "async with hyx timeout(1.0)"),
            ),
        ),
        Benchmark(
            "timeout.scope_async",
            "timeout",
            "async with timeout_scope(1 s): await no-op",
            _timeout_scope,
            floor="floor.await_call",
            peers=(_peer("asyncio.timeout", _asyncio_timeout, "async with asyncio.timeout(1)"),),
        ),
        Benchmark(
            "hedge.fast_primary",
            "hedge",
            "await Hedge(delay 1 s)-decorated no-op: one task, no hedge sent",
            _hedge_fast,
            floor="floor.await_call",
            peers=(_peer("create_task+await", _task_floor, "bare task per call, no hedging"),),
        ),
        Benchmark(
            "sketch.record",
            "sketch",
            "LatencySketch.record(value): 1% relative accuracy",
            _sketch_record,
            peers=(
                _peer("ddsketch", _ddsketch_add, "DDSketch(0.01).add"),
                _peer("hdrhistogram", _hdr_record, "HdrHistogram(1 ns..1 h, 2 digits)"),
            ),
        ),
        Benchmark(
            "sketch.quantile_p99",
            "sketch",
            f"LatencySketch.quantile(0.99) over {QUANTILE_SAMPLES} values",
            _sketch_quantile,
        ),
        Benchmark(
            "sketch.latency_budget_record",
            "sketch",
            "LatencyBudget.record(ns): clock read, window check, sketch record",
            _latency_budget_record,
        ),
        Benchmark(
            "sketch.error_budget_record",
            "sketch",
            "ErrorBudget.record(True): budget and alert windows",
            _error_budget_record,
        ),
    ]
)
