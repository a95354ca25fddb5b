"""CircuitBreaker semantics in virtual time: every state transition and window rule.

Covers count and time windows, calls_min, slow calls, the half-open probe cap, backoff of the
open duration, FORCED_OPEN / DISABLED / METRICS_ONLY, outcome judging (exception types,
predicates, results, cancellation), listeners, the explicit API, the context managers, the
async decorator, signatures, and ConfigError on bad configuration. A hypothesis test checks the
count window against a plain Python model of resilience4j's rule.
"""

import asyncio
import collections
import inspect
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import CallNotPermittedError, ConfigError
from haperf.resilience import BreakerState, CircuitBreaker, StateTransition
from tests.resilience.virtual_time_breaker import MS, SECOND, FakeClock

S = BreakerState


def make(clock: FakeClock, **kw: Any) -> CircuitBreaker:
    config: dict[str, Any] = {
        "window_size": 10,
        "calls_min": 4,
        "failure_rate_threshold": 50.0,
        "open_duration_ns": 10 * SECOND,
        "half_open_permits": 2,
        "clock": clock,
    }
    config.update(kw)
    return CircuitBreaker("test", **config)


class Boom(Exception):
    pass


def outcome(breaker: CircuitBreaker, fail: bool) -> None:
    @breaker
    def call() -> str:
        if fail:
            raise Boom("down")
        return "ok"

    if fail:
        with pytest.raises(Boom):
            call()
    else:
        assert call() == "ok"


# ---- CLOSED -> OPEN ----------------------------------------------------------------------------


def test_closed_opens_when_failure_rate_reaches_threshold_after_calls_min() -> None:
    clock = FakeClock()
    b = make(clock)
    for fail in (True, True, False):
        outcome(b, fail)
    # 2 of 3 failed (67%), but 3 < calls_min = 4: not judged yet.
    assert b.state is S.CLOSED
    assert b.metrics()["failure_rate"] == -1.0
    outcome(b, False)  # 2 of 4 = 50% >= 50%: opens, on a success.
    assert b.state is S.OPEN
    assert b.metrics()["transitions"] == 1


def test_closed_stays_closed_below_threshold() -> None:
    b = make(FakeClock())
    for fail in (True, False, False, False, True, False, False, False):
        outcome(b, fail)
    assert b.state is S.CLOSED
    assert b.metrics()["failure_rate"] == 25.0


def test_count_window_forgets_calls_older_than_window_size() -> None:
    b = make(FakeClock(), window_size=4, calls_min=4)
    for fail in (True, False, False, False):
        outcome(b, fail)  # 25%
    for _ in range(4):
        outcome(b, False)  # the failure slides out
    assert b.metrics()["buffered_failures"] == 0
    outcome(b, True)
    outcome(b, True)  # 2 of the last 4
    assert b.state is S.OPEN


def test_calls_min_is_capped_at_a_count_window_size() -> None:
    b = make(FakeClock(), window_size=2, calls_min=100)
    outcome(b, True)
    outcome(b, True)
    assert b.state is S.OPEN


def test_time_window_expires_old_buckets() -> None:
    clock = FakeClock()
    b = make(clock, window="time", window_ns=10 * SECOND, window_buckets=10, calls_min=4)
    outcome(b, True)
    outcome(b, True)
    clock.advance(11 * SECOND)  # both failures are now out of the 10 s window
    for _ in range(2):
        outcome(b, False)
    assert b.metrics()["buffered_calls"] == 2
    assert b.state is S.CLOSED
    outcome(b, True)
    outcome(b, False)  # 1 of 4 in the window
    assert b.state is S.CLOSED
    clock.advance(5 * SECOND)
    outcome(b, True)
    outcome(b, True)  # 3 of 6
    assert b.state is S.OPEN


def test_time_window_keeps_calls_inside_the_window() -> None:
    clock = FakeClock()
    b = make(clock, window="time", window_ns=10 * SECOND, window_buckets=10, calls_min=4)
    for _ in range(3):
        outcome(b, True)
        clock.advance(3 * SECOND)  # 0 s, 3 s, 6 s: all still inside at 9 s
    outcome(b, False)
    assert b.state is S.OPEN


