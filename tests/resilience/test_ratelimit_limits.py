"""RateLimiter and KeyedRateLimiter in virtual time: refill, burst, FIFO fairness, cancellation,
bounded waits, the LRU key bound, and configuration errors."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import ConfigError, RateLimitedError
from haperf.resilience import KeyedRateLimiter, RateLimiter
from tests.resilience.vloop_limits import FakeClock, VirtualLoop, run_virtual

MS = 1_000_000
S = 1_000_000_000


def test_burst_then_refill_at_rate() -> None:
    clock = FakeClock()
    rl = RateLimiter(10, 5, clock=clock)
    assert [rl.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(99 * MS)
    assert not rl.try_acquire()
    clock.advance(1 * MS)  # 100 ms at 10/s = 1 token
    assert rl.try_acquire()
    assert not rl.try_acquire()
    clock.advance(10 * S)  # refill stops at burst
    assert rl.tokens() == pytest.approx(5.0)
    assert sum(rl.try_acquire() for _ in range(10)) == 5
    m = rl.metrics()
    assert m["granted"] == 11 and m["rejections"] == 8


def test_fractional_and_weighted_requests() -> None:
    clock = FakeClock()
    rl = RateLimiter(2, 4, clock=clock)
    assert rl.try_acquire(3.5)
    assert not rl.try_acquire(1.0)
    assert rl.try_acquire(0.5)
    clock.advance(S)
    assert rl.tokens() == pytest.approx(2.0)


@given(st.lists(st.tuples(st.integers(0, 2 * S), st.floats(0.1, 4.0)), max_size=60))
def test_never_grants_more_than_burst_plus_refill(steps: list[tuple[int, float]]) -> None:
    clock = FakeClock()
    rate, burst = 3.0, 4.0
    rl = RateLimiter(rate, burst, clock=clock)
    granted = 0.0
    for advance, n in steps:
        clock.advance(advance)
        if rl.try_acquire(n):
            granted += n
    elapsed_s = sum(a for a, _ in steps) / S
    assert granted <= burst + rate * elapsed_s + 1e-6


def test_async_acquire_waits_in_virtual_time() -> None:
    async def main(loop: VirtualLoop) -> list[int]:
        rl = RateLimiter(10, 1, clock=loop.clock_ns)
        times = []
        for _ in range(4):
            await rl.acquire()
            times.append(loop.clock_ns())
        return times

    times = run_virtual(main)
    assert [t - times[0] for t in times] == [0, 100 * MS, 200 * MS, 300 * MS]


def test_fifo_large_request_not_starved_by_small_ones() -> None:
    async def main(loop: VirtualLoop) -> list[str]:
        rl = RateLimiter(10, 10, clock=loop.clock_ns)
        assert rl.try_acquire(10)  # empty the bucket
        order: list[str] = []

        async def take(label: str, n: float) -> None:
            await rl.acquire(n)
            order.append(label)

        big = asyncio.create_task(take("big", 10))
        await asyncio.sleep(0)
        smalls = [asyncio.create_task(take(f"s{i}", 1)) for i in range(5)]
        await asyncio.sleep(0)
        # While anyone waits, non-blocking requests fail even if tokens exist.
        loop.advance_ns(200 * MS)
        assert not rl.try_acquire(1)
        await asyncio.gather(big, *smalls)
        return order

    assert run_virtual(main) == ["big", "s0", "s1", "s2", "s3", "s4"]


def test_cancel_before_grant_returns_nothing() -> None:
    async def main(loop: VirtualLoop) -> None:
        rl = RateLimiter(1, 2, clock=loop.clock_ns)
        assert rl.try_acquire(2)
        waiter = asyncio.create_task(rl.acquire(2))
        await asyncio.sleep(0.5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # Half a second refilled 0.5 tokens; the cancelled waiter added none.
        assert rl.tokens() == pytest.approx(0.5)
        assert rl.metrics()["waiters"] == 0
        assert rl.try_acquire(0.5)

    run_virtual(main)


def test_cancel_after_grant_returns_exactly_what_it_took() -> None:
    async def main(loop: VirtualLoop) -> None:
        rl = RateLimiter(1, 3, clock=loop.clock_ns)
        assert rl.try_acquire(3)
        waiter = asyncio.create_task(rl.acquire(2))
        await asyncio.sleep(0)
        loop.advance_ns(2 * S)
        rl._pump(loop)  # grant now: tokens are taken, the task has not resumed yet
        assert rl.tokens() == pytest.approx(0.0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert rl.tokens() == pytest.approx(2.0)
        assert rl.metrics()["refunded"] == 1

    run_virtual(main)


def test_cancelled_head_lets_the_next_waiter_through() -> None:
    async def main(loop: VirtualLoop) -> int:
        rl = RateLimiter(1, 5, clock=loop.clock_ns)
        assert rl.try_acquire(5)
        head = asyncio.create_task(rl.acquire(5))
        await asyncio.sleep(0)
        small = asyncio.create_task(rl.acquire(1))
        await asyncio.sleep(0)
        head.cancel()
        await small
        return loop.clock_ns()

    start = 1_000_000_000
    assert run_virtual(main) - start == S  # one token after 1 s, not 5 s


def test_bounded_queue_and_bounded_wait() -> None:
    async def main(loop: VirtualLoop) -> None:
        rl = RateLimiter(1, 1, clock=loop.clock_ns, waiters_max=1, wait_ns_max=3 * S)
        assert rl.try_acquire()
        first = asyncio.create_task(rl.acquire())
        await asyncio.sleep(0)
        with pytest.raises(RateLimitedError, match="queue is full"):
            await rl.acquire()
        await first
        rl2 = RateLimiter(1, 1, clock=loop.clock_ns, wait_ns_max=2 * S)
        assert rl2.try_acquire()
        t1 = asyncio.create_task(rl2.acquire())
        await asyncio.sleep(0)
        t2 = asyncio.create_task(rl2.acquire())
        await asyncio.sleep(0)
        with pytest.raises(RateLimitedError, match="wait_ns_max") as info:
            await rl2.acquire()
        assert info.value.retry_after_ns == 3 * S
        await asyncio.gather(t1, t2)

    run_virtual(main)


def test_decorators_sync_rejects_async_waits() -> None:
    clock = FakeClock()
    rl = RateLimiter(1, 2, clock=clock, name="api")

    @rl
    def f(x: int) -> int:
        return x * 2

    assert f(1) == 2 and f(2) == 4
    with pytest.raises(RateLimitedError) as info:
        f(3)
    assert info.value.policy == "api" and info.value.retry_after_ns == S
    m = rl.metrics()
    assert (m["calls"], m["successes"], m["rejections"]) == (3, 2, 1)

    async def main(loop: VirtualLoop) -> int:
        rla = RateLimiter(2, 1, clock=loop.clock_ns)

        @rla
        async def g(x: int) -> int:
            return x + 1

        results = [await g(i) for i in range(3)]
        assert results == [1, 2, 3]
        return loop.clock_ns()

    assert run_virtual(main) - 1_000_000_000 == S  # two waits of 0.5 s


def test_keyed_limiter_bounds_keys_and_counts_lossy_evictions() -> None:
    clock = FakeClock()
    kl = KeyedRateLimiter(1, 2, keys_max=3, clock=clock)
    for key in "abc":
        assert kl.try_acquire(key)
    assert len(kl) == 3
    assert kl.try_acquire("a")  # a is now most recent: LRU order b, c, a
    assert kl.try_acquire("d")  # evicts b (not full: lossy)
    assert len(kl) == 3 and "b" not in kl and "a" in kl
    assert kl.metrics()["evictions_lossy"] == 1
    assert not kl.try_acquire("a")  # a spent both tokens
    clock.advance(10 * S)  # everything refills: evictions are lossless now
    for key in "efg":
        assert kl.try_acquire(key)
    m = kl.metrics()
    assert m["keys"] == 3 and m["evictions"] == 4 and m["evictions_lossy"] == 1
    clock.advance(10 * S)
    assert kl.evict_idle() == 3 and len(kl) == 0


def test_keyed_limiter_table_never_exceeds_keys_max() -> None:
    clock = FakeClock()
    kl = KeyedRateLimiter(5, keys_max=100, clock=clock)
    for i in range(10_000):
        kl.try_acquire(i % 937)
        assert len(kl) <= 100


def test_keyed_decorator_uses_key_function() -> None:
    clock = FakeClock()
    kl = KeyedRateLimiter(1, 1, key=lambda user, _x: user, clock=clock)

    @kl
    def handle(user: str, x: int) -> int:
        return x

    assert handle("u1", 1) == 1 and handle("u2", 2) == 2
    with pytest.raises(RateLimitedError):
        handle("u1", 3)
    with pytest.raises(ConfigError, match="key="):
        KeyedRateLimiter(1)(lambda: None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_per_s": 0},
        {"rate_per_s": -1},
        {"rate_per_s": 1, "burst": 0.5},
        {"rate_per_s": 1, "waiters_max": -1},
        {"rate_per_s": 1, "wait_ns_max": -5},
        {"rate_per_s": 1, "name": ""},
        {"rate_per_s": float("nan")},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


def test_bad_keyed_configuration_and_oversized_request() -> None:
    with pytest.raises(ConfigError, match="keys_max"):
        KeyedRateLimiter(1, keys_max=0)

    async def main(loop: VirtualLoop) -> None:
        rl = RateLimiter(1, 2, clock=loop.clock_ns)
        rl.try_acquire(2)
        with pytest.raises(ConfigError, match="burst"):
            await rl.acquire(3)

    run_virtual(main)


def test_try_acquire_at_uses_the_given_time() -> None:
    clock = FakeClock()
    rl = RateLimiter(10, 1, clock=clock)
    now = clock()
    assert rl.try_acquire_at(now)
    assert not rl.try_acquire_at(now + 50 * MS)
    assert rl.try_acquire_at(now + 100 * MS)  # the clock itself never moved
    assert clock() == now
