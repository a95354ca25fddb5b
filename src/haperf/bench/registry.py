"""The benchmark registry: what can be measured, by name and group.

Owns Benchmark, Peer and Op and the global name -> Benchmark table. Invariants: names are
unique (a second registration of a name is an error); a benchmark's floor names another
registered benchmark marked is_floor; peers are optional and only run when their module
imports.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from haperf.bench.targets import TARGETS


@dataclass(frozen=True, slots=True)
class Op:
    """One timed operation: `fn(*args)` is what a single iteration runs (0 to 2 arguments).

    `is_async`: `fn` is an async function; each iteration is `await fn(*args)`, timed inside
    one coroutine on the shared bench event loop (haperf.bench.timing.bench_loop), so the cost of
    entering the loop is outside the timed region. `ops_per_call`: one iteration does this many
    operations (a batch of 1024 appends, 100 commands), and the row reports ns per operation.
    `cleanup` runs once after the row is measured (close files, remove temp dirs). `extra`
    returns named figures computed by the operation itself (latency percentiles, throughput),
    read once after the row is measured and reported beside it.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    is_async: bool = False
    ops_per_call: int = 1
    cleanup: Callable[[], None] | None = None
    extra: Callable[[], dict[str, float]] | None = None

    def __post_init__(self) -> None:
        if len(self.args) > 2:
            raise ValueError(f"an Op takes at most 2 arguments, got {len(self.args)}")
        if self.ops_per_call < 1:
            raise ValueError(f"ops_per_call must be >= 1, got {self.ops_per_call}")


@dataclass(frozen=True, slots=True)
class Peer:
    """Another library doing the same job; `setup` raises ImportError when it is not installed."""

    name: str
    setup: Callable[[], Op]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A registered benchmark.

    `setup` builds the operation once, outside the timed region. `floor` names the floor row
    this one is divided by. `bytes_per_op` makes the report show throughput. `target_metric`
    names an `extra` figure (in ns) that is compared with the row's target instead of the
    wall-clock time per call: a simulated election time, not the time to simulate it.
    """

    name: str
    group: str
    op: str
    setup: Callable[[], Op]
    floor: str | None = "floor.py_call"
    bytes_per_op: int | None = None
    peers: tuple[Peer, ...] = field(default_factory=tuple)
    is_floor: bool = False
    available: Callable[[], bool] | None = None
    target_metric: str | None = None

    @property
    def target_ns(self) -> float | None:
        target = TARGETS.get(self.name)
        return None if target is None else target.target_ns

    def is_available(self) -> bool:
        return self.available is None or self.available()


_REGISTRY: dict[str, Benchmark] = {}

# Names that select several groups at once with --filter (a capability spanning groups).
GROUP_FAMILIES: dict[str, tuple[str, ...]] = {
    "resilience": ("breaker", "retry", "ratelimit", "bulkhead", "timeout", "hedge", "sketch"),
}


def register(benchmark: Benchmark) -> Benchmark:
    """Add a benchmark; a duplicate name is a programming error and raises ValueError."""
    if benchmark.name in _REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    if "." not in benchmark.name or not benchmark.name.startswith(benchmark.group + "."):
        raise ValueError(
            f"benchmark name {benchmark.name!r} must start with its group {benchmark.group!r}."
        )
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def register_all(benchmarks: Iterable[Benchmark]) -> None:
    for benchmark in benchmarks:
        register(benchmark)


def all_benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in registration order (suites load on first call)."""
    from haperf.bench import suites

    suites.load()
    return list(_REGISTRY.values())


def groups() -> list[str]:
    seen: dict[str, None] = {}
    for benchmark in all_benchmarks():
        seen.setdefault(benchmark.group, None)
    return list(seen)
