"""Retry and RetryBudget in virtual time: backoff and jitter, bounds, predicates, the retry
budget stopping a retry storm, per-call state under concurrency, sync and async.
"""

import asyncio
import inspect
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import ConfigError
from haperf.resilience import Retry, RetryBudget
from tests.resilience.virtual_time_breaker import MS, SECOND, FakeClock


class Flaky:
    """Fails `failures` times (with a fresh exception each time), then returns the attempt."""

    def __init__(self, failures: int, exc: type[BaseException] = OSError) -> None:
        self.failures = failures
        self.exc = exc
        self.attempts = 0

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.exc(f"attempt {self.attempts}")
        return self.attempts


def make(clock: FakeClock, **kw: Any) -> Retry:
    config: dict[str, Any] = {
        "attempts_max": 5,
        "initial_delay_ns": 100 * MS,
        "multiplier": 2.0,
        "delay_max_ns": 1 * SECOND,
        "jitter": "none",
        "clock": clock,
        "sleep_ns": clock.sleep_ns,
        "async_sleep_ns": clock.async_sleep_ns,
    }
    config.update(kw)
    return Retry("test", **config)


def test_success_on_first_try_does_not_sleep_or_read_the_clock() -> None:
    reads = 0

    def clock() -> int:
        nonlocal reads
        reads += 1
        return 0

    r = Retry("fast", clock=clock)
    wrapped = r(Flaky(0))
    assert wrapped() == 1
    assert reads == 0
    m = r.metrics()
    assert (m["calls"], m["successes"], m["retries"], m["failures"]) == (1, 1, 0, 0)


def test_retries_until_success_with_capped_exponential_backoff() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=10)
    flaky = Flaky(6)
    assert r(flaky)("arg", key=1) == 7
    assert clock.slept_ns == [100 * MS, 200 * MS, 400 * MS, 800 * MS, SECOND, SECOND]
    m = r.metrics()
    assert (m["successes"], m["retries"], m["failures"]) == (1, 6, 0)


def test_gives_up_after_attempts_max_with_the_last_exception_unchained() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=3)
    flaky = Flaky(10)
    with pytest.raises(OSError, match="attempt 3") as info:
        r(flaky)()
    assert flaky.attempts == 3
    assert info.value.__context__ is None
    m = r.metrics()
    assert (m["failures"], m["exhausted"], m["retries"]) == (1, 1, 2)


def test_attempts_max_one_never_retries() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=1)
    with pytest.raises(OSError):
        r(Flaky(1))()
    assert clock.slept_ns == []


def test_exceptions_not_retried_propagate_at_once() -> None:
    clock = FakeClock()
    r = make(clock, retry_on=(OSError,), retry_if_exception=lambda e: "fatal" not in str(e))
    flaky = Flaky(5, exc=ValueError)
    with pytest.raises(ValueError):
        r(flaky)()
    assert flaky.attempts == 1

    def fatal() -> None:
        raise OSError("fatal disk")

    with pytest.raises(OSError, match="fatal"):
        r(fatal)()
    assert clock.slept_ns == []
    assert r.metrics()["failures"] == 2


def test_an_unretried_exception_after_a_retry_stops_the_loop() -> None:
    clock = FakeClock()
    r = make(clock, retry_on=(OSError,))
    attempts = 0

    def call() -> None:
        nonlocal attempts
        attempts += 1
        raise (OSError if attempts == 1 else KeyError)("x")

    with pytest.raises(KeyError):
        r(call)()
    assert attempts == 2


@pytest.mark.parametrize("exc", [KeyboardInterrupt, asyncio.CancelledError, SystemExit])
def test_base_exceptions_are_never_retried(exc: type[BaseException]) -> None:
    r = make(FakeClock(), retry_on=(BaseException,))
    flaky = Flaky(3, exc=exc)
    with pytest.raises(exc):
        r(flaky)()
    assert flaky.attempts == 1
    assert r.metrics()["failures"] == 0


def test_retry_on_result_returns_the_last_result_when_exhausted() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=4, retry_if_result=lambda x: x < 3)
    counter = Flaky(0)
    assert r(counter)() == 3
    assert counter.attempts == 3
    always_low = make(clock, attempts_max=3, retry_if_result=lambda x: True)
    assert always_low(Flaky(0))() == 3
    assert always_low.metrics()["exhausted"] == 1
    assert always_low.metrics()["failures"] == 1


