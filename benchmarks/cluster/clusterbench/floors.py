"""Floors measured in the same run as the systems: the disk's fsync and the machine's load.

Owns `fdatasync_floor` (a 100-byte write + fdatasync in plain Python, repeated: the least any
durable write on this disk can cost) and `load_average`. They are taken before and after each
system, because on a shared machine both drift within minutes. Invariant: the floor's file lives
in a temporary directory that is removed afterwards.
"""

import os
import tempfile
import time
from typing import Any

from clusterbench.stats import latency_summary

FSYNC_SAMPLES = 200
VALUE = b"v" * 100


def fdatasync_floor(samples: int = FSYNC_SAMPLES) -> dict[str, Any]:
    """p50/p99 of `samples` appends of 100 bytes, each followed by fdatasync, in ms."""
    latencies = []
    with tempfile.TemporaryDirectory(prefix="haperf-clusterbench-floor-") as tmp:
        fd = os.open(os.path.join(tmp, "floor"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for _ in range(samples):
                t0 = time.perf_counter_ns()
                os.write(fd, VALUE)
                os.fdatasync(fd)
                latencies.append(time.perf_counter_ns() - t0)
        finally:
            os.close(fd)
    summary = latency_summary(latencies)
    return {"p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "samples": samples}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what else ran on the machine)."""
    return [round(x, 2) for x in os.getloadavg()]
