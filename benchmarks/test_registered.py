"""Every benchmark registered with haperf.bench, run through pytest-benchmark.

Owns nothing of its own: the operations, sizes and peers come from the same registry that
`python -m haperf bench` uses, so the two can never drift apart. A capability that registers a
benchmark appears here with no edit.
"""

import functools
from collections.abc import Callable
from typing import Any

import pytest

from haperf.bench.registry import Benchmark, Op, Peer, all_benchmarks
from haperf.bench.timing import bench_loop

BENCHMARKS = [b for b in all_benchmarks() if b.is_available()]
PEERS = [(b, p) for b in BENCHMARKS for p in b.peers]


def _one_call(op: Op) -> Callable[[], Any]:
    """One iteration of `op` as a plain call: async ops run to completion on the bench loop."""
    if op.is_async:
        loop = bench_loop()
        return lambda: loop.run_until_complete(op.fn(*op.args))
    return functools.partial(op.fn, *op.args)


def _run(benchmark: Any, bench: Benchmark, op: Op) -> None:
    benchmark.group = bench.group
    benchmark.extra_info["ops_per_call"] = op.ops_per_call
    try:
        benchmark(_one_call(op))
        if op.extra is not None:
            benchmark.extra_info.update(op.extra())
    finally:
        if op.cleanup is not None:
            op.cleanup()


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b.name for b in BENCHMARKS])
def test_haperf(benchmark: Any, bench: Benchmark) -> None:
    _run(benchmark, bench, bench.setup())


@pytest.mark.parametrize(("bench", "peer"), PEERS, ids=[f"{b.name}-vs-{p.name}" for b, p in PEERS])
def test_peer(benchmark: Any, bench: Benchmark, peer: Peer) -> None:
    try:
        op = peer.setup()
    except ImportError as exc:
        pytest.skip(f"peer {peer.name} not installed: {exc}")
    _run(benchmark, bench, op)
