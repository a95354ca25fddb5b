"""Hedge and Fallback in virtual time: the second attempt after the delay, first success wins,
losers cancelled, the hedge bound, budget gating and latency-driven delays; fallback values."""

import asyncio
import gc
from typing import Any

import pytest

from haperf.errors import ConfigError
from haperf.resilience import ErrorBudget, Fallback, Hedge, LatencyBudget
from tests.resilience.vloop_limits import FakeClock, VirtualLoop, run_virtual

MS = 1_000_000


class Backend:
    """Attempt i sleeps delays[i] seconds then answers (or raises failures[i])."""

    def __init__(self, delays: list[float], failures: dict[int, Exception] | None = None) -> None:
        self.delays = delays
        self.failures = failures or {}
        self.started = 0
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    async def call(self) -> str:
        i = self.started
        self.started += 1
        try:
            await asyncio.sleep(self.delays[i])
        except asyncio.CancelledError:
            self.cancelled.append(i)
            raise
        self.finished.append(i)
        if i in self.failures:
            raise self.failures[i]
        return f"attempt{i}"


def test_second_attempt_after_delay_wins_and_loser_is_cancelled() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend([1.0, 0.005])
        hedge = Hedge(delay_ns=10 * MS, clock=loop.clock_ns)
        call = hedge(backend.call)
        t0 = loop.clock_ns()
        assert await call() == "attempt1"
        assert loop.clock_ns() - t0 == 15 * MS
        await asyncio.sleep(0)
        assert backend.cancelled == [0]
        m = hedge.metrics()
        assert (m["calls"], m["successes"], m["hedges"], m["cancellations"]) == (1, 1, 1, 1)

    run_virtual(main)


def test_fast_primary_sends_no_hedge() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend([0.002])
        call = Hedge(delay_ns=10 * MS)(backend.call)
        assert await call() == "attempt0"
        assert backend.started == 1

    run_virtual(main)


def test_first_success_wins_even_if_the_primary_answers_first() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend([0.03, 0.05])
        call = Hedge(delay_ns=10 * MS)(backend.call)
        assert await call() == "attempt0"
        await asyncio.sleep(0)
        assert backend.cancelled == [1]

    run_virtual(main)


def test_failure_hedges_at_once_and_a_later_success_wins() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend([0.001, 0.002], {0: OSError("boom")})
        call = Hedge(delay_ns=100 * MS)(backend.call)
        t0 = loop.clock_ns()
        assert await call() == "attempt1"
        assert loop.clock_ns() - t0 == 3 * MS

    run_virtual(main)


def test_hedges_are_bounded_and_last_failure_is_raised() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend(
            [0.5, 0.5, 0.5, 0.5],
            {0: OSError("a"), 1: OSError("b"), 2: OSError("c"), 3: OSError("d")},
        )
        hedge = Hedge(delay_ns=10 * MS, hedges_max=2)
        with pytest.raises(OSError):
            await hedge(backend.call)()
        assert backend.started == 3
        assert hedge.metrics()["failures"] == 1

    run_virtual(main)


def test_outer_cancel_cancels_every_attempt() -> None:
    async def main(loop: VirtualLoop) -> None:
        backend = Backend([1.0, 1.0, 1.0])
        call = Hedge(delay_ns=10 * MS, hedges_max=2)(backend.call)
        task = asyncio.create_task(call())
        await asyncio.sleep(0.05)
        assert backend.started == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert sorted(backend.cancelled) == [0, 1, 2]

    run_virtual(main)


def test_exhausted_error_budget_stops_hedging() -> None:
    async def main(loop: VirtualLoop) -> None:
        budget = ErrorBudget(0.99, 3_600 * 10**9, alerts=(), requests_min=10, clock=loop.clock_ns)
        budget.record(False, 50)
        budget.record(True, 50)
        assert not budget.allows_hedge()
        backend = Backend([0.2, 0.001])
        hedge = Hedge(delay_ns=10 * MS, error_budget=budget)
        assert await hedge(backend.call)() == "attempt0"
        assert backend.started == 1 and hedge.metrics()["hedges"] == 0

    run_virtual(main)


