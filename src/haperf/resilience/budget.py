"""Budgets: LatencyBudget (windowed quantiles with threshold events) and ErrorBudget (an SLO
with multi-window, multi-burn-rate alerts that can gate retries and hedges).

Owns both budgets and their settings. The arithmetic is native: quantiles come from
haperf._native.sketch.LatencySketch (relative error <= relative_accuracy, bounded bins), error
counts from haperf._native.slo.ErrorWindow (O(1) sliding windows). This module reads the
injected clock. Invariants: a LatencyBudget answers from the current and the previous window
(so between window_ns and 2 * window_ns of history); thresholds fire an event on each
transition (breach, then recover), never twice in a row for the same state; an ErrorBudget's
alerts fire when BOTH windows of an alert burn faster than its rate, as in the Google SRE
workbook, chapter 5 ("Alerting on SLOs").
"""

import functools
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from haperf._native.callstats import CallStats
from haperf._native.sketch import BINS_MAX_LIMIT, LatencySketch
from haperf._native.slo import BUCKETS_MAX, ErrorWindow
from haperf.errors import ConfigError
from haperf.resilience._limits_common import (
    Clock,
    P,
    R,
    check_clock,
    check_fraction,
    check_int_range,
    check_name,
    is_async,
)

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
EVALUATE_EVERY_MAX = 1 << 24
THRESHOLDS_MAX = 64


# --------------------------------------------------------------------------------------------
# LatencyBudget


@dataclass(frozen=True, slots=True)
class LatencyThreshold:
    """Fire when the `quantile` of recent latencies exceeds `limit_ns`."""

    quantile: float
    limit_ns: int

    def __post_init__(self) -> None:
        if not isinstance(self.quantile, int | float) or not 0 < self.quantile <= 1:
            raise ConfigError(f"threshold quantile must be in (0, 1], got {self.quantile!r}")
        check_int_range("threshold limit_ns", self.limit_ns, 1, 1 << 62)


@dataclass(frozen=True, slots=True)
class LatencyEvent:
    """A threshold changed state: `kind` is "breach" or "recover"."""

    kind: Literal["breach", "recover"]
    threshold: LatencyThreshold
    value_ns: int
    at_ns: int


