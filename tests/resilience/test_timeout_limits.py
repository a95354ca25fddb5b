"""Timeout and TimeoutScope against asyncio.timeout, case by case, in virtual time.

Each semantic case runs twice, once with asyncio.timeout and once with haperf's scope, and the
outcomes must be identical: expiry, inner completion, outer cancellation, nested timeouts (inner
and outer first), reuse, reschedule, a swallowed cancellation. Then the Timeout decorator: the
same cases, and the property that matters for speed: no timer handle per call.
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from haperf.errors import ConfigError
from haperf.resilience import Timeout, loop_now_ns, timeout_scope
from haperf.resilience.timeout import wheel_stats
from tests.resilience.vloop_limits import VirtualLoop, run_virtual

MS = 1_000_000
S = 1_000_000_000

Scope = Callable[[float | None], Any]


def asyncio_scope(delay_s: float | None) -> Any:
    return asyncio.timeout(delay_s)


def haperf_scope(delay_s: float | None) -> Any:
    return timeout_scope(None if delay_s is None else round(delay_s * S))


SCOPES = pytest.mark.parametrize("scope", [asyncio_scope, haperf_scope], ids=["asyncio", "haperf"])


def outcome(main: Callable[[VirtualLoop], Any]) -> tuple[str, int]:
    """(what happened, virtual ns elapsed)."""

    async def wrapped(loop: VirtualLoop) -> tuple[str, int]:
        start = loop.clock_ns()
        try:
            result = await main(loop)
        except TimeoutError:
            return "TimeoutError", loop.clock_ns() - start
        except asyncio.CancelledError:
            return "CancelledError", loop.clock_ns() - start
        return f"result:{result}", loop.clock_ns() - start

    return run_virtual(wrapped)


def same_for_both(case: Callable[[Scope], Callable[[VirtualLoop], Any]]) -> tuple[str, int]:
    a = outcome(case(asyncio_scope))
    b = outcome(case(haperf_scope))
    assert a == b
    return a


def test_expiry() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(0.1) as cm:
                await asyncio.sleep(1)
            raise AssertionError(f"not reached {cm}")

        return main

    assert same_for_both(case) == ("TimeoutError", 100 * MS)


def test_inner_completion() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(1.0) as cm:
                await asyncio.sleep(0.2)
            assert not cm.expired()
            return "done"

        return main

    assert same_for_both(case) == ("result:done", 200 * MS)


def test_no_deadline() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(None):
                await asyncio.sleep(5)
            return "done"

        return main

    assert same_for_both(case) == ("result:done", 5 * S)


def test_outer_cancellation_is_not_a_timeout() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async def body() -> None:
                async with scope(1.0):
                    await asyncio.sleep(10)

            task = asyncio.create_task(body())
            await asyncio.sleep(0.3)
            task.cancel()
            await task
            return "unreachable"

        return main

    assert same_for_both(case) == ("CancelledError", 300 * MS)


def test_outer_cancel_at_the_same_time_as_expiry_stays_cancelled() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async def body() -> None:
                async with scope(0.5):
                    await asyncio.sleep(10)

            task = asyncio.create_task(body())
            # Cancel from a timer due at the same instant as the deadline, scheduled after it.
            await asyncio.sleep(0)
            loop.call_later(0.5, task.cancel)
            await task
            return "unreachable"

        return main

    assert same_for_both(case) == ("CancelledError", 500 * MS)


def test_nested_inner_expires_first() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(1.0) as outer:
                try:
                    async with scope(0.1):
                        await asyncio.sleep(5)
                except TimeoutError:
                    await asyncio.sleep(0.2)
            assert not outer.expired()
            return "inner-timeout-handled"

        return main

    assert same_for_both(case) == ("result:inner-timeout-handled", 300 * MS)


def test_nested_outer_expires_first() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(0.1):
                try:
                    async with scope(1.0) as inner:
                        await asyncio.sleep(5)
                finally:
                    assert not inner.expired()
            return "unreachable"

        return main

    assert same_for_both(case) == ("TimeoutError", 100 * MS)


def test_nested_same_deadline_outer_converts() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            try:
                async with scope(0.1), scope(0.1):
                    await asyncio.sleep(5)
            except TimeoutError:
                return "timeout"
            return "no"

        return main

    assert same_for_both(case) == ("result:timeout", 100 * MS)


def test_swallowed_cancellation_returns_normally() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async with scope(0.1) as cm:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(5)
            task = asyncio.current_task()
            assert task is not None
            return f"expired={cm.expired()} cancelling={task.cancelling()}"

        return main

    assert same_for_both(case) == ("result:expired=True cancelling=0", 100 * MS)


def test_timeout_during_cleanup_after_an_outer_cancel() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            async def body() -> str:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    # Bounded cleanup while a cancellation is pending (cancelling() == 1).
                    try:
                        async with scope(0.05):
                            await asyncio.sleep(1)
                    except TimeoutError:
                        return "cleanup timed out"
                    raise
                return "no"

            task = asyncio.create_task(body())
            await asyncio.sleep(0.1)
            task.cancel()
            return await task

        return main

    assert same_for_both(case) == ("result:cleanup timed out", 150 * MS)


def test_reschedule_and_reuse() -> None:
    def case(scope: Scope) -> Callable[[VirtualLoop], Any]:
        async def main(loop: VirtualLoop) -> str:
            cm = scope(0.1)
            with pytest.raises(RuntimeError):
                cm.reschedule(None)
            async with cm:
                cm.reschedule(None)
                await asyncio.sleep(1)
            with pytest.raises(RuntimeError):
                async with cm:
                    pass
            with pytest.raises(RuntimeError):
                cm.reschedule(None)
            return "ok"

        return main

    assert same_for_both(case) == ("result:ok", 1 * S)


def test_reschedule_earlier_and_when() -> None:
    async def main(loop: VirtualLoop) -> int:
        scope = timeout_scope(10 * S)
        with pytest.raises(TimeoutError):
            async with scope:
                scope.reschedule(loop_now_ns() + 50 * MS)
                assert scope.when() == loop.clock_ns() + 50 * MS
                await asyncio.sleep(1)
        assert scope.expired()
        return loop.clock_ns()

    assert run_virtual(main) == 1 * S + 50 * MS


# -- the decorator ---------------------------------------------------------------------------


def test_decorator_expiry_completion_and_outer_cancel() -> None:
    async def main(loop: VirtualLoop) -> None:
        policy = Timeout(100 * MS, name="rpc")

        @policy
        async def work(delay_s: float) -> str:
            await asyncio.sleep(delay_s)
            return "ok"

        assert await work(0.05) == "ok"
        t0 = loop.clock_ns()
        with pytest.raises(TimeoutError, match="rpc"):
            await work(5)
        assert loop.clock_ns() - t0 == 100 * MS
        task = asyncio.create_task(work(5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        current = asyncio.current_task()
        assert current is not None and current.cancelling() == 0
        m = policy.metrics()
        assert (m["calls"], m["successes"], m["timeouts"], m["failures"]) == (3, 1, 1, 1)

    run_virtual(main)


def test_decorator_inside_asyncio_timeout_nests_both_ways() -> None:
    async def main(loop: VirtualLoop) -> None:
        @Timeout(100 * MS)
        async def inner() -> None:
            await asyncio.sleep(5)

        # asyncio.timeout outside expires first: the outer one converts, ours stays quiet.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05) as outer:
                await inner()
        assert outer.expired()
        # Ours expires first inside a longer asyncio.timeout: ours converts.
        async with asyncio.timeout(1) as outer2:
            with pytest.raises(TimeoutError):
                await inner()
        assert not outer2.expired()

    run_virtual(main)


def test_one_timer_for_many_concurrent_timeouts() -> None:
    async def main(loop: VirtualLoop) -> None:
        policy = Timeout(1 * S)
        gate = asyncio.Event()

        @policy
        async def wait_gate() -> None:
            await gate.wait()

        tasks = [asyncio.create_task(wait_gate()) for _ in range(2000)]
        await asyncio.sleep(0)
        # 2000 timeouts in flight, one loop timer between them.
        assert len(loop._scheduled) == 1  # type: ignore[attr-defined]
        assert wheel_stats(loop)["live"] == 2000
        gate.set()
        await asyncio.gather(*tasks)
        assert wheel_stats(loop)["live"] == 0
        assert policy.metrics()["successes"] == 2000

        @policy
        async def slow(i: int) -> None:
            await asyncio.sleep(10 + i)

        results = await asyncio.gather(*(slow(i) for i in range(500)), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results)
        assert policy.metrics()["timeouts"] == 500

    run_virtual(main)


def test_sync_function_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="async"):
        Timeout(1 * S)(lambda: None)
    with pytest.raises(ConfigError, match="timeout_ns"):
        Timeout(0)
    with pytest.raises(ConfigError, match="timeout_ns"):
        Timeout(-5)


def test_one_nanosecond_timeouts_fire_at_odd_offsets() -> None:
    async def main(loop: VirtualLoop) -> None:
        @Timeout(1)
        async def one_ns() -> None:
            await asyncio.sleep(1)

        # Loop times are float seconds; deadlines are int ns: odd offsets must still expire.
        for offset in (1, 3, 7, 333_333_333, 999_999_999):
            loop.now_ns = 10**9 * 12345 + offset
            with pytest.raises(TimeoutError):
                await one_ns()

    run_virtual(main)


def test_decorator_matches_asyncio_during_cleanup_after_an_outer_cancel() -> None:
    async def main(loop: VirtualLoop) -> list[str]:
        sleep_bounded = Timeout(50 * MS)(asyncio.sleep)
        results = []
        for bounded in (sleep_bounded, None):

            async def body(bounded: Any = bounded) -> str:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    try:
                        if bounded is not None:
                            await bounded(1)
                        else:
                            async with asyncio.timeout(0.05):
                                await asyncio.sleep(1)
                    except TimeoutError:
                        return "cleanup timed out"
                    raise
                return "no"

            task = asyncio.create_task(body())
            await asyncio.sleep(0.1)
            task.cancel()
            results.append(await task)
        return results

    assert run_virtual(main) == ["cleanup timed out", "cleanup timed out"]