def test_latency_budget_drives_the_delay() -> None:
    async def main(loop: VirtualLoop) -> None:
        latency = LatencyBudget(samples_min=10, clock=loop.clock_ns)
        for i in range(100):
            latency.record((i + 1) * MS)  # p90 ~ 90 ms
        hedge = Hedge(delay_ns=500 * MS, latency_budget=latency, quantile=0.9)
        delay = hedge.current_delay_ns()
        assert abs(delay - 90 * MS) <= 0.01 * 90 * MS
        backend = Backend([1.0, 0.001])
        t0 = loop.clock_ns()
        assert await hedge(backend.call)() == "attempt1"
        assert loop.clock_ns() - t0 == delay + 1 * MS

    run_virtual(main)


def test_hedge_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="delay_ns"):
        Hedge()
    with pytest.raises(ConfigError, match="hedges_max"):
        Hedge(delay_ns=1, hedges_max=0)
    with pytest.raises(ConfigError, match="hedges_max"):
        Hedge(delay_ns=1, hedges_max=100)
    with pytest.raises(ConfigError, match="quantile"):
        Hedge(delay_ns=1, quantile=1.5)
    with pytest.raises(ConfigError, match="async"):
        Hedge(delay_ns=1)(lambda: None)


def test_fallback_sync_and_async() -> None:
    fb = Fallback(lambda exc: f"cached ({type(exc).__name__})", on=(OSError,))

    @fb
    def read(fail: bool) -> str:
        if fail:
            raise ConnectionError("down")
        return "fresh"

    assert read(False) == "fresh"
    assert read(True) == "cached (ConnectionError)"

    @fb
    def bad() -> str:
        raise ValueError("not handled")

    with pytest.raises(ValueError):
        bad()
    m = fb.metrics()
    assert (m["calls"], m["successes"], m["failures"], m["fallbacks"]) == (3, 1, 1, 1)

    async def async_handler(exc: BaseException) -> str:
        await asyncio.sleep(0.01)
        return "async fallback"

    afb = Fallback(async_handler)

    @afb
    async def fetch() -> str:
        raise RuntimeError("x")

    async def main(loop: VirtualLoop) -> None:
        assert await fetch() == "async fallback"
        # A cancellation is never turned into a fallback value.
        task = asyncio.create_task(afb(asyncio.sleep)(10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # Not even when asked to handle BaseException.
        greedy = Fallback(lambda exc: "swallowed", on=(BaseException,))
        task = asyncio.create_task(greedy(asyncio.sleep)(10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)
    with pytest.raises(ConfigError, match="sync handler"):
        afb(lambda: None)
    with pytest.raises(ConfigError):
        Fallback("value")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Fallback(lambda e: 1, on=())


def test_fake_clock_is_monotonic_helper() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError):
        clock.advance(-1)


def test_hedges_start_one_delay_apart_and_the_fastest_wins() -> None:
    async def main(loop: VirtualLoop) -> None:
        starts: list[int] = []
        delays = [1.0, 1.0, 0.004]

        async def call() -> str:
            i = len(starts)
            starts.append(loop.clock_ns())
            await asyncio.sleep(delays[i])
            return f"attempt{i}"

        t0 = loop.clock_ns()
        hedge = Hedge(delay_ns=10 * MS, hedges_max=2)
        assert await hedge(call)() == "attempt2"
        assert [s - t0 for s in starts] == [0, 10 * MS, 20 * MS]
        assert loop.clock_ns() - t0 == 24 * MS
        m = hedge.metrics()
        assert (m["hedges"], m["cancellations"]) == (2, 2)

    run_virtual(main)


def test_losing_failures_are_not_reported_as_unretrieved() -> None:
    reported: list[dict[str, Any]] = []

    async def main(loop: VirtualLoop) -> None:
        loop.set_exception_handler(lambda _loop, context: reported.append(context))

        async def call_with(attempts: list[int]) -> str:
            i = len(attempts)
            attempts.append(i)
            if i == 0:
                await asyncio.sleep(0.02)
                return "primary"
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise OSError("failed while being cancelled") from None
            return "hedge"

        attempts: list[int] = []
        hedge = Hedge(delay_ns=10 * MS)
        assert await hedge(call_with)(attempts) == "primary"
        await asyncio.sleep(0.01)

    run_virtual(main)
    gc.collect()
    assert not [c for c in reported if "never retrieved" in str(c.get("message", ""))]
