"""Every benchmark registered with haperf.bench, run through pytest-benchmark.

Owns nothing of its own: the operations, sizes and peers come from the same registry that
`python -m haperf bench` uses, so the two can never drift apart. A capability that registers a
benchmark appears here with no edit.
"""

from typing import Any

import pytest

from haperf.bench.registry import Benchmark, Peer, all_benchmarks

BENCHMARKS = [b for b in all_benchmarks() if b.is_available()]
PEERS = [(b, p) for b in BENCHMARKS for p in b.peers]


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b.name for b in BENCHMARKS])
def test_haperf(benchmark: Any, bench: Benchmark) -> None:
    op = bench.setup()
    benchmark.group = bench.group
    benchmark(op.fn, *op.args)


@pytest.mark.parametrize(("bench", "peer"), PEERS, ids=[f"{b.name}-vs-{p.name}" for b, p in PEERS])
def test_peer(benchmark: Any, bench: Benchmark, peer: Peer) -> None:
    try:
        op = peer.setup()
    except ImportError as exc:
        pytest.skip(f"peer {peer.name} not installed: {exc}")
    benchmark.group = bench.group
    benchmark(op.fn, *op.args)