def test_total_deadline_counts_the_first_attempt_and_stops_retries() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=100, deadline_ns=1 * SECOND, jitter="none")

    def slow_failure() -> None:
        clock.advance(300 * MS)
        raise OSError("slow")

    with pytest.raises(OSError):
        r(slow_failure)()
    # 300 (attempt) + 100 (wait) + 300 + 200 (wait) + 300 = 1200 > 1000 would pass the deadline
    # at the second wait: t=300 -> wait 100 -> 700 -> next wait 200 ends at 900 -> 1200 -> stop.
    assert clock.slept_ns == [100 * MS, 200 * MS]
    assert r.metrics()["deadline_exceeded"] == 1


def test_retry_after_hint_replaces_the_backoff() -> None:
    clock = FakeClock()

    class Throttled(Exception):
        def __init__(self, after_ns: int) -> None:
            super().__init__(after_ns)
            self.after_ns = after_ns

    def hint(exc: BaseException | None, result: Any) -> int | None:
        return exc.after_ns if isinstance(exc, Throttled) else None

    r = make(clock, retry_after=hint)
    attempts = 0

    def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise Throttled(7 * SECOND)
        if attempts == 2:
            raise OSError("plain")
        return "ok"

    assert r(call)() == "ok"
    assert clock.slept_ns == [7 * SECOND, 200 * MS]


def test_a_bad_retry_after_hint_is_a_config_error() -> None:
    r = make(FakeClock(), retry_after=lambda exc, res: -1)
    with pytest.raises(ConfigError, match="retry_after"):
        r(Flaky(1))()


# ---- jitter ------------------------------------------------------------------------------------


def delays(r: Retry, n: int) -> list[int]:
    out, previous = [], 0
    for i in range(1, n + 1):
        previous = r.delay_ns(i, previous)
        out.append(previous)
    return out


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_is_seeded_and_reproducible(jitter: str) -> None:
    a = make(FakeClock(), jitter=jitter, seed=42)
    b = make(FakeClock(), jitter=jitter, seed=42)
    c = make(FakeClock(), jitter=jitter, rng=random.Random(42))
    d = make(FakeClock(), jitter=jitter, seed=43)
    assert delays(a, 20) == delays(b, 20) == delays(c, 20)
    assert delays(a, 20) != delays(d, 20)


def test_jitter_ranges() -> None:
    clock = FakeClock()
    full = make(clock, jitter="full", seed=1)
    equal = make(clock, jitter="equal", seed=1)
    decor = make(clock, jitter="decorrelated", seed=1)
    for retry in range(1, 12):
        cap = min(SECOND, 100 * MS * 2 ** (retry - 1))
        for _ in range(50):
            assert 0 <= full.delay_ns(retry, 0) <= cap
            assert cap // 2 <= equal.delay_ns(retry, 0) <= cap
    previous = 0
    for retry in range(1, 50):
        d = decor.delay_ns(retry, previous)
        assert 100 * MS <= d <= min(SECOND, 3 * max(previous, 100 * MS))
        previous = d


def test_injected_rng_drives_the_jitter() -> None:
    class Fixed:
        def random(self) -> float:
            return 0.5

    r = make(FakeClock(), jitter="full", rng=Fixed())  # type: ignore[arg-type]
    assert delays(r, 3) == [50 * MS, 100 * MS, 200 * MS]


@given(
    retry=st.integers(1, 1000),
    previous=st.integers(0, 10**12),
    jitter=st.sampled_from(["none", "full", "equal", "decorrelated"]),
    initial=st.integers(0, 10**9),
    multiplier=st.floats(1.0, 10.0),
)
def test_every_delay_is_within_zero_and_the_cap(
    retry: int, previous: int, jitter: str, initial: int, multiplier: float
) -> None:
    r = Retry(
        "h",
        jitter=jitter,  # type: ignore[arg-type]
        initial_delay_ns=initial,
        multiplier=multiplier,
        delay_max_ns=initial + 10**9,
        seed=retry,
    )
    assert 0 <= r.delay_ns(retry, previous) <= initial + 10**9


# ---- the retry budget --------------------------------------------------------------------------


def test_retry_budget_stops_a_retry_storm() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, tokens_max=10, clock=clock)
    r = make(clock, attempts_max=5, initial_delay_ns=0, budget=budget)
    down = Flaky(10**9)
    calls = 200
    for _ in range(calls):
        with pytest.raises(OSError):
            r(down)()
    # Without the budget: 5 attempts per call (1000). With it: each call's first attempt plus
    # the 10 tokens the bucket started with.
    assert down.attempts == calls + 10
    m = r.metrics()
    # Calls 1 and 2 retry 4 times each, call 3 twice and is then denied; every later call is
    # denied its first retry.
    assert (m["retries"], m["retry_budget_rejections"]) == (10, calls - 2)
    assert budget.metrics()["denials"] == m["retry_budget_rejections"]


