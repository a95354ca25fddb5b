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

HEDGES_MAX_LIMIT = 8


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

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            stats.calls += 1
            loop = asyncio.get_running_loop()
            started: dict[asyncio.Task[R], int] = {}

            def launch() -> None:
                started[loop.create_task(fn(*args, **kwargs))] = clock()

            launch()
            pending: set[asyncio.Task[R]] = set(started)
            hedges = 0
            last_error: BaseException | None = None
            delay_s = self.current_delay_ns() / 1e9
            try:
                while True:
                    can_hedge = hedges < hedges_max
                    if not pending:
                        if can_hedge and self._may_hedge():
                            hedges += 1
                            stats.hedges += 1
                            launch()
                            pending = {t for t in started if not t.done()}
                            continue
                        break
                    done, pending = await asyncio.wait(
                        pending,
                        timeout=delay_s if can_hedge else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if not done:
                        if self._may_hedge():
                            hedges += 1
                            stats.hedges += 1
                            launch()
                            pending = {t for t in started if not t.done()}
                        else:
                            hedges = hedges_max
                        continue
                    for task in done:
                        if task.cancelled():
                            last_error = asyncio.CancelledError()
                            continue
                        error = task.exception()
                        if error is None:
                            if self._latency is not None:
                                self._latency.record(clock() - started[task])
                            stats.successes += 1
                            return task.result()
                        last_error = error
                stats.failures += 1
                assert last_error is not None
                raise last_error
            finally:
                for task in started:
                    if not task.done():
                        task.cancel()
                        stats.cancellations += 1

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
