"""Virtual time for the simulator: one global clock in integer ns, and drifting node clocks.

Owns SimClock (the simulation's time, advanced only by the scheduler) and NodeClock (what one
node's local clock reads: the global time scaled by (1 + drift_ppm / 1e6)). Invariants: time is
an int of nanoseconds and never goes backwards; a node's local clock is monotonic too, since the
scale factor is positive (|drift_ppm| < 1e6).
"""

PPM = 1_000_000
DRIFT_PPM_MAX = 100_000  # 10 %: far beyond real quartz (~100 ppm), to stress timing assumptions


class SimClock:
    """The global simulated clock. `now_ns` is read by everyone and set by the scheduler only."""

    __slots__ = ("now_ns",)

    def __init__(self, start_ns: int = 0) -> None:
        if start_ns < 0:
            raise ValueError(f"start_ns must be >= 0, got {start_ns}")
        self.now_ns = start_ns

    def monotonic_ns(self) -> int:
        """The Clock protocol of haperf's facades: virtual now, in ns."""
        return self.now_ns

    def advance_to(self, time_ns: int) -> None:
        assert time_ns >= self.now_ns, f"time went backwards: {time_ns} < {self.now_ns}"
        self.now_ns = time_ns


class NodeClock:
    """A node's local clock: runs `drift_ppm` parts per million fast (> 0) or slow (< 0)."""

    __slots__ = ("base", "drift_ppm")

    def __init__(self, base: SimClock, drift_ppm: int = 0) -> None:
        if not -DRIFT_PPM_MAX <= drift_ppm <= DRIFT_PPM_MAX:
            raise ValueError(f"drift_ppm must be in +-{DRIFT_PPM_MAX}, got {drift_ppm}")
        self.base = base
        self.drift_ppm = drift_ppm

    def monotonic_ns(self) -> int:
        now = self.base.now_ns
        return now + now * self.drift_ppm // PPM

    def global_interval_ns(self, local_ns: int) -> int:
        """How much global time passes while this clock advances by `local_ns` (at least 1 ns)."""
        return max(1, local_ns * PPM // (PPM + self.drift_ppm))
