"""A virtual-time asyncio event loop for the resilience tests (part B helpers).

Owns VirtualLoop: time is an integer ns counter that jumps to the next scheduled timer whenever
the loop would otherwise sleep, so waits of seconds or days run instantly and deterministically.
Invariant: the virtual clock only moves forward, and only when nothing is ready to run; a loop
with nothing ready and nothing scheduled is a deadlock and raises instead of hanging.
"""

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.BaseSelector):
    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual loop deadlock: nothing ready and nothing scheduled")
        assert self.loop is not None
        # Round to the nearest ns (the float seconds came from int ns), at least 1 ns of progress.
        self.loop.advance_ns(max(1, round(timeout * 1e9)))
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is virtual; clock_ns() is the same clock as int ns."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.now_ns = start_ns

    def time(self) -> float:
        return self.now_ns / 1e9

    def clock_ns(self) -> int:
        return self.now_ns

    def advance_ns(self, delta_ns: int) -> None:
        assert delta_ns >= 0
        self.now_ns += delta_ns


def run_virtual(main: Callable[[VirtualLoop], Coroutine[Any, Any, T]]) -> T:
    """Run main(loop) to completion on a fresh VirtualLoop and close it."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


class FakeClock:
    """A manual clock: int ns that moves only when told to."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, delta_ns: int) -> None:
        assert delta_ns >= 0
        self.now_ns += delta_ns
