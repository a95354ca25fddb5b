"""Virtual time for the breaker, retry and pipeline tests: a fake monotonic clock and sleeps.

Owns FakeClock. Invariant: time moves only when a test (or a fake sleep) advances it, so every
window, open duration, backoff and budget refill is tested without sleeping.
"""

import asyncio


class FakeClock:
    """A monotonic ns clock that only moves when told; its sleeps advance it and log the delay."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now_ns = start_ns
        self.slept_ns: list[int] = []

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ns: int) -> None:
        assert ns >= 0
        self.now_ns += ns

    def sleep_ns(self, ns: int) -> None:
        self.slept_ns.append(ns)
        self.advance(ns)

    async def async_sleep_ns(self, ns: int) -> None:
        self.slept_ns.append(ns)
        self.advance(ns)
        await asyncio.sleep(0)


MS = 1_000_000
SECOND = 1_000_000_000