def test_time_window_metrics_expire_on_scrape() -> None:
    clock = FakeClock()
    b = make(clock, window="time", window_ns=SECOND, window_buckets=10, calls_min=100)
    outcome(b, True)
    assert b.metrics()["buffered_calls"] == 1
    clock.advance(2 * SECOND)
    assert b.metrics()["buffered_calls"] == 0


def test_slow_calls_open_the_breaker() -> None:
    clock = FakeClock()
    b = make(clock, slow_call_ns=100 * MS, slow_call_rate_threshold=50.0, calls_min=4)

    @b
    def call(duration_ns: int) -> None:
        clock.advance(duration_ns)

    call(150 * MS)
    call(10 * MS)
    call(100 * MS)  # exactly the threshold counts as slow (resilience4j: >=)
    assert b.state is S.CLOSED
    call(10 * MS)  # 2 slow of 4 = 50%
    assert b.state is S.OPEN
    assert b.metrics()["slow_calls"] == 2
    assert b.metrics()["failures"] == 0


def test_slow_failures_count_as_both() -> None:
    clock = FakeClock()
    b = make(clock, slow_call_ns=MS, calls_min=1, window_size=1, failure_rate_threshold=100.0)
    assert b.allow()
    b.on_failure(2 * MS)
    m = b.metrics()
    assert (m["failures"], m["slow_calls"], m["state"]) == (1, 1, S.OPEN)


# ---- OPEN -> HALF_OPEN -> CLOSED / OPEN --------------------------------------------------------


def open_breaker(b: CircuitBreaker) -> None:
    for _ in range(4):
        outcome(b, True)
    assert b.state is S.OPEN


def test_open_rejects_until_open_duration_then_half_opens() -> None:
    clock = FakeClock()
    b = make(clock)
    open_breaker(b)
    clock.advance(10 * SECOND - 1)
    with pytest.raises(CallNotPermittedError) as info:
        outcome(b, False)
    assert info.value.state == "OPEN"
    assert info.value.breaker == "test"
    assert info.value.retry_after_ns == 1
    assert "test" in str(info.value) and "OPEN" in str(info.value)
    assert b.metrics()["rejections"] == 1
    clock.advance(1)
    outcome(b, False)  # the first probe
    assert b.state is S.HALF_OPEN


def test_half_open_admits_exactly_its_permits_and_closes_when_probes_succeed() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=3)
    open_breaker(b)
    clock.advance(10 * SECOND)
    # Three probes in flight at once: a fourth is rejected even though none has answered.
    assert [b.allow() for _ in range(5)] == [True, True, True, False, False]
    assert b.state is S.HALF_OPEN
    assert not b.is_call_permitted()
    b.on_success(0)
    b.on_success(0)
    assert b.state is S.HALF_OPEN  # judged only when all three have answered
    b.on_success(0)
    assert b.state is S.CLOSED
    assert b.metrics()["buffered_calls"] == 0  # a fresh window


def test_half_open_reopens_when_probes_fail_at_the_threshold() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=2)
    open_breaker(b)
    clock.advance(10 * SECOND)
    outcome(b, False)
    outcome(b, True)  # 1 of 2 = 50% >= 50%
    assert b.state is S.OPEN
    with pytest.raises(CallNotPermittedError):
        outcome(b, False)


def test_half_open_probe_cap_holds_for_the_decorator_with_calls_in_flight() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=2)
    open_breaker(b)
    clock.advance(10 * SECOND)
    rejected: list[str] = []

    @b
    def nested(depth: int) -> None:
        if depth < 3:
            try:
                nested(depth + 1)
            except CallNotPermittedError as exc:
                rejected.append(exc.state)

    nested(0)  # two probes in flight when the third is attempted
    assert rejected == ["HALF_OPEN"]
    assert b.state is S.CLOSED


def test_half_open_max_wait_reopens_when_probes_do_not_answer() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=2, half_open_max_ns=5 * SECOND)
    open_breaker(b)
    clock.advance(10 * SECOND)
    assert b.allow()
    clock.advance(5 * SECOND)
    assert not b.allow()
    assert b.state is S.OPEN


