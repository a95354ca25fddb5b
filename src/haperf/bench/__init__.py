"""haperf.bench: the benchmark harness behind `python -m haperf bench`.

Owns the registry of benchmarks, the timing method (warm-up, calibrated loops, median of
repeats), the floors measured in the same run, peer comparisons and the report. Every
capability plugs in by registering benchmarks in a module under haperf.bench.suites.

Invariant: speed is only ever reported as a measurement with its spread and its ratio to a
floor, target or peer measured in the same process; nothing here passes or fails on speed.
"""

from haperf.bench.registry import Benchmark, Op, Peer, all_benchmarks, register
from haperf.bench.run import RunConfig, run
from haperf.bench.targets import TARGETS, Target

__all__ = [
    "TARGETS",
    "Benchmark",
    "Op",
    "Peer",
    "RunConfig",
    "Target",
    "all_benchmarks",
    "register",
    "run",
]
