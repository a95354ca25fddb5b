"""Benchmark suites, one module per capability; each registers its benchmarks on import.

Owns the list of suite modules. Invariant: load() imports each suite exactly once, in this
order, so the registry (and every report) lists floors first and groups in a stable order.
"""

import importlib

SUITES = (
    "haperf.bench.suites.floor",
    "haperf.bench.suites.crc32c",
    "haperf.bench.suites.codec",
    "haperf.bench.suites.raft",
    "haperf.bench.suites.raftnode",
    "haperf.bench.suites.sim",
    "haperf.bench.suites.wal",
    "haperf.bench.suites.raftstorage",
    "haperf.bench.suites.phi",
    "haperf.bench.suites.breaker",
    "haperf.bench.suites.retry",
    "haperf.bench.suites.limits",
    "haperf.bench.suites.transport",
    "haperf.bench.suites.lincheck",
    "haperf.bench.suites.kv",
)

_loaded = False


def load() -> None:
    global _loaded  # noqa: PLW0603 - one-time import guard for the registry
    if _loaded:
        return
    _loaded = True
    for name in SUITES:
        importlib.import_module(name)