def test_retry_budget_refills_from_successes() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, tokens_max=2, clock=clock)
    r = make(clock, attempts_max=2, initial_delay_ns=0, budget=budget)
    for _ in range(2):
        assert r(Flaky(1))() == 2  # spends a token each
    assert budget.tokens == pytest.approx(1.0)  # two successes deposited 0.5 each
    assert r(Flaky(1))() == 2
    assert r(Flaky(0))() == 1
    assert r(Flaky(0))() == 1
    assert budget.tokens == pytest.approx(1.5)


def test_retry_budget_reserve_refills_in_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, tokens_max=1, reserve_per_s=2, clock=clock)
    assert budget.try_withdraw()  # the balance
    assert budget.try_withdraw()  # the reserve (starts full: 2)
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.advance(500 * MS)  # 0.5 s x 2/s = 1 token
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.advance(10 * SECOND)  # refills to one second's worth, no more
    assert budget.try_withdraw()
    assert budget.try_withdraw()
    assert not budget.try_withdraw()


def test_one_budget_is_shared_by_several_policies() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, tokens_max=3, clock=clock)
    a = make(clock, attempts_max=10, initial_delay_ns=0, budget=budget)
    b = make(clock, attempts_max=10, initial_delay_ns=0, budget=budget)
    fa, fb = Flaky(10**9), Flaky(10**9)
    for policy, fn in ((a, fa), (b, fb)):
        with pytest.raises(OSError):
            policy(fn)()
    assert fa.attempts + fb.attempts == 2 + 3


# ---- async and per-call state ----------------------------------------------------------------


def test_async_retry_with_virtual_sleep() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=4)

    @r
    async def call(flaky: Flaky) -> int:
        await asyncio.sleep(0)
        return flaky()

    async def main() -> None:
        assert await call(Flaky(2)) == 3
        with pytest.raises(OSError, match="attempt 4"):
            await call(Flaky(100))

    asyncio.run(main())
    assert clock.slept_ns == [100 * MS, 200 * MS, 100 * MS, 200 * MS, 400 * MS]
    m = r.metrics()
    assert (m["successes"], m["failures"], m["retries"]) == (1, 1, 5)


def test_async_retry_on_result_and_non_retryable() -> None:
    clock = FakeClock()
    r = make(clock, retry_on=(OSError,), retry_if_result=lambda x: x is None)
    results = iter([None, None, 5])

    @r
    async def call() -> int | None:
        return next(results)

    @r
    async def bad() -> None:
        raise ValueError("no")

    async def main() -> None:
        assert await call() == 5
        with pytest.raises(ValueError):
            await bad()

    asyncio.run(main())


def test_concurrent_calls_keep_their_own_attempts_and_backoff() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=6, jitter="decorrelated", seed=7)
    attempts: dict[int, int] = {}

    @r
    async def call(i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        await asyncio.sleep(0)
        if attempts[i] <= i:  # call i fails i times
            raise OSError(i)
        return attempts[i]

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(call(i) for i in range(8)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:6] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(x, OSError) for x in results[6:])
    assert attempts == {i: min(i + 1, 6) for i in range(8)}


def test_decorators_keep_signature_and_kind() -> None:
    r = make(FakeClock())

    def f(a: int, b: str = "x") -> int:
        return a

    async def g(a: int, b: str = "x") -> int:
        return a

    assert inspect.signature(r(f)) == inspect.signature(f)
    assert inspect.signature(r(g)) == inspect.signature(g)
    assert inspect.iscoroutinefunction(r(g)) and not inspect.iscoroutinefunction(r(f))

    class C:
        @r
        def m(self, x: int) -> int:
            return x + 1

    assert C().m(1) == 2


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"attempts_max": 0}, "attempts_max"),
        ({"attempts_max": 10**6}, "attempts_max"),
        ({"attempts_max": 2.5}, "attempts_max"),
        ({"initial_delay_ns": -1}, "initial_delay_ns"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"initial_delay_ns": 10, "delay_max_ns": 5}, "delay_max_ns"),
        ({"jitter": "gaussian"}, "jitter"),
        ({"deadline_ns": 0}, "deadline_ns"),
        ({"retry_on": (str,)}, "retry_on"),
        ({"retry_if_result": 1}, "retry_if_result"),
        ({"budget": object()}, "budget"),
        ({"rng": random.Random(1), "seed": 1}, "rng or seed"),
        ({"rng": object()}, "rng"),
        ({"sleep_ns": None}, "sleep_ns"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_retry_configuration(kwargs: dict[str, Any], words: str) -> None:
    name = kwargs.pop("name", "r")
    with pytest.raises(ConfigError, match=words):
        Retry(name, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": 20.0, "tokens_max": 10.0}, "ratio"),
        ({"tokens_max": 0.5}, "tokens_max"),
        ({"reserve_per_s": -1}, "reserve_per_s"),
        ({"reserve_per_s": 1.5}, "reserve_per_s"),
    ],
)
def test_bad_budget_configuration(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        RetryBudget(**kwargs)


def test_counters_are_exact_with_threads_on_the_retry_path() -> None:
    from concurrent.futures import ThreadPoolExecutor

    r = Retry("threads", attempts_max=2, initial_delay_ns=0)
    per_thread = 2000

    def work() -> None:
        for _ in range(per_thread):
            assert r(Flaky(1))() == 2

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(work) for _ in range(4)]:
            f.result()
    m = r.metrics()
    assert (m["calls"], m["successes"], m["retries"]) == (4 * per_thread,) * 3