def test_open_duration_backs_off_exponentially_up_to_its_cap() -> None:
    clock = FakeClock()
    b = make(
        clock,
        open_duration_ns=SECOND,
        open_backoff_multiplier=2.0,
        open_duration_max_ns=5 * SECOND,
        half_open_permits=1,
    )
    open_breaker(b)
    waits = []
    for _ in range(5):
        waited = 0
        while not b.is_call_permitted():
            clock.advance(SECOND // 4)
            waited += SECOND // 4
        waits.append(waited)
        outcome(b, True)  # the probe fails: open again, longer
        assert b.state is S.OPEN
    assert waits == [SECOND, 2 * SECOND, 4 * SECOND, 5 * SECOND, 5 * SECOND]
    clock.advance(5 * SECOND)
    outcome(b, False)  # the probe succeeds: closed, and the backoff starts over
    assert b.state is S.CLOSED
    open_breaker(b)
    assert b.core.remaining_open_ns(clock()) == SECOND


# ---- special states ----------------------------------------------------------------------------


def test_forced_open_rejects_everything_until_reset() -> None:
    clock = FakeClock()
    b = make(clock)
    b.force_open()
    clock.advance(1000 * SECOND)
    assert not b.allow()
    assert not b.is_call_permitted()
    with pytest.raises(CallNotPermittedError) as info:
        outcome(b, False)
    assert info.value.state == "FORCED_OPEN"
    b.reset()
    assert b.state is S.CLOSED
    outcome(b, False)


def test_disabled_lets_everything_through_and_records_nothing() -> None:
    b = make(FakeClock())
    b.disable()
    before = b.metrics()
    for _ in range(20):
        outcome(b, True)
    assert b.allow()
    b.on_failure(0)
    after = b.metrics()
    assert b.state is S.DISABLED
    assert {k: after[k] for k in ("calls", "failures")} == {
        k: before[k] for k in ("calls", "failures")
    }


def test_metrics_only_records_but_never_opens() -> None:
    b = make(FakeClock())
    b.metrics_only()
    for _ in range(20):
        outcome(b, True)
    m = b.metrics()
    assert b.state is S.METRICS_ONLY
    assert (m["failures"], m["failure_rate"], m["buffered_calls"]) == (20, 100.0, 10)


def test_transition_to_any_state_and_listeners_see_every_transition() -> None:
    clock = FakeClock()
    seen: list[StateTransition] = []
    b = make(clock, listeners=[seen.append])
    open_breaker(b)
    clock.advance(10 * SECOND)
    outcome(b, False)
    outcome(b, False)
    b.force_open()
    b.disable()
    b.metrics_only()
    b.transition_to(S.CLOSED)
    b.transition_to(S.CLOSED)  # no-op: no event
    assert [(e.from_state, e.to_state) for e in seen] == [
        (S.CLOSED, S.OPEN),
        (S.OPEN, S.HALF_OPEN),
        (S.HALF_OPEN, S.CLOSED),
        (S.CLOSED, S.FORCED_OPEN),
        (S.FORCED_OPEN, S.DISABLED),
        (S.DISABLED, S.METRICS_ONLY),
        (S.METRICS_ONLY, S.CLOSED),
    ]
    assert seen[0].breaker == "test"
    assert seen[1].at_ns == clock()
    assert b.metrics()["transitions"] == len(seen)


def test_a_failing_listener_is_logged_and_does_not_fail_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = make(FakeClock(), calls_min=1, window_size=1)
    later: list[StateTransition] = []

    def broken(event: StateTransition) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    b.add_listener(later.append)
    with caplog.at_level(logging.ERROR, logger="haperf.resilience"):
        outcome(b, True)  # raises Boom (the call's own error), not RuntimeError
    assert b.state is S.OPEN
    assert len(later) == 1
    assert "listener bug" in caplog.text


# ---- outcome judging ---------------------------------------------------------------------------


class Ignored(Exception):
    pass


class NotRecorded(Exception):
    pass


def test_ignored_and_unrecorded_exceptions_and_predicates() -> None:
    b = make(
        FakeClock(),
        record_exceptions=(Boom, ValueError),
        ignore_exceptions=(Ignored,),
        record_exception=lambda exc: "transient" not in str(exc),
        calls_min=1,
        window_size=100,
        failure_rate_threshold=100.0,
    )

    def run(exc: BaseException) -> None:
        @b
        def call() -> None:
            raise exc

        with pytest.raises(type(exc)):
            call()

    run(Ignored())
    run(NotRecorded())  # not a recorded type: a success (resilience4j)
    run(ValueError("transient glitch"))  # the predicate says no: a success
    m = b.metrics()
    assert (m["ignored"], m["successes"], m["failures"], m["buffered_calls"]) == (1, 2, 0, 2)
    run(Boom())
    assert b.metrics()["failures"] == 1
    assert b.state is S.CLOSED  # 1 of 3 is below 100%


def test_record_result_makes_a_result_a_failure() -> None:
    b = make(FakeClock(), record_result=lambda r: r is None, calls_min=2)

    @b
    def call(x: int | None) -> int | None:
        return x

    assert call(None) is None
    assert call(None) is None
    assert b.state is S.OPEN
    assert b.metrics()["failures"] == 2


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(3)])
def test_base_exceptions_are_neither_success_nor_failure_and_give_back_permits(
    exc: BaseException,
) -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=1)
    open_breaker(b)
    clock.advance(10 * SECOND)

    @b
    def call() -> None:
        raise exc

    with pytest.raises(type(exc)):
        call()
    assert b.state is S.HALF_OPEN
    assert b.metrics()["ignored"] == 1
    assert b.is_call_permitted()  # the single permit came back
    outcome(b, False)
    assert b.state is S.CLOSED


