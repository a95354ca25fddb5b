"""Rate limiters: a token bucket with fair async waiting, and a per-key bucket table.

Owns RateLimiter and KeyedRateLimiter. The arithmetic is native (haperf._native.ratelimit); this
module reads the injected clock and runs the FIFO wait queue on the event loop.

Invariants:
- FIFO: once a request waits, later requests (waiting or non-blocking) are served after it, so a
  large request is never starved by a stream of small ones. The queue holds at most
  `waiters_max` requests; beyond that acquire() is rejected.
- A waiter's tokens are taken when it is granted, in queue order. A waiter cancelled before its
  grant gives back nothing (it took nothing); one cancelled after its grant returns exactly
  the tokens it took.
- One loop timer at a time, armed for the head waiter only.
"""

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, overload

from haperf._native.callstats import CallStats
from haperf._native.ratelimit import KeyedBuckets, TokenBucket
from haperf.errors import ConfigError, RateLimitedError
from haperf.resilience._limits_common import (
    Clock,
    P,
    R,
    check_clock,
    check_int_range,
    check_name,
    check_positive,
    is_async,
)

WAITERS_MAX_LIMIT = 1 << 20
KEYS_MAX_LIMIT = 1 << 24

_QUEUED, _GRANTED, _GONE = 0, 1, 2


class _Waiter:
    __slots__ = ("fut", "n", "state")

    def __init__(self, n: float, fut: "asyncio.Future[None]") -> None:
        self.n = n
        self.fut = fut
        self.state = _QUEUED


