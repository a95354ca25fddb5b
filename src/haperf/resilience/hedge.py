"""Hedging: after a delay with no answer, send another attempt; the first success wins.

Owns Hedge. Invariants: at most 1 + hedges_max attempts per call; an attempt that fails before
the delay triggers the next hedge at once (there is nothing left to wait for); the first attempt
to succeed decides the call and every other attempt still running is cancelled (losers never
outlive the call, whether it succeeds, fails or is cancelled from outside); when every attempt
fails the last failure is raised. With an ErrorBudget, no hedge is sent while the budget is
exhausted; with a LatencyBudget, the delay is its `quantile` of observed latency (delay_ns until
it has enough samples) and each winning attempt's own latency is recorded into it.
"""

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from haperf._native.callstats import CallStats
from haperf.errors import ConfigError
from haperf.resilience._limits_common import (
    Clock,
    P,
    R,
    check_clock,
    check_int_range,
    check_name,
    require_async,
)
from haperf.resilience.budget import ErrorBudget, LatencyBudget
from haperf.resilience.timeout import _Wheel, _wheel

HEDGES_MAX_LIMIT = 8


def _discard_outcome(task: "asyncio.Task[Any]") -> None:
    if not task.cancelled():
        task.exception()


class _DelayTimer:
    """A hedge delay in the loop's deadline queue (no TimerHandle per call): at the deadline
    the queue calls cancel(), which wakes the waiting call and marks the hedge as due."""

    __slots__ = ("fired", "waiter")

    def __init__(self, waiter: "asyncio.Future[None]") -> None:
        self.waiter = waiter
        self.fired = False

    def cancel(self) -> None:
        self.fired = True
        if not self.waiter.done():
            self.waiter.set_result(None)


async def _wait_any(
    loop: asyncio.AbstractEventLoop,
    wheel: _Wheel,
    pending: "list[asyncio.Task[Any]]",
    delay_ns: int,
) -> bool:
    """Wait until one of `pending` finishes or delay_ns passes (never when delay_ns < 0).

    True when the delay passed first and nothing finished: a hedge is due.
    """
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_task: "asyncio.Task[Any]") -> None:
        if not waiter.done():
            waiter.set_result(None)

    for task in pending:
        task.add_done_callback(wake)
    timer = None
    handle = -1
    if delay_ns >= 0:
        timer = _DelayTimer(waiter)
        handle = wheel.queue.add_after(loop.time(), delay_ns, timer)
        if handle < 0:
            handle = ~handle
            wheel.arm(loop, wheel.queue.deadline_of(handle))
    try:
        await waiter
    finally:
        for task in pending:
            task.remove_done_callback(wake)
        if handle >= 0:
            wheel.queue.remove(handle)
    return timer is not None and timer.fired and not any(t.done() for t in pending)


class Hedge:
    """Race up to `hedges_max` extra attempts of an async call against a slow first one."""

    def __init__(
        self,
        *,
        delay_ns: int | None = None,
        latency_budget: LatencyBudget | None = None,
        quantile: float = 0.95,
        hedges_max: int = 1,
        error_budget: ErrorBudget | None = None,
        name: str = "hedge",
        clock: Clock = time.monotonic_ns,
    ) -> None:
        if delay_ns is None:
            raise ConfigError(
                "Hedge needs delay_ns (the fixed delay, or the fallback delay until the "
                "latency budget has enough samples)"
            )
        check_int_range("delay_ns", delay_ns, 0, 1 << 62)
        check_int_range("hedges_max", hedges_max, 1, HEDGES_MAX_LIMIT)
        if not isinstance(quantile, int | float) or not 0 < quantile < 1:
            raise ConfigError(f"quantile must be in (0, 1), got {quantile!r}")
        if latency_budget is not None and not isinstance(latency_budget, LatencyBudget):
            raise ConfigError(f"latency_budget must be a LatencyBudget, got {latency_budget!r}")
        if error_budget is not None and not isinstance(error_budget, ErrorBudget):
            raise ConfigError(f"error_budget must be an ErrorBudget, got {error_budget!r}")
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self.delay_ns = delay_ns
        self.quantile = float(quantile)
        self.hedges_max = hedges_max
        self._latency = latency_budget
        self._errors = error_budget
        self._stats = CallStats()

    def current_delay_ns(self) -> int:
        """The delay the next call waits before hedging."""
        if self._latency is not None:
            value = self._latency.cached_quantile_ns(self.quantile)
            if value is not None:
                return value
        return self.delay_ns

    def _may_hedge(self) -> bool:
        return self._errors is None or self._errors.allows_hedge()

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        require_async(fn, f"Hedge {self.name!r}")
        stats = self._stats
        clock = self._clock
        hedges_max = self.hedges_max
        latency = self._latency
        get_loop = asyncio.get_running_loop

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            stats.calls += 1
            loop = get_loop()
            wheel = _wheel(loop)
            delay_ns = self.current_delay_ns()
            attempts: list[asyncio.Task[R]] = []
            starts: list[int] = []
            hedges = 0
            hedge_due = False
            last_error: BaseException | None = None
            try:
                attempts.append(loop.create_task(fn(*args, **kwargs)))
                starts.append(clock())
                while True:
                    # Examine finished attempts; the first success decides the call.
                    pending: list[asyncio.Task[R]] = []
                    for i, task in enumerate(attempts):
                        if not task.done():
                            pending.append(task)
                        elif task.cancelled():
                            last_error = asyncio.CancelledError()
                        elif (error := task.exception()) is not None:
                            last_error = error
                        else:
                            if latency is not None:
                                latency.record(clock() - starts[i])
                            stats.successes += 1
                            return task.result()
                    can_hedge = hedges < hedges_max and self._may_hedge()
                    if can_hedge and (hedge_due or not pending):
                        hedges += 1
                        stats.hedges += 1
                        attempts.append(loop.create_task(fn(*args, **kwargs)))
                        starts.append(clock())
                        hedge_due = False
                        continue
                    if not pending:
                        stats.failures += 1
                        assert last_error is not None
                        raise last_error
                    hedge_due = await _wait_any(loop, wheel, pending, delay_ns if can_hedge else -1)
            finally:
                for task in attempts:
                    if not task.done():
                        task.cancel()
                        stats.cancellations += 1
                        # A loser that fails instead of cancelling must not log "exception
                        # never retrieved": its outcome no longer matters.
                        task.add_done_callback(_discard_outcome)
                    else:
                        _discard_outcome(task)

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        stats = self._stats
        return {
            "calls": stats.calls,
            "successes": stats.successes,
            "failures": stats.failures,
            "hedges": stats.hedges,
            "cancellations": stats.cancellations,
            "delay_ns": self.current_delay_ns(),
        }