def test_outcomes_of_calls_permitted_before_a_transition_do_not_judge_the_new_state() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=1, calls_min=1, window_size=1)
    assert b.allow()  # a slow call, permitted while CLOSED
    epoch = b.core.epoch
    outcome(b, True)  # another call fails: the breaker opens
    assert b.state is S.OPEN
    clock.advance(10 * SECOND)
    assert b.allow()  # the probe
    assert b.state is S.HALF_OPEN
    b.core.on_outcome(True, 0, clock(), epoch)  # the old call fails late
    assert b.state is S.HALF_OPEN  # not taken for the probe's answer
    b.on_success(0)
    assert b.state is S.CLOSED


# ---- explicit API, context managers, decorators ---------------------------------------------


def test_explicit_api_without_exceptions() -> None:
    clock = FakeClock()
    b = make(clock)
    assert b.try_acquire()
    b.on_failure(0)
    for _ in range(3):
        assert b.allow()
        b.on_failure(0)
    assert b.state is S.OPEN and b.state_code == 1
    assert not b.allow()
    assert b.metrics()["rejections"] == 1
    assert b.allow() is False
    b.on_ignored()  # harmless when nothing is in flight


def test_half_open_outcomes_without_a_permit_do_not_answer_for_probes() -> None:
    clock = FakeClock()
    b = make(clock, half_open_permits=1)
    open_breaker(b)
    clock.advance(10 * SECOND)
    assert b.allow()  # the only probe
    b.on_success(0)  # its answer: closes
    assert b.state is S.CLOSED
    open_breaker(b)
    clock.advance(10 * SECOND)
    assert b.is_call_permitted()
    b.core.transition_to(2, clock())  # HALF_OPEN with no probe taken
    b.on_failure(0)  # no permit was taken: counted, but the breaker still waits for a probe
    assert b.state is S.HALF_OPEN
    assert b.metrics()["failures"] == 9


def test_allow_at_takes_the_time_from_the_caller() -> None:
    reads = 0

    def clock() -> int:
        nonlocal reads
        reads += 1
        return 0

    b = CircuitBreaker("at", window_size=1, calls_min=1, open_duration_ns=SECOND, clock=clock)
    assert b.allow_at(0)
    b.core.on_failure(0, 0)
    assert b.state is S.OPEN
    before = reads
    assert not b.allow_at(SECOND - 1)
    assert b.allow_at(SECOND)  # the wait is over: a probe
    assert b.state is S.HALF_OPEN
    assert reads == before