class RateLimiter:
    """Token bucket: `rate_per_s` tokens per second, at most `burst` saved up (default: rate).

    `try_acquire(n=1.0) -> bool` takes n tokens now or refuses (never waits; it is the native
    method itself, no Python frame in between). `await acquire(n=1.0)` waits its turn in FIFO
    order (also native: when the tokens are there it returns an already-done awaitable).
    `wait_ns_max` bounds how long a request may expect to wait (RateLimitedError at once if the
    estimate is longer). As a decorator, sync calls use try_acquire (RateLimitedError when
    refused) and async calls use acquire.
    """

    try_acquire: Callable[..., bool]
    try_acquire_at: Callable[..., bool]
    acquire: Callable[..., Awaitable[None]]

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        name: str = "rate_limiter",
        clock: Clock = time.monotonic_ns,
        waiters_max: int = 1024,
        wait_ns_max: int | None = None,
    ) -> None:
        check_positive("rate_per_s", rate_per_s)
        if burst is None:
            burst = max(1.0, float(rate_per_s))
        check_positive("burst", burst)
        if burst < 1:
            raise ConfigError(f"burst must be >= 1 token (one call), got {burst!r}")
        check_int_range("waiters_max", waiters_max, 0, WAITERS_MAX_LIMIT)
        if wait_ns_max is not None:
            check_int_range("wait_ns_max", wait_ns_max, 0, 1 << 62)
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self._bucket = TokenBucket(float(rate_per_s), float(burst), clock(), clock)
        self.try_acquire = self._bucket.try_acquire_now
        # try_acquire_at(now_ns, n=1.0): for callers that already hold a timestamp from the same
        # clock (a request's start time): the clock read is most of try_acquire's cost.
        self.try_acquire_at = self._bucket.try_acquire
        # acquire(n=1.0) -> awaitable: native; a done awaitable when tokens are taken at once
        # (no coroutine is created), else the coroutine of _acquire_slow(n).
        self._bucket.set_slow_path(self._acquire_slow)
        self.acquire = self._bucket.acquire
        self._waiters: deque[_Waiter] = deque()
        self._waiters_max = waiters_max
        self._wait_ns_max = wait_ns_max
        self._queued_tokens = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stats = CallStats()

    @property
    def rate_per_s(self) -> float:
        return self._bucket.rate_per_s

    @property
    def burst(self) -> float:
        return self._bucket.burst

    def tokens(self) -> float:
        """Tokens in the bucket now (waiters are granted from these in order)."""
        return self._bucket.tokens(self._clock())

    def _check_n(self, n: float) -> None:
        if not 0 < n <= self._bucket.burst:
            raise ConfigError(
                f"a request must be for 0 < n <= burst={self._bucket.burst:g} tokens, got {n!r}; "
                "a request above burst could never be served"
            )

    async def _acquire_slow(self, n: float) -> None:
        """Wait until n tokens are granted to this caller, in FIFO order."""
        bucket = self._bucket
        if bucket.try_take_now(n):
            return
        self._check_n(n)
        if len(self._waiters) >= self._waiters_max:
            self._reject(n, "its wait queue is full")
        if self._wait_ns_max is not None:
            expected = bucket.wait_ns(self._clock(), self._queued_tokens + n)
            if expected > self._wait_ns_max:
                self._reject(n, f"the expected wait {expected} ns exceeds wait_ns_max")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(n, loop.create_future())
        self._waiters.append(waiter)
        bucket.queued += 1
        self._queued_tokens += n
        if len(self._waiters) == 1:
            self._pump(loop)
        try:
            await waiter.fut
        except asyncio.CancelledError:
            self._stats.cancellations += 1
            if waiter.state == _GRANTED:
                bucket.put_back(self._clock(), n)
            elif waiter.state == _QUEUED:
                self._waiters.remove(waiter)
                self._dequeued(waiter)
            self._pump(loop)
            raise

    def _reject(self, n: float, why: str, *, counted: bool = False) -> None:
        if not counted:
            self._stats.rejections += 1
        wait = self._bucket.wait_ns(self._clock(), self._queued_tokens + n)
        raise RateLimitedError(
            f"rate limiter {self.name!r} refused {n:g} token(s): {why}; retry later or raise "
            "rate_per_s/burst",
            policy=self.name,
            retry_after_ns=int(wait),
        )

    def _dequeued(self, waiter: _Waiter) -> None:
        waiter.state = _GONE if waiter.state == _QUEUED else waiter.state
        self._bucket.queued -= 1
        self._queued_tokens -= waiter.n

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Grant the queue head(s) while tokens last; arm one timer for the next head."""
        bucket = self._bucket
        waiters = self._waiters
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        while waiters:
            head = waiters[0]
            if head.fut.done():
                # Cancelled while queued; its task has not run its handler yet.
                waiters.popleft()
                self._dequeued(head)
                continue
            if bucket.take_queued(now, head.n):
                waiters.popleft()
                self._dequeued(head)
                head.state = _GRANTED
                head.fut.set_result(None)
                continue
            wait_ns = bucket.wait_ns(now, head.n)
            self._timer = loop.call_later(wait_ns / 1e9, self._pump, loop)
            return

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        stats = self._stats
        if is_async(fn):
            acquire = self.acquire

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                stats.calls += 1
                await acquire(1.0)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    stats.failures += 1
                    raise
                stats.successes += 1
                return result

            return async_wrapper
        try_acquire = self._bucket.try_acquire_now

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            stats.calls += 1
            if not try_acquire(1.0):
                self._reject(1.0, "no token available", counted=True)
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                stats.failures += 1
                raise
            stats.successes += 1
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        b = self._bucket
        stats = self._stats
        return {
            "calls": stats.calls,
            "successes": stats.successes,
            "failures": stats.failures,
            "rejections": stats.rejections + b.rejected,
            "cancellations": stats.cancellations,
            "granted": b.granted,
            "refunded": b.refunded,
            "waiters": len(self._waiters),
            "tokens": b.tokens(self._clock()),
        }


class KeyedRateLimiter:
    """One token bucket per key (client, tenant, route), non-blocking only.

    At most `keys_max` buckets are held, least recently used evicted first; a bucket that has
    refilled to full is evicted without loss, one that has not is counted as a lossy eviction
    (metrics `evictions_lossy`: size keys_max above the keys active within burst / rate seconds).
    `try_acquire(key, n=1.0) -> bool` is the native method. As a decorator it needs `key`, a
    function of the call's arguments giving the key.
    """

    try_acquire: Callable[..., bool]

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        keys_max: int = 10_000,
        key: Callable[..., Hashable] | None = None,
        name: str = "keyed_rate_limiter",
        clock: Clock = time.monotonic_ns,
    ) -> None:
        check_positive("rate_per_s", rate_per_s)
        if burst is None:
            burst = max(1.0, float(rate_per_s))
        check_positive("burst", burst)
        if burst < 1:
            raise ConfigError(f"burst must be >= 1 token (one call), got {burst!r}")
        check_int_range("keys_max", keys_max, 1, KEYS_MAX_LIMIT)
        if key is not None and not callable(key):
            raise ConfigError(f"key must be a callable of the call's arguments, got {key!r}")
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self._key = key
        self._table = KeyedBuckets(float(rate_per_s), float(burst), keys_max, clock)
        self.try_acquire = self._table.try_acquire
        self._stats = CallStats()

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._table

    def tokens(self, key: Hashable) -> float:
        return self._table.tokens(key)

    def evict_idle(self) -> int:
        """Drop every bucket that has refilled to full (no behaviour change); return how many."""
        return self._table.evict_idle()

    def _refuse(self, key: Hashable) -> None:
        self._stats.rejections += 1
        raise RateLimitedError(
            f"rate limiter {self.name!r} has no token for key {key!r}; retry later",
            policy=self.name,
            retry_after_ns=int(1e9 / self._table.rate_per_s),
        )

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        key_of = self._key
        if key_of is None:
            raise ConfigError(
                f"KeyedRateLimiter {self.name!r} needs key=<function of the call's arguments> "
                "to decorate a function"
            )
        stats = self._stats
        try_acquire = self._table.try_acquire

        if is_async(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                stats.calls += 1
                k = key_of(*args, **kwargs)
                if not try_acquire(k, 1.0):
                    self._refuse(k)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    stats.failures += 1
                    raise
                stats.successes += 1
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            stats.calls += 1
            k = key_of(*args, **kwargs)
            if not try_acquire(k, 1.0):
                self._refuse(k)
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                stats.failures += 1
                raise
            stats.successes += 1
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        t = self._table
        stats = self._stats
        return {
            "calls": stats.calls,
            "successes": stats.successes,
            "failures": stats.failures,
            "rejections": t.rejected,
            "granted": t.granted,
            "keys": len(t),
            "keys_max": t.keys_max,
            "evictions": t.evictions,
            "evictions_lossy": t.evictions_lossy,
        }
