"""Stub for haperf._native.concurrency: slot accounting and adaptive concurrency limits."""

from collections.abc import Callable, Generator
from typing import Any, Final

class Done:
    def __await__(self) -> Generator[Any]: ...

DONE: Final[Done]

class Slots:
    limit: int
    inflight: int
    queued: int
    queue_max: int
    inflight_peak: int
    admitted: int
    rejected: int
    handovers: int
    queue_timeouts: int
    successes: int
    failures: int
    def __init__(self, limit: int, queue_max: int = 0) -> None: ...
    def try_enter(self) -> bool: ...
    def try_enter_fast(self) -> bool: ...
    def enter_or_queue(self) -> int: ...
    def leave_queue(self, timed_out: bool = True) -> None: ...
    def exit(self, outcome: int = 1) -> bool: ...
    def handover(self) -> None: ...
    def free(self) -> None: ...
    def set_limit(self, limit: int) -> None: ...

class AimdLimit:
    limit: float
    limit_min: int
    limit_max: int
    backoff_ratio: float
    increase: float
    timeout_ns: int
    samples: int
    decreases: int
    increases: int
    def __init__(
        self,
        initial: float,
        limit_min: int,
        limit_max: int,
        backoff_ratio: float,
        increase: float,
        timeout_ns: int,
    ) -> None: ...
    def on_sample(self, rtt_ns: int, inflight: int, dropped: bool) -> int: ...

class GradientLimit:
    limit: float
    limit_min: int
    limit_max: int
    smoothing: float
    rtt_tolerance: float
    long_window: int
    long_rtt_ns: float
    short_rtt_ns: float
    samples: int
    drops: int
    def __init__(
        self,
        initial: float,
        limit_min: int,
        limit_max: int,
        smoothing: float,
        rtt_tolerance: float,
        long_window: int,
    ) -> None: ...
    def on_sample(self, rtt_ns: int, inflight: int, dropped: bool) -> int: ...

class AdaptiveCore:
    slots: Slots
    def __init__(
        self, slots: Slots, algorithm: AimdLimit | GradientLimit, clock: Callable[[], int]
    ) -> None: ...
    def try_acquire(self) -> int | None: ...
    def release(self, start_ns: int, dropped: bool = False) -> int: ...
    def on_sample(self, rtt_ns: int, dropped: bool = False) -> int: ...