def test_sync_and_async_context_managers() -> None:
    clock = FakeClock()
    b = make(clock, slow_call_ns=5 * MS, slow_call_rate_threshold=100.0, calls_min=2)
    with b:
        clock.advance(10 * MS)
    with pytest.raises(Boom), b:
        raise Boom
    m = b.metrics()
    assert (m["successes"], m["failures"], m["slow_calls"], m["state"]) == (1, 1, 1, S.OPEN)
    with pytest.raises(CallNotPermittedError), b:
        pass

    async def main() -> None:
        clock.advance(10 * SECOND)
        async with b:
            pass
        async with b:
            pass

    asyncio.run(main())
    assert b.state is S.CLOSED


def test_context_manager_nests_with_its_own_call_state() -> None:
    clock = FakeClock()
    b = make(clock, slow_call_ns=5 * MS, calls_min=100)
    with b:
        with b:
            clock.advance(1 * MS)
        clock.advance(10 * MS)
    assert b.metrics()["slow_calls"] == 1  # outer: 11 ms, inner: 1 ms


def test_async_decorator_records_and_rejects_at_await_time() -> None:
    clock = FakeClock()
    b = make(clock)

    @b
    async def call(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise Boom
        return "ok"

    async def main() -> None:
        assert await call(False) == "ok"
        for _ in range(3):
            with pytest.raises(Boom):
                await call(True)
        assert b.state is S.OPEN
        pending = call(False)  # created while OPEN, awaited later
        clock.advance(10 * SECOND)
        assert await pending == "ok"  # the permit is taken at await time
        assert b.state is S.HALF_OPEN
        b.force_open()
        with pytest.raises(CallNotPermittedError):
            await call(False)

    asyncio.run(main())


def test_rejected_coroutine_is_closed_not_leaked(recwarn: pytest.WarningsRecorder) -> None:
    b = make(FakeClock())
    b.force_open()

    @b
    async def call() -> None:
        return None

    async def main() -> None:
        with pytest.raises(CallNotPermittedError):
            await call()

    asyncio.run(main())
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_decorators_keep_signature_name_and_kind() -> None:
    b = make(FakeClock())

    def sync_fn(a: int, *, b: str = "x") -> float:
        """Doc."""
        return 1.0

    async def async_fn(a: int, *, b: str = "x") -> float:
        return 1.0

    ws, wa = b(sync_fn), b(async_fn)
    assert inspect.signature(ws) == inspect.signature(sync_fn)
    assert inspect.signature(wa) == inspect.signature(async_fn)
    assert (ws.__name__, ws.__doc__, ws.__wrapped__) == ("sync_fn", "Doc.", sync_fn)
    assert not inspect.iscoroutinefunction(ws)
    assert inspect.iscoroutinefunction(wa)
    assert ws(1, b="y") == 1.0
    assert asyncio.run(wa(2, b="z")) == 1.0


def test_decorated_methods_bind_like_functions() -> None:
    b = make(FakeClock())

    class Client:
        def __init__(self) -> None:
            self.base = 10

        @b
        def get(self, x: int) -> int:
            return self.base + x

        @b
        async def aget(self, x: int) -> int:
            return self.base + x

    c = Client()
    assert c.get(1) == 11
    assert c.get(x=2) == 12
    assert asyncio.run(c.aget(3)) == 13
    assert Client.get(c, 4) == 14
    assert b.metrics()["successes"] == 4


def test_keyword_and_many_arguments_pass_through() -> None:
    b = make(FakeClock())

    @b
    def call(*args: int, **kwargs: int) -> tuple[tuple[int, ...], dict[str, int]]:
        return args, kwargs

    assert call(1, 2, 3, 4, 5, x=1, y=2) == ((1, 2, 3, 4, 5), {"x": 1, "y": 2})
    assert call(*range(3), **{"z": 3}) == ((0, 1, 2), {"z": 3})


def test_clock_is_not_read_on_the_closed_success_path() -> None:
    reads = 0

    def clock() -> int:
        nonlocal reads
        reads += 1
        return 0

    b = CircuitBreaker("c", window_size=10, calls_min=10, clock=clock)
    reads_at_start = reads

    @b
    def ok() -> int:
        return 1

    for _ in range(100):
        ok()
        assert b.allow()
        b.on_success()
    assert reads == reads_at_start
    outcome(b, True)  # a failure reads it, and successes read it while a failure is buffered
    assert reads > reads_at_start


# ---- property: the count window matches resilience4j's rule ---------------------------------


@given(
    outcomes=st.lists(st.booleans(), max_size=200),
    window_size=st.integers(1, 20),
    calls_min=st.integers(1, 25),
    threshold=st.sampled_from([1.0, 25.0, 33.3, 50.0, 66.7, 100.0]),
)
def test_count_window_matches_a_model(
    outcomes: list[bool], window_size: int, calls_min: int, threshold: float
) -> None:
    clock = FakeClock()
    b = CircuitBreaker(
        "m",
        window_size=window_size,
        calls_min=calls_min,
        failure_rate_threshold=threshold,
        clock=clock,
    )
    window: collections.deque[bool] = collections.deque(maxlen=window_size)
    judged_min = min(calls_min, window_size)
    for fail in outcomes:
        assert b.allow()
        if fail:
            b.on_failure(0)
        else:
            b.on_success(0)
        window.append(fail)
        fails = sum(window)
        model_open = len(window) >= judged_min and fails * 100.0 >= threshold * len(window)
        assert (b.state is S.OPEN) == model_open
        assert b.metrics()["buffered_failures"] == fails
        if model_open:
            break


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 101}, "failure_rate_threshold"),
        ({"slow_call_rate_threshold": -1}, "slow_call_rate_threshold"),
        ({"slow_call_ns": 0}, "slow_call_ns"),
        ({"slow_call_ns": 1.5}, "slow_call_ns"),
        ({"window": "sliding"}, "window"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 10**7}, "window_size"),
        ({"window": "time", "window_ns": 5, "window_buckets": 10}, "window_ns"),
        ({"window_buckets": 0}, "window_buckets"),
        ({"calls_min": 0}, "calls_min"),
        ({"open_duration_ns": -1}, "open_duration_ns"),
        ({"open_backoff_multiplier": 0.5}, "open_backoff_multiplier"),
        ({"open_backoff_multiplier": 2.0}, "open_duration_max_ns"),
        ({"open_duration_ns": 10, "open_duration_max_ns": 5}, "open_duration_max_ns"),
        ({"half_open_permits": 0}, "half_open_permits"),
        ({"half_open_max_ns": -5}, "half_open_max_ns"),
        ({"record_exceptions": (int,)}, "record_exceptions"),
        ({"ignore_exceptions": ("x",)}, "ignore_exceptions"),
        ({"record_result": 3}, "record_result"),
        ({"clock": None}, "clock"),
        ({"listeners": [1]}, "listener"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, Any], words: str) -> None:
    name = kwargs.pop("name", "b")
    with pytest.raises(ConfigError, match=words):
        CircuitBreaker(name, **kwargs)


def test_decorating_a_non_callable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="callable"):
        CircuitBreaker()(42)  # type: ignore[arg-type, misc]


def test_exit_without_enter_is_a_programming_error() -> None:
    b = make(FakeClock())
    with pytest.raises(RuntimeError, match="without a matching"):
        b.__exit__(None, None, None)


def test_context_manager_on_a_disabled_breaker_records_nothing() -> None:
    b = make(FakeClock())
    b.disable()
    for _ in range(10):
        with pytest.raises(Boom), b:
            raise Boom
    assert b.metrics()["failures"] == 0
    assert b.state is S.DISABLED


def test_time_window_tolerates_a_clock_that_steps_back() -> None:
    clock = FakeClock(start_ns=100 * SECOND)
    b = make(clock, window="time", window_ns=10 * SECOND, window_buckets=10, calls_min=2)
    outcome(b, False)
    clock.now_ns -= 5 * SECOND  # a misbehaving clock: the call lands in the newest bucket
    outcome(b, True)
    assert b.metrics()["buffered_calls"] == 2
    assert b.state is S.OPEN