def test_async_retry_passes_keyword_arguments_to_every_attempt() -> None:
    clock = FakeClock()
    r = make(clock, attempts_max=3)
    seen: list[tuple[int, str]] = []

    @r
    async def call(a: int, *, b: str) -> str:
        seen.append((a, b))
        if len(seen) < 3:
            raise OSError("again")
        return b * a

    assert asyncio.run(call(2, b="x")) == "xx"
    assert seen == [(2, "x")] * 3


def test_async_retry_cancelled_in_first_attempt_or_in_backoff() -> None:
    clock = FakeClock()
    waits: list[int] = []

    async def long_sleep(ns: int) -> None:
        waits.append(ns)
        await asyncio.sleep(3600)

    r = make(clock, attempts_max=5, async_sleep_ns=long_sleep)
    started = 0

    @r
    async def call(fail: bool) -> None:
        nonlocal started
        started += 1
        if fail:
            raise OSError("retry me")
        await asyncio.sleep(3600)

    async def main() -> None:
        for fail in (False, True):
            task = asyncio.create_task(call(fail))
            for _ in range(5):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert started == 2  # each task ran one attempt; the second was cancelled while waiting
    assert waits == [100 * MS]
    m = r.metrics()
    assert (m["calls"], m["successes"], m["failures"], m["retries"]) == (2, 0, 0, 1)


def test_async_retry_wrapper_is_a_coroutine_for_asyncio() -> None:
    r = make(FakeClock())

    @r
    async def call() -> int:
        return 1

    pending = call()
    assert asyncio.iscoroutine(pending)
    assert asyncio.run(pending) == 1


def test_retry_after_can_wait_out_an_open_breaker() -> None:
    from haperf.errors import CallNotPermittedError
    from haperf.resilience import CircuitBreaker

    clock = FakeClock()
    breaker = CircuitBreaker(
        "down", window_size=1, calls_min=1, open_duration_ns=3 * SECOND, clock=clock
    )

    def wait_for_breaker(exc: BaseException | None, result: Any) -> int | None:
        return exc.retry_after_ns if isinstance(exc, CallNotPermittedError) else None

    r = make(clock, attempts_max=3, retry_after=wait_for_breaker)
    calls = 0

    @r
    @breaker
    def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("first failure opens the breaker")
        return "ok"

    assert call() == "ok"
    # Retry 1 waits the backoff and is rejected; retry 2 waits exactly the breaker's remaining
    # open time, and the half-open probe succeeds.
    assert clock.slept_ns == [100 * MS, 3 * SECOND - 100 * MS]
    assert calls == 2


def test_budget_refills_on_its_own_clock_when_the_policy_has_another() -> None:
    """A budget may be shared by policies on other clocks: it reads its own clock (before, the
    policy's time was passed in, and a reserve on another clock never refilled)."""
    budget_clock = FakeClock(start_ns=10**15)
    policy_clock = FakeClock(start_ns=10**9)

    def sleep_both(ns: int) -> None:
        policy_clock.sleep_ns(ns)
        budget_clock.advance(ns)

    budget = RetryBudget(ratio=0.0, tokens_max=1, reserve_per_s=1, clock=budget_clock)
    r = make(
        policy_clock,
        attempts_max=20,
        initial_delay_ns=SECOND,
        multiplier=1.0,
        budget=budget,
        sleep_ns=sleep_both,
    )
    flaky = Flaky(10**9)
    with pytest.raises(OSError):
        r(flaky)()
    assert flaky.attempts == 20  # one reserve token per simulated second: every retry allowed
