"""Adaptive concurrency limiter: the limit follows observed latency and errors (AIMD, gradient).

Owns AIMD, Gradient (their settings) and AdaptiveLimiter. The algorithms, the slot counter and
the admit/release pair are native (haperf._native.concurrency.AdaptiveCore, given the injected
clock); this module builds them, wraps calls and classifies their outcomes.

Invariants: inflight <= limit at admission (a lowered limit lets holders above it finish,
and admits nobody until inflight drops below it); every admitted call is released exactly
once, as a sample with its own latency; limit_min <= limit <= limit_max at all times. Calls
beyond the limit are rejected at once (ConcurrencyLimitError): an adaptive limit sheds load,
it does not queue it (put a Bulkhead in front to queue).
"""

import functools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, overload

from haperf._native.concurrency import AdaptiveCore, AimdLimit, GradientLimit, Slots
from haperf.errors import ConcurrencyLimitError, ConfigError
from haperf.resilience._limits_common import (
    Clock,
    P,
    R,
    check_clock,
    check_int_range,
    check_name,
    is_async,
)

LIMIT_MAX_LIMIT = 1 << 20


def _check_limits(initial: int, limit_min: int, limit_max: int) -> None:
    check_int_range("limit_min", limit_min, 1, LIMIT_MAX_LIMIT)
    check_int_range("limit_max", limit_max, 1, LIMIT_MAX_LIMIT)
    check_int_range("initial", initial, 1, LIMIT_MAX_LIMIT)
    if not limit_min <= initial <= limit_max:
        raise ConfigError(
            f"need limit_min <= initial <= limit_max, got {limit_min}, {initial}, {limit_max}"
        )


@dataclass(frozen=True, slots=True)
class AIMD:
    """Additive increase (+increase per good sample while the limit is in use), multiplicative
    decrease (x backoff_ratio per error or per call slower than timeout_ns)."""

    initial: int = 20
    limit_min: int = 1
    limit_max: int = 1000
    backoff_ratio: float = 0.9
    increase: float = 1.0
    timeout_ns: int = 5_000_000_000

    def __post_init__(self) -> None:
        _check_limits(self.initial, self.limit_min, self.limit_max)
        if not 0 < self.backoff_ratio < 1:
            raise ConfigError(f"backoff_ratio must be in (0, 1), got {self.backoff_ratio!r}")
        if not self.increase > 0:
            raise ConfigError(f"increase must be > 0, got {self.increase!r}")
        check_int_range("timeout_ns", self.timeout_ns, 1, 1 << 62)

    def build(self) -> AimdLimit:
        return AimdLimit(
            float(self.initial),
            self.limit_min,
            self.limit_max,
            float(self.backoff_ratio),
            float(self.increase),
            self.timeout_ns,
        )


@dataclass(frozen=True, slots=True)
class Gradient:
    """Gradient of long-term to short-term latency (after Netflix's Gradient2): the limit shrinks
    when latency rises above rtt_tolerance x its long-term average, and grows by sqrt(limit)
    per sample otherwise, smoothed by `smoothing`."""

    initial: int = 20
    limit_min: int = 1
    limit_max: int = 1000
    smoothing: float = 0.2
    rtt_tolerance: float = 1.5
    long_window: int = 600

    def __post_init__(self) -> None:
        _check_limits(self.initial, self.limit_min, self.limit_max)
        if not 0 < self.smoothing <= 1:
            raise ConfigError(f"smoothing must be in (0, 1], got {self.smoothing!r}")
        if not self.rtt_tolerance >= 1:
            raise ConfigError(f"rtt_tolerance must be >= 1, got {self.rtt_tolerance!r}")
        check_int_range("long_window", self.long_window, 1, 1 << 24)

    def build(self) -> GradientLimit:
        return GradientLimit(
            float(self.initial),
            self.limit_min,
            self.limit_max,
            float(self.smoothing),
            float(self.rtt_tolerance),
            self.long_window,
        )


class AdaptiveLimiter:
    """Admits up to `limit` concurrent calls; the limit adapts to each call's latency and outcome.

    Use as a decorator (sync or async), or by hand: `start = limiter.try_acquire()` (None when
    at the limit), then `limiter.release(start, dropped)` (both are the native methods).
    Exceptions of the types in `errors` count as drops (a congestion signal); others (e.g. a
    caller's ValueError) pass through as successes of the service.
    """

    def __init__(
        self,
        algorithm: AIMD | Gradient | None = None,
        *,
        name: str = "adaptive_limiter",
        clock: Clock = time.monotonic_ns,
        errors: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if algorithm is None:
            algorithm = AIMD()
        if not isinstance(algorithm, AIMD | Gradient):
            raise ConfigError(f"algorithm must be AIMD(...) or Gradient(...), got {algorithm!r}")
        if not isinstance(errors, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in errors
        ):
            raise ConfigError(f"errors must be a tuple of exception types, got {errors!r}")
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self.algorithm = algorithm
        self._limit = algorithm.build()
        self._slots = Slots(algorithm.initial, 0)
        self._core = AdaptiveCore(self._slots, self._limit, clock)
        self._errors = errors
        # The native methods themselves: no Python frame per call.
        self.try_acquire: Callable[[], int | None] = self._core.try_acquire
        self.release: Callable[..., int] = self._core.release

    @property
    def limit(self) -> int:
        return int(self._slots.limit)

    @property
    def inflight(self) -> int:
        return int(self._slots.inflight)

    def on_sample(self, rtt_ns: int, *, dropped: bool = False) -> int:
        """Release one slot with a measured latency (release() does this with the clock)."""
        return self._core.on_sample(rtt_ns, dropped)

    def _reject(self) -> NoReturn:
        raise ConcurrencyLimitError(
            f"adaptive limiter {self.name!r} is at its limit of {self._slots.limit} concurrent "
            "calls; shed this call or retry after backoff",
            policy=self.name,
        )

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        errors = self._errors
        try_acquire = self.try_acquire
        release = self.release

        if is_async(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = try_acquire()
                if start is None:
                    self._reject()
                try:
                    result = await fn(*args, **kwargs)
                except errors:
                    release(start, True)
                    raise
                except BaseException:
                    release(start)
                    raise
                release(start)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = try_acquire()
            if start is None:
                self._reject()
            try:
                result = fn(*args, **kwargs)
            except errors:
                release(start, True)
                raise
            except BaseException:
                release(start)
                raise
            release(start)
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        s = self._slots
        return {
            "calls": s.admitted + s.rejected,
            "successes": s.successes,
            "failures": s.failures,
            "rejections": s.rejected,
            "inflight": s.inflight,
            "inflight_peak": s.inflight_peak,
            "limit": s.limit,
            "samples": self._limit.samples,
        }
