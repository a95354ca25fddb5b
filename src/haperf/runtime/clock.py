"""Clocks for the real world: the event loop's monotonic clock and the wall clock, in integer ns.

Owns LoopClock, the production implementation of haperf's Clock protocol (`monotonic_ns()`,
also spelled `now_ns()`), read from `loop.time()` so that a time computed from it and a timer
scheduled with `loop.call_at` agree. The simulator's SimClock implements the same protocol in
virtual time.

Invariants: `now_ns()` is an int of nanoseconds and never goes backwards (the loop clock is
monotonic). Resolution is the loop's: asyncio reads time.monotonic() on every call; uvloop
returns libuv's cached loop time, which has 1 ms resolution and advances once per loop
iteration. Use it for timers and ticks, not to time single operations (use time.perf_counter_ns).
`wall_ns()` is the wall clock (time.time_ns()): it may jump; use it only for values that leave
the process (timestamps in commands and logs), never for timeouts.
"""

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What haperf's facades read time from: monotonic integer nanoseconds."""

    def monotonic_ns(self) -> int: ...


class LoopClock:
    """The event loop's clock in integer ns. `loop` defaults to the running loop."""

    __slots__ = ("_time", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self._time = self.loop.time

    def now_ns(self) -> int:
        """Monotonic now in ns, on the loop's timebase (the one `loop.call_at` uses)."""
        return round(self._time() * 1e9)

    def monotonic_ns(self) -> int:
        """The Clock protocol: the same value as now_ns()."""
        return round(self._time() * 1e9)

    def to_loop_time(self, t_ns: int) -> float:
        """Convert a time from now_ns() into the float seconds `loop.call_at` takes."""
        return t_ns / 1e9


def wall_ns() -> int:
    """Wall-clock time in ns since the Unix epoch (may jump: never use it for timeouts)."""
    return time.time_ns()
