"""Stub for haperf._native.slo: good/bad event counts over sliding time windows."""

from typing import Final

BUCKETS_MAX: Final[int]

class ErrorWindow:
    bucket_ns: int
    buckets: int
    total: int
    bad: int
    horizon_ns: int
    def __init__(self, bucket_ns: int, buckets: int) -> None: ...
    def record(self, now_ns: int, ok: bool, n: int = 1) -> None: ...
    def counts(self, now_ns: int, window_ns: int) -> tuple[int, int]: ...
