"""How one operation is timed: a tight loop per arity, calibration, repeats and statistics.

Owns the timing method. A repeat runs the operation `loops` times back to back and is timed as
a whole with perf_counter_ns, so per-call timer overhead does not enter the result; the loop
itself (about 10 ns per iteration in CPython) does, and the py_call floor row measures exactly
that loop around a no-op, so ratio_to_floor is honest about it.

Invariants: the garbage collector is off inside a timed repeat (and restored after); loops >= 1;
statistics are computed over per-repeat ns/op values, never over a single repeat.
"""

import asyncio
import gc
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from time import perf_counter_ns
from typing import Any

from haperf.bench.registry import Op

# A timed repeat runs `loops` iterations and returns the elapsed ns.
Loop = Callable[[int], int]

CALIBRATION_LOOPS_MAX = 1 << 30


_bench_loop: asyncio.AbstractEventLoop | None = None


def bench_loop() -> asyncio.AbstractEventLoop:
    """The one event loop every async benchmark runs on (uvloop when importable).

    Setups that build loop-bound objects (semaphores, futures, async WALs) create them with
    this loop current, so they run where they are timed.
    """
    global _bench_loop  # noqa: PLW0603 - one shared loop per bench process
    if _bench_loop is None or _bench_loop.is_closed():
        try:
            import uvloop

            _bench_loop = uvloop.new_event_loop()
        except ImportError:
            _bench_loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_bench_loop)
    return _bench_loop


def _make_async_loop(op: Op, clock: Callable[[], int]) -> Loop:
    """`await fn(*args)` n times inside one coroutine; the clock starts inside it."""
    fn, args = op.fn, op.args
    event_loop = bench_loop()

    async def body(n: int) -> int:
        it = repeat(None, n)
        start = clock()
        for _ in it:
            await fn(*args)
        return clock() - start

    def loop(n: int) -> int:
        return event_loop.run_until_complete(body(n))

    return loop


def make_loop(op: Op, clock: Callable[[], int] = perf_counter_ns) -> Loop:
    """Return a function that runs `op` n times and returns the elapsed ns.

    Each arity gets its own loop body with everything bound as locals (LOAD_FAST), so the
    harness adds the same minimal overhead to every row, floors included. Async operations get
    one coroutine loop whose body is the same shape (floor.await_call measures it around a
    no-op coroutine).
    """
    if op.is_async:
        return _make_async_loop(op, clock)
    fn = op.fn
    if len(op.args) == 0:

        def loop0(n: int, fn: Callable[[], Any] = fn, clock: Callable[[], int] = clock) -> int:
            it = repeat(None, n)
            start = clock()
            for _ in it:
                fn()
            return clock() - start

        return loop0
    if len(op.args) == 1:
        (a,) = op.args

        def loop1(
            n: int, fn: Callable[[Any], Any] = fn, a: Any = a, clock: Callable[[], int] = clock
        ) -> int:
            it = repeat(None, n)
            start = clock()
            for _ in it:
                fn(a)
            return clock() - start

        return loop1
    a, b = op.args

    def loop2(
        n: int,
        fn: Callable[[Any, Any], Any] = fn,
        a: Any = a,
        b: Any = b,
        clock: Callable[[], int] = clock,
    ) -> int:
        it = repeat(None, n)
        start = clock()
        for _ in it:
            fn(a, b)
        return clock() - start

    return loop2


def timed(loop: Loop, loops: int) -> int:
    """Run one repeat with the garbage collector off; return elapsed ns."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return loop(loops)
    finally:
        if enabled:
            gc.enable()


def calibrate(loop: Loop, repeat_ns: int) -> int:
    """Smallest power-of-two-ish loop count whose repeat takes at least `repeat_ns`."""
    if repeat_ns <= 0:
        raise ValueError(f"repeat_ns must be positive, got {repeat_ns}")
    loops = 1
    while True:
        elapsed = timed(loop, loops)
        if elapsed >= repeat_ns or loops >= CALIBRATION_LOOPS_MAX:
            break
        if elapsed <= 0:
            loops *= 10
            continue
        # Aim a little past the goal so one more doubling is rarely needed.
        grow = max(2, min(10, int(1.2 * repeat_ns / elapsed) + 1))
        loops = min(loops * grow, CALIBRATION_LOOPS_MAX)
    return loops


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of per-repeat ns/op values."""

    median_ns: float
    q1_ns: float
    q3_ns: float
    min_ns: float
    max_ns: float
    repeats: int

    @property
    def spread_pct(self) -> float:
        """Interquartile range as a percentage of the median (0 when all repeats agree)."""
        if self.median_ns <= 0:
            return 0.0
        return 100.0 * (self.q3_ns - self.q1_ns) / self.median_ns


def summarize(ns_per_op: Sequence[float]) -> Stats:
    """Median, quartiles and range of per-repeat ns/op values (needs at least one value)."""
    if not ns_per_op:
        raise ValueError("summarize needs at least one repeat")
    values = sorted(ns_per_op)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return Stats(
        median_ns=statistics.median(values),
        q1_ns=q1,
        q3_ns=q3,
        min_ns=values[0],
        max_ns=values[-1],
        repeats=len(values),
    )


WARMUP_ROUNDS = 1


def measure_interleaved(
    loops: Sequence[tuple[Loop, int]],
    repeats: int,
    warmup_rounds: int = WARMUP_ROUNDS,
    ops_per_call: Sequence[int] | None = None,
) -> list[Stats]:
    """Time several operations round-robin, one repeat of each per round, after a warm-up.

    The warm-up rounds run every operation at full length and are discarded (caches, branch
    predictors and the CPU clock settle; calibration has warmed them once already). Interleaving
    spreads a noisy neighbour's bursts over every operation alike, so ratios between them
    (haperf vs a peer) are steadier than the absolute times. `ops_per_call[i]` divides row i's
    per-iteration time (an iteration that does a batch reports ns per item).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup_rounds):
        for loop, count in loops:
            timed(loop, count)
    per_call = list(ops_per_call) if ops_per_call is not None else [1] * len(loops)
    if len(per_call) != len(loops) or min(per_call, default=1) < 1:
        raise ValueError("ops_per_call needs one value >= 1 per loop")
    samples: list[list[float]] = [[] for _ in loops]
    for _ in range(repeats):
        for i, (loop, count) in enumerate(loops):
            samples[i].append(timed(loop, count) / (count * per_call[i]))
    return [summarize(s) for s in samples]
