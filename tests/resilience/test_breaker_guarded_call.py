"""The breaker's async wrapper object (GuardedCall, native/include/haperf_await.h): it behaves
like the coroutine it wraps under every driver (await, tasks, manual send/throw/close) and
records exactly one outcome per permit, including cancellation and abandonment.
"""

import asyncio
import collections.abc
import gc
from collections.abc import Generator
from typing import Any

import pytest

from haperf.errors import CallNotPermittedError
from haperf.resilience import BreakerState, CircuitBreaker
from tests.resilience.virtual_time_breaker import SECOND, FakeClock


class Boom(Exception):
    pass


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker(
        "g",
        window_size=4,
        calls_min=4,
        half_open_permits=1,
        clock=FakeClock(),
        open_duration_ns=SECOND,
    )


class Suspend:
    """An awaitable that yields `value` once to whoever drives the coroutine."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


def test_it_is_a_coroutine_to_asyncio(breaker: CircuitBreaker) -> None:
    @breaker
    async def call(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    pending = call(2)
    assert isinstance(pending, collections.abc.Coroutine)
    assert asyncio.iscoroutine(pending)

    async def main() -> list[int]:
        task = asyncio.create_task(call(3))
        return [await pending, await task, *(await asyncio.gather(call(4), call(5)))]

    assert asyncio.run(main()) == [4, 6, 8, 10]
    assert asyncio.run(call(6)) == 12
    assert breaker.metrics()["successes"] == 5


def test_manual_driving_passes_values_both_ways(breaker: CircuitBreaker) -> None:
    @breaker
    async def call() -> tuple[Any, Any]:
        first = await Suspend("y1")
        second = await Suspend("y2")
        return first, second

    c = call()
    assert c.send(None) == "y1"
    assert breaker.core.calls == 1  # the permit was taken on the first send
    assert c.send("a") == "y2"
    with pytest.raises(StopIteration) as info:
        c.send("b")
    assert info.value.value == ("a", "b")
    assert breaker.metrics()["successes"] == 1
    with pytest.raises(RuntimeError, match="already awaited"):
        c.send(None)
    it = call().__await__()
    assert next(it) == "y1"


def test_none_and_tuple_results_survive_stop_iteration(breaker: CircuitBreaker) -> None:
    @breaker
    async def none() -> None:
        await Suspend(0)

    @breaker
    async def pair() -> tuple[int, int]:
        await Suspend(0)
        return (1, 2)

    for fn, expected in ((none, None), (pair, (1, 2))):
        c = fn()
        c.send(None)
        with pytest.raises(StopIteration) as info:
            c.send(None)
        assert info.value.value == expected


def test_throw_that_the_coroutine_handles_is_a_result(breaker: CircuitBreaker) -> None:
    @breaker
    async def call() -> str:
        try:
            await Suspend(0)
        except KeyError:
            return "handled"
        return "plain"

    c = call()
    c.send(None)
    with pytest.raises(StopIteration) as info:
        c.throw(KeyError("k"))
    assert info.value.value == "handled"
    assert breaker.metrics()["successes"] == 1


def test_throw_that_escapes_is_judged_like_any_exception(breaker: CircuitBreaker) -> None:
    @breaker
    async def call() -> None:
        await Suspend(0)
        await Suspend(1)

    c = call()
    c.send(None)
    with pytest.raises(Boom):
        c.throw(Boom("thrown"))
    assert breaker.metrics()["failures"] == 1

    @breaker
    async def yields_after_throw() -> int:
        try:
            await Suspend(0)
        except Boom:
            await Suspend("again")
        return 1

    c3 = yields_after_throw()
    c3.send(None)
    assert c3.throw(Boom("caught")) == "again"
    with pytest.raises(StopIteration):
        c3.send(None)
    assert breaker.metrics()["successes"] == 1


def test_throw_before_start_takes_no_permit(breaker: CircuitBreaker) -> None:
    @breaker
    async def call() -> None:
        return None

    c = call()
    with pytest.raises(Boom):
        c.throw(Boom("early"))
    m = breaker.metrics()
    assert (m["calls"], m["failures"], m["ignored"]) == (0, 0, 0)


def test_cancellation_gives_back_the_half_open_permit(breaker: CircuitBreaker) -> None:
    clock = breaker._clock
    breaker.transition_to(BreakerState.OPEN)
    assert isinstance(clock, FakeClock)
    clock.advance(SECOND)

    async def main() -> None:
        started = asyncio.Event()

        @breaker
        async def probe() -> None:
            started.set()
            await asyncio.sleep(3600)

        task = asyncio.create_task(probe())
        await started.wait()
        assert not breaker.is_call_permitted()  # the single probe permit is taken
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.is_call_permitted()

    asyncio.run(main())
    assert breaker.metrics()["ignored"] == 1
    assert breaker.state is BreakerState.HALF_OPEN


def test_close_and_drop_while_running_release_the_permit(breaker: CircuitBreaker) -> None:
    clock = breaker._clock
    assert isinstance(clock, FakeClock)

    @breaker
    async def probe() -> None:
        await Suspend(0)

    for finish in ("close", "drop"):
        breaker.transition_to(BreakerState.OPEN)
        clock.advance(SECOND)
        c = probe()
        c.send(None)
        assert not breaker.is_call_permitted()
        if finish == "close":
            c.close()
            c.close()  # idempotent
        else:
            del c
            gc.collect()
        assert breaker.is_call_permitted(), finish
    assert breaker.metrics()["ignored"] == 2


def test_rejection_at_await_closes_the_wrapped_coroutine(breaker: CircuitBreaker) -> None:
    closed: list[bool] = []

    @breaker
    async def call() -> None:
        try:
            await Suspend(0)
        finally:
            closed.append(True)

    breaker.force_open()
    c = call()
    with pytest.raises(CallNotPermittedError):
        c.send(None)
    with pytest.raises(RuntimeError):
        c.send(None)
    # The wrapped coroutine never started, so its finally block never ran: it was closed.
    assert closed == []


def test_disabled_breaker_records_nothing_for_async_calls(breaker: CircuitBreaker) -> None:
    breaker.disable()

    @breaker
    async def call() -> int:
        raise Boom

    async def main() -> None:
        for _ in range(10):
            with pytest.raises(Boom):
                await call()

    asyncio.run(main())
    assert breaker.metrics()["failures"] == 0
