"""A plain Python model of the circuit breaker's state machine, for property tests.

Owns BreakerModel: resilience4j's rules written as directly as possible (lists, no ring
buffers or running totals), so the native core can be checked against it step by step. It
models CLOSED, OPEN and HALF_OPEN with count or time windows, calls_min, slow calls, the
half-open cap and maximum wait, the backoff of the open duration, and outcomes judged against
the epoch that permitted them.
"""

from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = 0, 1, 2


@dataclass
class BreakerModel:
    window: str
    window_size: int
    window_ns: int
    window_buckets: int
    calls_min: int
    failure_rate_threshold: float
    slow_call_rate_threshold: float
    slow_call_ns: int  # 0: off
    open_duration_ns: int
    open_backoff_multiplier: float
    open_duration_max_ns: int
    half_open_permits: int
    half_open_max_ns: int  # 0: off
    state: int = CLOSED
    epoch: int = 0
    # (bucket index or 0, failed, slow) per recorded call, oldest first
    calls: list[tuple[int, bool, bool]] = field(default_factory=list)
    probes: list[tuple[bool, bool]] = field(default_factory=list)
    probes_taken: int = 0
    half_open_since: int = 0
    open_until: int = 0
    openings: int = 0

    def __post_init__(self) -> None:
        if self.window == "count":
            self.calls_min = min(self.calls_min, self.window_size)

    def _bucket(self, now: int) -> int:
        return now // (self.window_ns // self.window_buckets)

    def _in_window(self, now: int) -> list[tuple[int, bool, bool]]:
        if self.window == "count":
            return self.calls[-self.window_size :]
        e = self._bucket(now)
        return [c for c in self.calls if c[0] > e - self.window_buckets]

    def _to(self, state: int, now: int) -> None:
        if state == OPEN:
            d = self.open_duration_ns * self.open_backoff_multiplier**self.openings
            self.open_until = now + min(self.open_duration_max_ns, int(d))
            self.openings += 1
        elif state == HALF_OPEN:
            self.probes, self.probes_taken, self.half_open_since = [], 0, now
        elif state == CLOSED:
            self.calls, self.openings = [], 0
        self.state = state
        self.epoch += 1

    def _trips(self, outcomes: list[tuple[bool, bool]]) -> bool:
        n = len(outcomes)
        failed = sum(f for f, _ in outcomes)
        slow = sum(s for _, s in outcomes)
        return failed * 100.0 >= self.failure_rate_threshold * n or (
            self.slow_call_ns > 0 and slow * 100.0 >= self.slow_call_rate_threshold * n
        )

    def allow(self, now: int) -> bool:
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now < self.open_until:
                return False
            self._to(HALF_OPEN, now)
        if self.half_open_max_ns and now - self.half_open_since >= self.half_open_max_ns:
            self._to(OPEN, now)
            return False
        if self.probes_taken < self.half_open_permits:
            self.probes_taken += 1
            return True
        return False

    def record(self, failed: bool, duration: int, now: int, epoch: int) -> None:
        if epoch != self.epoch:
            return
        slow = self.slow_call_ns > 0 and duration >= self.slow_call_ns
        if self.state == CLOSED:
            bucket = self._bucket(now) if self.window == "time" else 0
            self.calls.append((bucket, failed, slow))
            window = self._in_window(now)
            if len(window) >= self.calls_min and self._trips([(f, s) for _, f, s in window]):
                self._to(OPEN, now)
        elif self.state == HALF_OPEN and len(self.probes) < self.probes_taken:
            self.probes.append((failed, slow))
            if len(self.probes) >= self.half_open_permits:
                self._to(OPEN if self._trips(self.probes) else CLOSED, now)

    def release(self, epoch: int) -> None:
        if epoch == self.epoch and self.state == HALF_OPEN and self.probes_taken > len(self.probes):
            self.probes_taken -= 1
