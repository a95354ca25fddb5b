"""Closed-loop load: N workers, each sending one request and awaiting its reply, again and again.

Owns `closed_loop`, used for the sequential single-client runs (N = 1) of every system and for
etcd's concurrent runs (N connections, one request in flight on each). Invariants: only requests
that complete inside the measured window (after the warm-up, before the end) count toward the
rate and the latency percentiles; a request's latency is taken around its own await with
perf_counter_ns; a run that meets more than ERRORS_MAX errors stops and says so.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from clusterbench.errors import REQUEST_FAILURES
from clusterbench.stats import latency_summary

ERRORS_MAX = 1_000
WORKERS_MAX = 16_384


@dataclass
class LoadResult:
    """What one closed-loop run measured."""

    completed: int = 0
    window_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def summary(self) -> dict[str, Any]:
        rate = self.completed / self.window_s if self.window_s > 0 else None
        out: dict[str, Any] = {"ops_per_s": None if rate is None else round(rate, 1)}
        out.update(latency_summary(self.latencies_ns))
        out["errors"] = self.errors
        if self.first_error is not None:
            out["first_error"] = self.first_error
        return out


async def closed_loop(
    workers: int,
    send: Callable[[int], Awaitable[Any]],
    *,
    duration_s: float,
    warmup_s: float,
    ops_max: int | None = None,
) -> LoadResult:
    """Run `workers` loops of `await send(worker_index)` for warm-up + duration seconds.

    `ops_max` ends the run early once that many requests completed in the window (the sequential
    runs of a slow system need no more than a few hundred samples).
    """
    if not 1 <= workers <= WORKERS_MAX:
        raise ValueError(f"workers must be in 1..{WORKERS_MAX}, got {workers}")
    result = LoadResult()
    clock = time.perf_counter_ns
    start = clock()
    window_start = start + int(warmup_s * 1e9)
    window_end = window_start + int(duration_s * 1e9)
    stop = False
    latencies = result.latencies_ns

    async def worker(index: int) -> None:
        nonlocal stop
        while not stop:
            t0 = clock()
            try:
                await send(index)
            except REQUEST_FAILURES as exc:
                result.errors += 1
                if result.first_error is None:
                    result.first_error = f"{type(exc).__name__}: {exc}"
                if result.errors > ERRORS_MAX:
                    stop = True
                    return
                await asyncio.sleep(0.001)
                continue
            t1 = clock()
            if t1 >= window_end:
                stop = True
                return
            if t1 >= window_start:
                latencies.append(t1 - t0)
                if ops_max is not None and len(latencies) >= ops_max:
                    stop = True
                    return

    await asyncio.gather(*(worker(i) for i in range(workers)))
    end = min(clock(), window_end)
    result.completed = len(latencies)
    result.window_s = max(0.0, (end - window_start) / 1e9)
    return result
