"""haperf.runtime.loop and .clock: the loop choice (uvloop when importable), run(), and the
loop clock in integer ns on the loop's own timebase. No timing assertions: only ordering and
agreement between clocks that read the same source.
"""

import asyncio
import time

import pytest

from haperf.errors import ConfigError
from haperf.runtime import LoopClock, loop_name, new_event_loop, run, uvloop_available, wall_ns
from haperf.runtime.clock import Clock
from haperf.runtime.loop import loop_factory


def test_auto_is_uvloop_when_importable() -> None:
    loop = new_event_loop()
    try:
        assert loop_name(loop) == ("uvloop" if uvloop_available() else "asyncio")
    finally:
        loop.close()


def test_asyncio_kind_gives_the_default_loop() -> None:
    loop = new_event_loop("asyncio")
    try:
        assert loop_name(loop) == "asyncio"
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="loop kind"):
        loop_factory("trio")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["auto", "asyncio"])
def test_run_returns_the_result_and_closes_the_loop(kind: str) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 42

    assert run(main(), kind=kind) == 42  # type: ignore[arg-type]
    assert seen[0].is_closed()
    if kind == "asyncio" or not uvloop_available():
        assert loop_name(seen[0]) == "asyncio"


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_loop_clock_is_monotonic_ns_on_the_loop_timebase(kind: str) -> None:
    if kind == "uvloop" and not uvloop_available():
        pytest.skip("uvloop is not installed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clock = LoopClock()
        assert clock.loop is loop
        check: Clock = clock  # satisfies the facades' Clock protocol
        readings = []
        for _ in range(50):
            before = loop.time()
            now = clock.now_ns()
            after = loop.time()
            assert isinstance(now, int)
            # Same source: the ns reading lies between two loop.time() readings around it.
            assert round(before * 1e9) <= now <= round(after * 1e9)
            readings.append(check.monotonic_ns())
            await asyncio.sleep(0)
        assert readings == sorted(readings)
        assert clock.to_loop_time(clock.now_ns()) == pytest.approx(loop.time(), abs=1.0)

    run(main(), kind=kind)  # type: ignore[arg-type]


def test_loop_clock_can_be_built_for_a_loop_that_is_not_running() -> None:
    loop = new_event_loop("asyncio")
    try:
        assert LoopClock(loop).now_ns() == pytest.approx(loop.time() * 1e9, abs=1e9)
    finally:
        loop.close()
    with pytest.raises(RuntimeError):
        LoopClock()  # no running loop and none given


def test_wall_ns_is_the_wall_clock() -> None:
    before = time.time_ns()
    now = wall_ns()
    after = time.time_ns()
    assert isinstance(now, int) and before <= now <= after
