"""Adaptive concurrency: AIMD and gradient limits on synthetic latency and errors, and the
limiter that sheds load at its limit (fake clock, no sleeping)."""

import asyncio

import pytest

from haperf.errors import ConcurrencyLimitError, ConfigError
from haperf.resilience import AIMD, AdaptiveLimiter, Gradient
from tests.resilience.vloop_limits import FakeClock, VirtualLoop, run_virtual

MS = 1_000_000


def saturate(limiter: AdaptiveLimiter) -> list[int]:
    starts = []
    while (start := limiter.try_acquire()) is not None:
        starts.append(start)
    return starts


def test_aimd_grows_under_load_and_backs_off_on_errors_and_slow_calls() -> None:
    limiter = AdaptiveLimiter(AIMD(initial=10, limit_max=50, timeout_ns=100 * MS))
    # Fully used and fast: +1 per sample.
    for _ in range(5):
        assert limiter.try_acquire() is not None
    for _ in range(5):
        assert limiter.try_acquire() is not None
    limits = [limiter.on_sample(10 * MS) for _ in range(3)]
    assert limits == [11, 12, 13]
    # A drop multiplies by 0.9.
    assert limiter.on_sample(10 * MS, dropped=True) == int(13 * 0.9)
    # A sample slower than timeout_ns counts as a drop.
    before = limiter.algorithm
    assert isinstance(before, AIMD)
    for _ in range(6):
        limiter.try_acquire()
    new = limiter.on_sample(500 * MS)
    assert new == int(13 * 0.9 * 0.9)


def test_aimd_does_not_grow_when_idle_and_respects_bounds() -> None:
    limiter = AdaptiveLimiter(AIMD(initial=10, limit_min=5, limit_max=12))
    limiter.try_acquire()
    assert limiter.on_sample(1 * MS) == 10  # 1 inflight of 10: no evidence, no growth
    for _ in range(30):
        saturate(limiter)
        limiter.on_sample(1 * MS)
    assert limiter.limit == 12
    for _ in range(50):
        saturate(limiter)
        limiter.on_sample(1 * MS, dropped=True)
    assert limiter.limit == 5


def test_gradient_shrinks_when_latency_rises_and_recovers() -> None:
    limiter = AdaptiveLimiter(Gradient(initial=50, limit_max=200, long_window=100))
    for _ in range(200):
        saturate(limiter)
        limiter.on_sample(10 * MS)
    steady = limiter.limit
    assert steady > 50  # low, stable latency: the queue allowance grows it
    for _ in range(30):
        saturate(limiter)
        limiter.on_sample(60 * MS)  # 6x the long-term latency: gradient 0.5
    congested = limiter.limit
    assert congested < steady / 2
    for _ in range(400):
        saturate(limiter)
        limiter.on_sample(10 * MS)
    assert limiter.limit > congested * 2


def test_gradient_treats_errors_as_congestion() -> None:
    limiter = AdaptiveLimiter(Gradient(initial=100, limit_max=100, smoothing=0.5))
    saturate(limiter)
    assert limiter.on_sample(1 * MS, dropped=True) == 75  # halfway to 100 * 0.5


def test_limiter_rejects_at_its_limit_and_learns_from_calls() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(AIMD(initial=2, limit_max=4), clock=clock, name="svc")

    async def main(loop: VirtualLoop) -> None:
        @limiter
        async def call(fail: bool) -> str:
            await asyncio.sleep(0.01)
            clock.advance(5 * MS)
            if fail:
                raise OSError("backend down")
            return "ok"

        tasks = [asyncio.create_task(call(False)) for _ in range(3)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results[:2] == ["ok", "ok"]
        assert isinstance(results[2], ConcurrencyLimitError) and results[2].policy == "svc"
        # First sample at full use (2 of 2): 2 -> 3; second with 1 of 3 in flight: no growth.
        assert limiter.limit == 3
        with pytest.raises(OSError):
            await call(True)
        assert limiter.limit == 2  # int(3 * 0.9)

    run_virtual(main)
    m = limiter.metrics()
    assert (m["successes"], m["failures"], m["rejections"], m["inflight"]) == (2, 1, 1, 0)


def test_sync_decorator() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(AIMD(initial=1, limit_max=1), clock=clock)

    @limiter
    def nested() -> str:
        return inner()

    @limiter
    def inner() -> str:
        return "unreachable"

    with pytest.raises(ConcurrencyLimitError):
        nested()
    assert limiter.inflight == 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: AIMD(initial=0),
        lambda: AIMD(limit_min=10, initial=5),
        lambda: AIMD(backoff_ratio=1.0),
        lambda: AIMD(increase=0),
        lambda: AIMD(timeout_ns=0),
        lambda: Gradient(smoothing=0),
        lambda: Gradient(rtt_tolerance=0.5),
        lambda: Gradient(long_window=0),
        lambda: Gradient(initial=5000, limit_max=1000),
        lambda: AdaptiveLimiter("aimd"),  # type: ignore[arg-type]
    ],
)
def test_bad_configuration(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]
