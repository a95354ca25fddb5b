"""Latency summaries: percentiles over recorded samples (nanoseconds in, milliseconds out).

Owns the one percentile definition every figure in the cluster report uses: nearest rank on the
sorted samples (p99 of 1,000 samples is the 990th smallest). Invariant: an empty sample set gives
None, never 0, so a figure that was not measured cannot pass for a fast one.
"""

import math
from collections.abc import Sequence


def percentile(sorted_samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile `q` (0 < q <= 100) of samples already sorted ascending."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not sorted_samples:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def ms(value_ns: float | None) -> float | None:
    """Nanoseconds to milliseconds, rounded to the microsecond; None stays None."""
    return None if value_ns is None else round(value_ns / 1e6, 3)


def latency_summary(samples_ns: Sequence[int]) -> dict[str, float | None]:
    """count, p50/p99/max and mean latency in ms of one set of samples."""
    ordered = sorted(samples_ns)
    mean = sum(ordered) / len(ordered) if ordered else None
    return {
        "count": len(ordered),
        "p50_ms": ms(percentile(ordered, 50)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1] if ordered else None),
        "mean_ms": ms(mean),
    }


def median(values: Sequence[float]) -> float | None:
    """The median (mean of the middle two for an even count); None for no values."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
