"""Stub for haperf._native.callstats: per-policy call counters in C."""

class CallStats:
    calls: int
    successes: int
    failures: int
    rejections: int
    timeouts: int
    fallbacks: int
    hedges: int
    cancellations: int
    def as_dict(self) -> dict[str, int]: ...
