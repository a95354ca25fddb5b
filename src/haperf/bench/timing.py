"""How one operation is timed: a tight loop per arity, calibration, repeats and statistics.

Owns the timing method. A repeat runs the operation `loops` times back to back and is timed as
a whole with perf_counter_ns, so per-call timer overhead does not enter the result; the loop
itself (about 10 ns per iteration in CPython) does, and the py_call floor row measures exactly
that loop around a no-op, so ratio_to_floor is honest about it.

Invariants: the garbage collector is off inside a timed repeat (and restored after); loops >= 1;
statistics are computed over per-repeat ns/op values, never over a single repeat.
"""

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


def make_loop(op: Op, clock: Callable[[], int] = perf_counter_ns) -> Loop:
    """Return a function that runs `op` n times and returns the elapsed ns.

    Each arity gets its own loop body with everything bound as locals (LOAD_FAST), so the
    harness adds the same minimal overhead to every row, floors included.
    """
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
    loops: Sequence[tuple[Loop, int]], repeats: int, warmup_rounds: int = WARMUP_ROUNDS
) -> list[Stats]:
    """Time several operations round-robin, one repeat of each per round, after a warm-up.

    The warm-up rounds run every operation at full length and are discarded (caches, branch
    predictors and the CPU clock settle; calibration has warmed them once already). Interleaving
    spreads a noisy neighbour's bursts over every operation alike, so ratios between them
    (haperf vs a peer) are steadier than the absolute times.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup_rounds):
        for loop, count in loops:
            timed(loop, count)
    samples: list[list[float]] = [[] for _ in loops]
    for _ in range(repeats):
        for i, (loop, count) in enumerate(loops):
            samples[i].append(timed(loop, count) / count)
    return [summarize(s) for s in samples]
