"""Independent plain-Python reference for the phi-accrual formulas, written from the sources.

Owns nothing the package uses: exact window moments with fractions.Fraction over a plain list,
Akka's phi in the two-branch form its source uses (not haperf's softplus form), Cassandra's
exponential phi, and the hybrid survival mixture evaluated directly with math.exp/math.log on
probabilities (fine for moderate phi, which is where the tests compare).
"""

import math
from fractions import Fraction


def exact_moments(intervals: list[int]) -> tuple[Fraction, Fraction]:
    """Mean and population variance of the intervals, exactly."""
    n = len(intervals)
    total = sum(intervals)
    squares = sum(x * x for x in intervals)
    return Fraction(total, n), Fraction(n * squares - total * total, n * n)


def akka_phi(time_diff: float, mean: float, std_deviation: float) -> float:
    """Akka's PhiAccrualFailureDetector.phi: logistic approximation, two numeric branches."""
    y = (time_diff - mean) / std_deviation
    try:
        e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    except OverflowError:
        e = math.inf  # the JVM's Math.exp gives Infinity here, and phi comes out 0
    if time_diff > mean:
        ratio = e / (1.0 + e)
        return math.inf if ratio == 0.0 else -math.log10(ratio)
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def cassandra_phi(time_diff: float, mean: float) -> float:
    """Cassandra's ArrivalWindow.phi: exponential inter-arrivals, phi = dt / (mean ln 10)."""
    return time_diff / mean / math.log(10.0)


def hybrid_phi(
    time_diff: float, mean: float, std_deviation: float, pause: float, tail_weight: float
) -> float:
    """-log10((1 - w) S_normal + w exp(-max(0, dt - mu) / mean)), mu = mean + pause."""
    mu = mean + pause
    y = (time_diff - mu) / std_deviation
    z = y * (1.5976 + 0.070566 * y * y)
    s_normal = 1.0 / (1.0 + math.exp(z)) if z < 700 else 0.0
    s_tail = math.exp(-max(0.0, time_diff - mu) / mean)
    return -math.log10((1.0 - tail_weight) * s_normal + tail_weight * s_tail)


class PlainDetector:
    """The detector's window and phi in plain Python (list window, exact sums recomputed)."""

    def __init__(self, window_size: int, first_estimate: int, min_sd: float, pause: float) -> None:
        self.window_size = window_size
        self.min_sd = min_sd
        self.pause = pause
        self.intervals: list[int] = []
        self.last: int | None = None
        for seed in (first_estimate - first_estimate // 4, first_estimate + first_estimate // 4):
            self._push(seed)

    def _push(self, interval: int) -> None:
        self.intervals.append(interval)
        del self.intervals[: -self.window_size]

    def heartbeat(self, now: int) -> bool:
        if self.last is not None:
            if now < self.last:
                return False
            self._push(min(now - self.last, 1 << 40))
        self.last = now
        return True

    def phi(self, now: int) -> float:
        if self.last is None:
            return 0.0
        mean, var = exact_moments(self.intervals)
        sd = max(math.sqrt(var), self.min_sd)
        return akka_phi(max(0, now - self.last), float(mean) + self.pause, sd)
