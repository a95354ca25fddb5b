"""Stub for haperf._native.sketch: a DDSketch-style quantile sketch with bounded bins."""

from typing import Final

BINS_MAX_DEFAULT: Final[int]
BINS_MAX_LIMIT: Final[int]

class LatencySketch:
    relative_accuracy: float
    bins_max: int
    count: int
    zero_count: int
    collapsed: int
    sum: float
    min: float
    max: float
    bins_used: int
    def __init__(self, relative_accuracy: float = 0.01, bins_max: int = ...) -> None: ...
    def record(self, value: float) -> None: ...
    def record_many(self, value: float, n: int) -> None: ...
    def quantile(self, q: float) -> float | None: ...
    def merge(self, other: LatencySketch) -> None: ...
    def clear(self) -> None: ...
    def copy(self) -> LatencySketch: ...