class LatencyBudget:
    """Streaming latency quantiles over a sliding window, with thresholds that fire events.

    record(latency_ns) is O(1); quantile_ns(q) answers within `relative_accuracy` from the
    current and previous windows. Every `evaluate_every` records (or on evaluate()) the
    thresholds are checked and `on_event` is called for each transition; cached quantiles
    (cached_quantile_ns, used by Hedge) refresh at the same time. As a decorator it times each
    call and records it.
    """

    def __init__(
        self,
        *,
        window_ns: int = MINUTE_NS,
        relative_accuracy: float = 0.01,
        bins_max: int = 2048,
        thresholds: Sequence[LatencyThreshold] = (),
        on_event: Callable[[LatencyEvent], None] | None = None,
        evaluate_every: int = 1024,
        samples_min: int = 100,
        name: str = "latency_budget",
        clock: Clock = time.monotonic_ns,
    ) -> None:
        check_int_range("window_ns", window_ns, 1, 1 << 62)
        check_fraction("relative_accuracy", relative_accuracy)
        check_int_range("bins_max", bins_max, 16, BINS_MAX_LIMIT)
        check_int_range("evaluate_every", evaluate_every, 1, EVALUATE_EVERY_MAX)
        check_int_range("samples_min", samples_min, 1, 1 << 40)
        thresholds = tuple(thresholds)
        if len(thresholds) > THRESHOLDS_MAX or not all(
            isinstance(t, LatencyThreshold) for t in thresholds
        ):
            raise ConfigError(
                f"thresholds must be at most {THRESHOLDS_MAX} LatencyThreshold(quantile, "
                f"limit_ns), got {thresholds!r}"
            )
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"on_event must be callable, got {on_event!r}")
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self.window_ns = window_ns
        self.thresholds = thresholds
        self._on_event = on_event
        self._evaluate_every = evaluate_every
        self.samples_min = samples_min
        self._current = LatencySketch(relative_accuracy, bins_max)
        self._previous = LatencySketch(relative_accuracy, bins_max)
        self._window_start = clock()
        self._until_evaluate = evaluate_every
        self._breached = [False] * len(thresholds)
        self._cache: dict[float, int | None] = {}
        self._events = 0
        self._stats = CallStats()

    def _rotate(self, now: int) -> None:
        elapsed = now - self._window_start
        if elapsed < self.window_ns:
            return
        if elapsed >= 2 * self.window_ns:
            self._previous.clear()
            self._current.clear()
            self._window_start = now
        else:
            self._previous, self._current = self._current, self._previous
            self._current.clear()
            self._window_start += self.window_ns
        self._cache.clear()

    def record(self, latency_ns: int) -> None:
        """Add one latency (ns, >= 0)."""
        now = self._clock()
        if now - self._window_start >= self.window_ns:
            self._rotate(now)
        self._current.record(latency_ns)
        self._stats.calls += 1
        self._until_evaluate -= 1
        if self._until_evaluate <= 0:
            self.evaluate()

    def snapshot(self) -> LatencySketch:
        """A merged copy of the current and previous windows."""
        self._rotate(self._clock())
        merged = self._current.copy()
        merged.merge(self._previous)
        return merged

    def count(self) -> int:
        self._rotate(self._clock())
        return int(self._current.count + self._previous.count)

    def quantile_ns(self, q: float) -> int | None:
        """The q-quantile of recent latencies in ns (None while fewer than samples_min)."""
        check_fraction_closed(q)
        merged = self.snapshot()
        if merged.count < self.samples_min:
            return None
        value = merged.quantile(q)
        return None if value is None else round(value)

    def cached_quantile_ns(self, q: float) -> int | None:
        """quantile_ns(q) as of the last evaluation (cheap; what hedging reads per call)."""
        try:
            return self._cache[q]
        except KeyError:
            value = self._cache[q] = self.quantile_ns(q)
            return value

    def is_slow(self, latency_ns: int, q: float, default_ns: int) -> bool:
        """True when latency_ns exceeds the q-quantile (default_ns until enough samples):
        the slow-call test a circuit breaker can use."""
        limit = self.cached_quantile_ns(q)
        return latency_ns > (default_ns if limit is None else limit)

    def evaluate(self) -> list[LatencyEvent]:
        """Check every threshold now; fire and return the transitions."""
        self._until_evaluate = self._evaluate_every
        self._cache.clear()
        now = self._clock()
        events: list[LatencyEvent] = []
        for i, threshold in enumerate(self.thresholds):
            value = self.cached_quantile_ns(threshold.quantile)
            if value is None:
                continue
            breached = value > threshold.limit_ns
            if breached != self._breached[i]:
                self._breached[i] = breached
                events.append(
                    LatencyEvent("breach" if breached else "recover", threshold, value, now)
                )
        self._events += len(events)
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return events

    def breached(self) -> list[LatencyThreshold]:
        """Thresholds in breach as of the last evaluation."""
        return [t for t, b in zip(self.thresholds, self._breached, strict=True) if b]

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        clock = self._clock
        record = self.record
        if is_async(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = clock()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    record(clock() - start)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                record(clock() - start)

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {
            "calls": self._stats.calls,
            "window_count": self.count(),
            "events": self._events,
            "breached": sum(self._breached),
            "collapsed": self._current.collapsed + self._previous.collapsed,
        }
        for q in (0.5, 0.9, 0.99, 0.999):
            value = self.cached_quantile_ns(q)
            if value is not None:
                out[f"p{str(q * 100).rstrip('0').rstrip('.').replace('.', '')}_ns"] = value
        return out


def check_fraction_closed(q: float) -> None:
    if not isinstance(q, int | float) or not 0 <= q <= 1:
        raise ConfigError(f"quantile must be in [0, 1], got {q!r}")


# --------------------------------------------------------------------------------------------
# ErrorBudget


@dataclass(frozen=True, slots=True)
class BurnRateAlert:
    """Alert when the error rate over BOTH windows exceeds burn_rate x the SLO's allowed rate."""

    name: str
    long_window_ns: int
    short_window_ns: int
    burn_rate: float
    severity: Literal["page", "ticket"]

    def __post_init__(self) -> None:
        check_int_range("long_window_ns", self.long_window_ns, 1, 1 << 62)
        check_int_range("short_window_ns", self.short_window_ns, 1, 1 << 62)
        if self.short_window_ns >= self.long_window_ns:
            raise ConfigError(
                f"alert {self.name!r}: short_window_ns must be below long_window_ns, got "
                f"{self.short_window_ns} >= {self.long_window_ns}"
            )
        if not isinstance(self.burn_rate, int | float) or not self.burn_rate > 0:
            raise ConfigError(f"alert {self.name!r}: burn_rate must be > 0, got {self.burn_rate}")
        if self.severity not in ("page", "ticket"):
            raise ConfigError(f"severity must be 'page' or 'ticket', got {self.severity!r}")


# The Google SRE workbook, "Alerting on SLOs", recommended multiwindow, multi-burn-rate alerts for
# a 30-day SLO: page at 14.4x over 1 h (short window 5 min; 2% of the budget spent), page at 6x
# over 6 h (30 min; 5%), ticket at 1x over 3 days (6 h; 10%).
SRE_WORKBOOK_ALERTS: tuple[BurnRateAlert, ...] = (
    BurnRateAlert("page_fast_burn", HOUR_NS, 5 * MINUTE_NS, 14.4, "page"),
    BurnRateAlert("page_slow_burn", 6 * HOUR_NS, 30 * MINUTE_NS, 6.0, "page"),
    BurnRateAlert("ticket", 3 * DAY_NS, 6 * HOUR_NS, 1.0, "ticket"),
)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert started ("firing") or stopped ("resolved")."""

    kind: Literal["firing", "resolved"]
    alert: BurnRateAlert
    long_burn_rate: float
    short_burn_rate: float
    at_ns: int


class ErrorBudget:
    """An availability SLO: `target` (e.g. 0.999) of calls succeed over `window_ns` (30 days).

    record(ok) counts one call. burn_rate(window_ns) is the error rate over that window divided
    by the allowed rate (1 - target): 1.0 spends the budget exactly over the SLO window.
    remaining() is the fraction of the window's budget left (negative when overspent).
    allows_retry() / allows_hedge() are False once the budget is exhausted, so extra load is not
    sent to a service that is already failing its SLO. Until `requests_min` calls are in a
    window it neither alerts nor counts as exhausted (one failure in three calls is not a
    burn rate). Alerts are evaluated every `evaluate_every_ns` of clock time (on record) or on
    evaluate(); on_alert gets each AlertEvent.
    """

    def __init__(
        self,
        target: float = 0.999,
        window_ns: int = 30 * DAY_NS,
        *,
        alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS,
        bucket_ns: int | None = None,
        requests_min: int = 100,
        on_alert: Callable[[AlertEvent], None] | None = None,
        evaluate_every_ns: int = 10 * NS_PER_S,
        errors: tuple[type[BaseException], ...] = (Exception,),
        name: str = "error_budget",
        clock: Clock = time.monotonic_ns,
    ) -> None:
        check_fraction("target", target)
        check_int_range("window_ns", window_ns, 2, 1 << 62)
        alerts = tuple(alerts)
        if not all(isinstance(a, BurnRateAlert) for a in alerts):
            raise ConfigError(f"alerts must be BurnRateAlert values, got {alerts!r}")
        for alert in alerts:
            if alert.long_window_ns > window_ns:
                raise ConfigError(
                    f"alert {alert.name!r}: long window {alert.long_window_ns} ns exceeds the "
                    f"SLO window {window_ns} ns"
                )
        check_int_range("requests_min", requests_min, 1, 1 << 40)
        check_int_range("evaluate_every_ns", evaluate_every_ns, 1, 1 << 62)
        if on_alert is not None and not callable(on_alert):
            raise ConfigError(f"on_alert must be callable, got {on_alert!r}")
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self.target = float(target)
        self.window_ns = window_ns
        self.alerts = alerts
        self.requests_min = requests_min
        self._on_alert = on_alert
        self._errors = errors
        self._evaluate_every_ns = evaluate_every_ns
        # Budget counts: ~1000 buckets over the SLO window.
        budget_bucket = max(1, window_ns // 1000)
        self._budget = ErrorWindow(budget_bucket, -(-window_ns // budget_bucket) + 1)
        # Alert counts: buckets of a tenth of the shortest alert window, up to the longest.
        if alerts:
            shortest = min(a.short_window_ns for a in alerts)
            longest = max(a.long_window_ns for a in alerts)
            step = bucket_ns if bucket_ns is not None else max(1, shortest // 10)
            check_int_range("bucket_ns", step, 1, shortest)
            buckets = -(-longest // step) + 1
            if buckets > BUCKETS_MAX:
                raise ConfigError(
                    f"alert windows need {buckets} buckets of {step} ns, above {BUCKETS_MAX}; "
                    "raise bucket_ns"
                )
            self._alert_window: ErrorWindow | None = ErrorWindow(step, buckets)
        else:
            self._alert_window = None
        self._firing = [False] * len(alerts)
        self._next_evaluate = clock() + evaluate_every_ns
        self._alert_events = 0

    def record(self, ok: bool = True, n: int = 1) -> None:
        """Count n calls, failed unless ok."""
        now = self._clock()
        self._budget.record(now, ok, n)
        if self._alert_window is not None:
            self._alert_window.record(now, ok, n)
            if now >= self._next_evaluate:
                self._next_evaluate = now + self._evaluate_every_ns
                self.evaluate()

    def record_success(self, n: int = 1) -> None:
        self.record(True, n)

    def record_failure(self, n: int = 1) -> None:
        self.record(False, n)

    def _burn(self, window: ErrorWindow, now: int, window_ns: int) -> tuple[float, int]:
        total, bad = window.counts(now, window_ns)
        if total == 0:
            return 0.0, 0
        return (bad / total) / (1.0 - self.target), int(total)

    def burn_rate(self, window_ns: int) -> float:
        """Error rate over the last window_ns / allowed error rate (0.0 with no traffic)."""
        if not isinstance(window_ns, int) or not 0 < window_ns <= self.window_ns:
            raise ConfigError(
                f"burn_rate window_ns must be an int in 1..{self.window_ns} (the SLO window), "
                f"got {window_ns!r}"
            )
        now = self._clock()
        window = self._alert_window
        if window is None or window_ns > window.horizon_ns:
            window = self._budget
        return self._burn(window, now, window_ns)[0]

    def remaining(self) -> float:
        """Fraction of the SLO window's error budget left: 1.0 untouched, <= 0 exhausted."""
        total, bad = self._budget.counts(self._clock(), self.window_ns)
        if total == 0:
            return 1.0
        allowed = (1.0 - self.target) * total
        return 1.0 - bad / allowed

    def exhausted(self) -> bool:
        total, _ = self._budget.counts(self._clock(), self.window_ns)
        return total >= self.requests_min and self.remaining() <= 0.0

    def allows_retry(self) -> bool:
        """False once the budget is exhausted: retries would only add load to a failing SLO."""
        return not self.exhausted()

    def allows_hedge(self) -> bool:
        """False once the budget is exhausted (same rule as allows_retry)."""
        return not self.exhausted()

    def evaluate(self) -> list[AlertEvent]:
        """Check every alert now; fire on_alert for each transition and return them."""
        window = self._alert_window
        if window is None:
            return []
        now = self._clock()
        events: list[AlertEvent] = []
        for i, alert in enumerate(self.alerts):
            long_rate, long_total = self._burn(window, now, alert.long_window_ns)
            short_rate, _ = self._burn(window, now, alert.short_window_ns)
            firing = (
                long_total >= self.requests_min
                and long_rate > alert.burn_rate
                and short_rate > alert.burn_rate
            )
            if firing != self._firing[i]:
                self._firing[i] = firing
                kind: Literal["firing", "resolved"] = "firing" if firing else "resolved"
                events.append(AlertEvent(kind, alert, long_rate, short_rate, now))
        self._alert_events += len(events)
        if self._on_alert is not None:
            for event in events:
                self._on_alert(event)
        return events

    def firing(self) -> list[BurnRateAlert]:
        """Alerts firing as of the last evaluation."""
        return [a for a, f in zip(self.alerts, self._firing, strict=True) if f]

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        errors = self._errors
        record = self.record
        if is_async(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    result = await fn(*args, **kwargs)
                except errors:
                    record(False)
                    raise
                record(True)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                result = fn(*args, **kwargs)
            except errors:
                record(False)
                raise
            record(True)
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        total, bad = self._budget.counts(self._clock(), self.window_ns)
        return {
            "calls": int(total),
            "successes": int(total - bad),
            "failures": int(bad),
            "remaining": self.remaining(),
            "exhausted": int(self.exhausted()),
            "alerts_firing": sum(self._firing),
            "alert_events": self._alert_events,
        }
