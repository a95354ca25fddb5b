"""Retry and RetryBudget: the public retry policy, its backoff and the shared retry budget.

Owns configuration validation (ConfigError at construction), the delay of each retry (capped
exponential backoff with no, full, equal or decorrelated jitter, or a Retry-After hint), the
retry loop (the facade's slow path: the first attempt runs in haperf._native.retry), the total
deadline and metrics().

Invariants:
- at most `attempts_max` attempts per call (the named bound of the retry loop);
- every delay is in [0, delay_max_ns] unless a Retry-After hint asks for longer, and no retry
  starts when the wait would end past the total deadline;
- each call keeps its attempt count, previous delay and start time in its own frame: nothing
  per-call is shared between concurrent calls (the RNG, the counters and the budget are shared);
- with a budget, every retry withdraws a token first; when none is left the call gives up at
  once with its last outcome, so retries cannot multiply an outage's load;
- giving up re-raises the last exception (or returns the last result when the retries were on
  results); an exception the policy does not retry on propagates at once.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, ParamSpec, TypeVar, cast

from haperf._native import retry as _native
from haperf._native.retry import RetryCounter as _C
from haperf.errors import ConfigError
from haperf.resilience.policy import Clock, copy_function_attributes, is_async_callable

P = ParamSpec("P")
R = TypeVar("R")

ATTEMPTS_MAX = 1_000
"""The largest `attempts_max` a Retry accepts."""
MILLI = 1000
SECOND_NS = 1_000_000_000

Jitter = Literal["none", "full", "equal", "decorrelated"]
JITTERS: tuple[Jitter, ...] = ("none", "full", "equal", "decorrelated")
SleepNs = Callable[[int], object]
AsyncSleepNs = Callable[[int], Awaitable[object]]
RetryAfter = Callable[[BaseException | None, Any], int | None]


def _sleep_ns(delay_ns: int) -> None:
    time.sleep(delay_ns / SECOND_NS)


async def _async_sleep_ns(delay_ns: int) -> None:
    await asyncio.sleep(delay_ns / SECOND_NS)


def _check_ns(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{name} must be an int number of nanoseconds >= {minimum}, got {value!r}"
        )
    return value


def _check_number(name: str, value: float, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


class RetryBudget:
    """A token bucket of retries, shared by the Retry policies that should not, together,
    multiply the load on a struggling service (gRPC retry throttling, Finagle's RetryBudget).

    The bucket starts full with `tokens_max` tokens. Each call that succeeds deposits `ratio`
    tokens (capped at tokens_max); each retry withdraws one. With `reserve_per_s` > 0, a second
    bucket refilled at that many tokens per second (holding at most one second's worth) lets a
    quiet service retry a little even when its balance is empty. Over a long outage the retries
    are therefore at most tokens_max + ratio x successes + reserve_per_s x seconds.
    """

    def __init__(
        self,
        name: str = "retry_budget",
        *,
        ratio: float = 0.1,
        tokens_max: float = 10.0,
        reserve_per_s: int = 0,
        clock: Clock = time.monotonic_ns,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        _check_number("tokens_max", tokens_max, 1.0, 1e9)
        _check_number("ratio", ratio, 0.0, tokens_max)
        if isinstance(reserve_per_s, bool) or not isinstance(reserve_per_s, int):
            raise ConfigError(f"reserve_per_s must be an int, got {reserve_per_s!r}")
        if not 0 <= reserve_per_s <= 1_000_000:
            raise ConfigError(f"reserve_per_s must be in 0..1000000, got {reserve_per_s}")
        if not callable(clock):
            raise ConfigError(f"clock must be a callable returning ns, got {clock!r}")
        self.name = name
        self._clock = clock
        self.core = _native.RetryBudgetCore(
            round(tokens_max * MILLI), round(ratio * MILLI), reserve_per_s, clock()
        )

    def deposit(self) -> None:
        """Credit one success."""
        self.core.deposit()

    def try_withdraw(self) -> bool:
        """Take one token for a retry now; False when the budget is spent."""
        return self.core.try_withdraw(self._clock())

    @property
    def tokens(self) -> float:
        return self.core.tokens

    def metrics(self) -> dict[str, int | float]:
        core = self.core
        return {
            "tokens": core.tokens,
            "deposits": core.deposits,
            "withdrawals": core.withdrawals,
            "denials": core.denials,
        }

    counter_keys = frozenset({"deposits", "withdrawals", "denials"})

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """A budget is not a decorator by itself; give it to a Retry."""
        raise ConfigError("a RetryBudget is shared through Retry(budget=...), not applied to fn")


class Retry(_native.RetryBase):
    """Retries a sync or async call with capped exponential backoff and jitter.

        retry = Retry("fetch", attempts_max=4, initial_delay_ns=50_000_000, jitter="full",
                      deadline_ns=2_000_000_000, budget=shared_budget)

        @retry
        async def fetch(key: str) -> bytes: ...

    The delay before retry n (n = 1, 2, ...) is built from d = min(delay_max_ns,
    initial_delay_ns * multiplier ** (n - 1)): "none" waits d, "full" a uniform draw in
    [0, d], "equal" d/2 plus a uniform draw in [0, d/2], "decorrelated" a uniform draw in
    [initial_delay_ns, 3 x the previous delay] capped at delay_max_ns (the AWS Architecture
    Blog's "Exponential Backoff And Jitter"). `retry_after(exc, result)` may return a delay in
    ns (a server's Retry-After) that replaces the computed one; None keeps it.

    What is retried: exceptions of the `retry_on` types for which `retry_if_exception(exc)` is
    true (when given), and results for which `retry_if_result(result)` is true. Cancellation
    (any BaseException that is not an Exception) is never retried.

    `rng` draws the jitter (a random.Random, or anything with .random(); seed it for
    reproducible delays). `clock`, `sleep_ns` and `async_sleep_ns` are injectable, so tests run
    in virtual time.
    """

    name: str

    def __init__(
        self,
        name: str = "retry",
        *,
        attempts_max: int = 3,
        initial_delay_ns: int = 100_000_000,
        multiplier: float = 2.0,
        delay_max_ns: int = 10 * SECOND_NS,
        jitter: Jitter = "full",
        deadline_ns: int | None = None,
        retry_on: Iterable[type[BaseException]] = (Exception,),
        retry_if_exception: Callable[[BaseException], bool] | None = None,
        retry_if_result: Callable[[Any], bool] | None = None,
        retry_after: RetryAfter | None = None,
        budget: RetryBudget | None = None,
        rng: random.Random | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic_ns,
        sleep_ns: SleepNs = _sleep_ns,
        async_sleep_ns: AsyncSleepNs = _async_sleep_ns,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        if isinstance(attempts_max, bool) or not isinstance(attempts_max, int):
            raise ConfigError(f"attempts_max must be an int, got {attempts_max!r}")
        if not 1 <= attempts_max <= ATTEMPTS_MAX:
            raise ConfigError(f"attempts_max must be in 1..{ATTEMPTS_MAX}, got {attempts_max}")
        _check_ns("initial_delay_ns", initial_delay_ns)
        _check_number("multiplier", multiplier, 1.0, 1000.0)
        _check_ns("delay_max_ns", delay_max_ns, initial_delay_ns)
        if jitter not in JITTERS:
            raise ConfigError(f"jitter must be one of {JITTERS}, got {jitter!r}")
        if deadline_ns is not None:
            _check_ns("deadline_ns", deadline_ns, 1)
        types = tuple(retry_on)
        for t in types:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError(f"retry_on must hold exception classes, got {t!r}")
        optional = (
            ("retry_if_exception", retry_if_exception),
            ("retry_if_result", retry_if_result),
            ("retry_after", retry_after),
        )
        for label, maybe in optional:
            if maybe is not None and not callable(maybe):
                raise ConfigError(f"{label} must be callable or None, got {maybe!r}")
        required = (("clock", clock), ("sleep_ns", sleep_ns), ("async_sleep_ns", async_sleep_ns))
        for label, needed in required:
            if not callable(needed):
                raise ConfigError(f"{label} must be callable, got {needed!r}")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ConfigError(f"budget must be a RetryBudget or None, got {budget!r}")
        if rng is not None and seed is not None:
            raise ConfigError("give rng or seed, not both")
        if rng is not None and not callable(getattr(rng, "random", None)):
            raise ConfigError(f"rng must have a random() method, got {rng!r}")
        self.name = name
        self.attempts_max = attempts_max
        self.initial_delay_ns = initial_delay_ns
        self.multiplier = float(multiplier)
        self.delay_max_ns = delay_max_ns
        self.jitter: Jitter = jitter
        self.deadline_ns = deadline_ns
        self.budget = budget
        self._retry_on = types
        self._retry_if_exception = retry_if_exception
        self._retry_if_result = retry_if_result
        self._retry_after = retry_after
        self._random = (rng if rng is not None else random.Random(seed)).random
        self._clock = clock
        self._sleep_ns = sleep_ns
        self._async_sleep_ns = async_sleep_ns
        self._setup_native(
            clock, retry_if_result, None if budget is None else budget.core, deadline_ns is not None
        )

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Retry `fn` (sync or async). The wrapper keeps its signature and name."""
        if not callable(fn):
            raise ConfigError(f"a retry decorates a callable, got {fn!r}")
        guard = self._guard(fn, is_async_callable(fn))
        copy_function_attributes(guard, fn)
        return cast(Callable[P, R], guard)

    # ---- the delay of each retry -------------------------------------------------------

    def delay_ns(self, retry: int, previous_ns: int) -> int:
        """The backoff before retry number `retry` (1-based); `previous_ns` is the delay before
        the previous retry (decorrelated jitter grows from it; pass 0 for the first)."""
        cap = self.delay_max_ns
        base = self.initial_delay_ns
        if self.jitter == "decorrelated":
            upper = max(base, 3 * max(previous_ns, base))
            return min(cap, int(base + self._random() * (upper - base)))
        # base * multiplier ** (retry - 1), capped without overflowing the float.
        d = float(base)
        for _ in range(retry - 1):
            d *= self.multiplier
            if d >= cap:
                break
        capped = min(cap, int(d))
        if self.jitter == "none":
            return capped
        if self.jitter == "full":
            return int(self._random() * capped)
        half = capped // 2
        return half + int(self._random() * (capped - half))

    def _next_delay(
        self, retry: int, previous_ns: int, exc: BaseException | None, result: Any
    ) -> int:
        if self._retry_after is not None:
            hint = self._retry_after(exc, result)
            if hint is not None:
                if isinstance(hint, bool) or not isinstance(hint, int) or hint < 0:
                    raise ConfigError(
                        f"retry_after must return None or an int >= 0 ns, returned {hint!r}"
                    )
                return hint
        return self.delay_ns(retry, previous_ns)

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception) or not isinstance(exc, self._retry_on):
            return False
        return self._retry_if_exception is None or bool(self._retry_if_exception(exc))

    def _may_retry(self, attempt: int, start_ns: int, now_ns: int, delay_ns: int) -> bool:
        """Bounds checked before each retry: attempts, deadline, then the budget (last, so a
        token is only spent on a retry that will happen)."""
        if attempt >= self.attempts_max:
            self._count(_C.COUNT_EXHAUSTED)
            return False
        if self.deadline_ns is not None and now_ns + delay_ns - start_ns > self.deadline_ns:
            self._count(_C.COUNT_DEADLINE)
            return False
        # The budget refills on its own clock (it may be shared by policies on other clocks).
        if self.budget is not None and not self.budget.try_withdraw():
            self._count(_C.COUNT_BUDGET_REJECTION)
            return False
        self._count(_C.COUNT_RETRY)
        return True

    def _final(self, exc: BaseException | None, result: Any) -> Any:
        if exc is None or isinstance(exc, Exception):
            # Cancellation and interpreter exits are not failures of the call.
            self._count(_C.COUNT_FAILURE)
        if exc is not None:
            raise exc
        return result

    def _succeeded(self, result: Any) -> bool:
        if self._retry_if_result is not None and self._retry_if_result(result):
            return False
        self._count(_C.COUNT_SUCCESS)
        if self.budget is not None:
            self.budget.deposit()
        return True

    # ---- the retry loops (called by the native guards after a failed first attempt) ------

    def _retry_sync(  # noqa: PLR0917 - called positionally by the native guard
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException | None,
        result: Any,
        start_ns: int,
    ) -> Any:
        if exc is not None and not self._retryable(exc):
            return self._final(exc, None)
        now = self._clock()
        if start_ns < 0:
            start_ns = now
        previous = 0
        for attempt in range(1, self.attempts_max + 1):
            delay = self._next_delay(attempt, previous, exc, result)
            if not self._may_retry(attempt, start_ns, now, delay):
                break
            previous = delay
            if delay > 0:
                self._sleep_ns(delay)
            exc = None
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - judged below, re-raised on give-up
                exc = error
            if exc is None:
                if self._succeeded(result):
                    return result
            elif not self._retryable(exc):
                break
            now = self._clock()
        return self._final(exc, result)

    async def _retry_async(  # noqa: PLR0917 - called positionally by the native guard
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException | None,
        result: Any,
        start_ns: int,
    ) -> Any:
        if exc is not None and not self._retryable(exc):
            return self._final(exc, None)
        now = self._clock()
        if start_ns < 0:
            start_ns = now
        previous = 0
        for attempt in range(1, self.attempts_max + 1):
            delay = self._next_delay(attempt, previous, exc, result)
            if not self._may_retry(attempt, start_ns, now, delay):
                break
            previous = delay
            if delay > 0:
                await self._async_sleep_ns(delay)
            exc = None
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - judged below, re-raised on give-up
                exc = error
            if exc is None:
                if self._succeeded(result):
                    return result
            elif not self._retryable(exc):
                break
            now = self._clock()
        return self._final(exc, result)

    # ---- metrics -----------------------------------------------------------------------

    def metrics(self) -> dict[str, int | float]:
        """Counters: calls, successes, failures (calls that finally failed), retries,
        retry_budget_rejections, exhausted (gave up at attempts_max), deadline_exceeded;
        gauge retry_budget_tokens when the policy has a budget."""
        out: dict[str, int | float] = {
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "retries": self.retries,
            "retry_budget_rejections": self.retry_budget_rejections,
            "exhausted": self.exhausted,
            "deadline_exceeded": self.deadline_exceeded,
        }
        if self.budget is not None:
            out["retry_budget_tokens"] = self.budget.tokens
        return out

    def __repr__(self) -> str:
        return f"Retry({self.name!r}, attempts_max={self.attempts_max}, jitter={self.jitter!r})"
