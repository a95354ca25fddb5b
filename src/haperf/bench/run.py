"""Runs a selection of benchmarks and produces result rows.

Owns the order of work: select benchmarks, measure the floors they need, then each benchmark
(with its peers, interleaved, when comparing), and the ratios between them. Invariants: a
benchmark that fails to set up or run becomes an error row, never a silent gap; a peer that is
not installed is reported as unavailable, never as zero time; ratios are only computed between
measurements taken in this run.
"""

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from haperf.bench.registry import GROUP_FAMILIES, Benchmark, Op, all_benchmarks
from haperf.bench.timing import Stats, calibrate, make_loop, measure_interleaved
from haperf.errors import ConfigError

QUICK_REPEATS = 5
FULL_REPEATS = 11
QUICK_REPEAT_MS = 2.0
FULL_REPEAT_MS = 20.0
REPEATS_MAX = 1_000
REPEAT_MS_MAX = 10_000.0

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What to run and how long. Unset repeats / repeat_ms take the quick or full default."""

    quick: bool = False
    compare: bool = False
    patterns: tuple[str, ...] = ()
    repeats: int | None = None
    repeat_ms: float | None = None

    def __post_init__(self) -> None:
        if self.repeats is not None and not 1 <= self.repeats <= REPEATS_MAX:
            raise ConfigError(f"repeats must be in 1..{REPEATS_MAX}, got {self.repeats}")
        if self.repeat_ms is not None and not 0 < self.repeat_ms <= REPEAT_MS_MAX:
            raise ConfigError(
                f"repeat time must be in (0, {REPEAT_MS_MAX:g}] ms, got {self.repeat_ms}"
            )

    @property
    def effective_repeats(self) -> int:
        if self.repeats is not None:
            return self.repeats
        return QUICK_REPEATS if self.quick else FULL_REPEATS

    @property
    def repeat_ns(self) -> int:
        ms = self.repeat_ms
        if ms is None:
            ms = QUICK_REPEAT_MS if self.quick else FULL_REPEAT_MS
        return max(1, int(ms * 1e6))


@dataclass(slots=True)
class PeerResult:
    name: str
    note: str
    stats: Stats | None = None
    unavailable: str | None = None


@dataclass(slots=True)
class Result:
    benchmark: Benchmark
    stats: Stats | None = None
    loops: int = 0
    floor_stats: Stats | None = None
    peers: list[PeerResult] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio_to_floor(self) -> float | None:
        if self.stats is None or self.floor_stats is None or self.floor_stats.median_ns <= 0:
            return None
        return self.stats.median_ns / self.floor_stats.median_ns

    @property
    def target_value_ns(self) -> float | None:
        """What the target is compared with: the median time, or the row's target_metric."""
        metric = self.benchmark.target_metric
        if metric is not None:
            return self.extra.get(metric)
        return None if self.stats is None else self.stats.median_ns

    @property
    def ratio_to_target(self) -> float | None:
        target, value = self.benchmark.target_ns, self.target_value_ns
        if value is None or target is None or self.stats is None:
            return None
        return value / target

    @property
    def gb_per_s(self) -> float | None:
        size = self.benchmark.bytes_per_op
        if self.stats is None or size is None or self.stats.median_ns <= 0:
            return None
        return size / self.stats.median_ns  # bytes per ns == GB/s

    def peer_ratio(self, peer: PeerResult) -> float | None:
        """haperf time / peer time: below 1 means haperf is faster."""
        if self.stats is None or peer.stats is None or peer.stats.median_ns <= 0:
            return None
        return self.stats.median_ns / peer.stats.median_ns


def select(patterns: Sequence[str], benchmarks: Sequence[Benchmark]) -> list[Benchmark]:
    """Benchmarks whose group equals a pattern or whose name matches it (shell-style glob).

    A family name (GROUP_FAMILIES, e.g. 'resilience') selects every group in the family.

    No patterns selects everything. A pattern that selects nothing is a ConfigError naming the
    known groups, so a typo never silently runs an empty bench.
    """
    if not patterns:
        return list(benchmarks)
    chosen: dict[str, Benchmark] = {}
    for pattern in patterns:
        family = GROUP_FAMILIES.get(pattern, ())
        hits = [
            b
            for b in benchmarks
            if b.group == pattern or b.group in family or fnmatch.fnmatchcase(b.name, pattern)
        ]
        if not hits:
            known = sorted({b.group for b in benchmarks})
            raise ConfigError(
                f"--filter {pattern!r} matches no benchmark; groups are {', '.join(known)} "
                "(or give a name glob such as 'crc32c.*')"
            )
        for b in hits:
            chosen.setdefault(b.name, b)
    return [b for b in benchmarks if b.name in chosen]


def _with_floors(selected: list[Benchmark], universe: Sequence[Benchmark]) -> list[Benchmark]:
    """The selection plus every floor row it refers to, floors first."""
    by_name = {b.name: b for b in universe}
    needed: dict[str, Benchmark] = {}
    for b in selected:
        if b.floor is not None:
            floor = by_name.get(b.floor)
            if floor is None or not floor.is_floor:
                raise ValueError(f"benchmark {b.name!r} names unknown floor {b.floor!r}")
            if floor.is_available():
                needed.setdefault(floor.name, floor)
    floors = [b for b in universe if b.name in needed or (b.is_floor and b in selected)]
    rest = [b for b in selected if not b.is_floor]
    return floors + rest


@dataclass(slots=True)
class _Prepared:
    loop: Callable[[int], int]
    loops: int
    op: Op


def _prepare(setup: Callable[[], Op], repeat_ns: int) -> _Prepared:
    op = setup()
    try:
        loop = make_loop(op)
        loops = calibrate(loop, repeat_ns)
    except BaseException:
        _cleanup([op])
        raise
    return _Prepared(loop, loops, op)


def _cleanup(ops: Sequence[Op]) -> None:
    for op in ops:
        if op.cleanup is not None:
            op.cleanup()


def _measure(
    bench: Benchmark, result: Result, config: RunConfig, floor: Benchmark | None = None
) -> None:
    """Time one row, its floor and its peers interleaved; errors become the row's error text.

    The floor is timed in the same rounds as the row, so a noisy neighbour's burst slows both
    alike and the ratio to the floor stays honest on a shared machine.
    """
    try:
        main = _prepare(bench.setup, config.repeat_ns)
    except Exception as exc:  # noqa: BLE001 - reported as an error row, run goes on
        result.error = f"{type(exc).__name__}: {exc}"
        return
    contenders = [main]
    measured_peers: list[PeerResult] = []
    try:
        has_floor = False
        if floor is not None:
            try:
                contenders.append(_prepare(floor.setup, config.repeat_ns))
                has_floor = True
            except Exception:  # noqa: BLE001 - the separately measured floor row is used
                has_floor = False
        if config.compare:
            for peer in bench.peers:
                peer_result = PeerResult(name=peer.name, note=peer.note)
                result.peers.append(peer_result)
                try:
                    contenders.append(_prepare(peer.setup, config.repeat_ns))
                except ImportError as exc:
                    peer_result.unavailable = f"not installed ({exc.name or exc})"
                    continue
                except Exception as exc:  # noqa: BLE001 - a broken peer does not stop the run
                    peer_result.unavailable = f"setup failed ({type(exc).__name__}: {exc})"
                    continue
                measured_peers.append(peer_result)
        try:
            stats = measure_interleaved(
                [(c.loop, c.loops) for c in contenders],
                config.effective_repeats,
                ops_per_call=[c.op.ops_per_call for c in contenders],
            )
            if main.op.extra is not None:
                result.extra = dict(main.op.extra())
        except Exception as exc:  # noqa: BLE001 - reported as an error row, run goes on
            result.error = f"{type(exc).__name__}: {exc}"
            return
        result.stats, result.loops = stats[0], main.loops
        rest = stats[1:]
        if has_floor:
            result.floor_stats, rest = rest[0], rest[1:]
        for peer_result, peer_stats in zip(measured_peers, rest, strict=True):
            peer_result.stats = peer_stats
    finally:
        _cleanup([c.op for c in contenders])


def run(
    config: RunConfig,
    progress: Progress | None = None,
    benchmarks: Sequence[Benchmark] | None = None,
) -> list[Result]:
    """Measure the selected benchmarks (and their floors); return one Result per row.

    `benchmarks` replaces the global registry (tests use it); floors are looked up in it too.
    """
    universe = all_benchmarks() if benchmarks is None else list(benchmarks)
    rows = _with_floors(select(config.patterns, universe), universe)
    by_name = {b.name: b for b in universe}
    results: dict[str, Result] = {}
    for i, bench in enumerate(rows):
        if progress is not None:
            progress(i + 1, len(rows), bench.name)
        result = Result(benchmark=bench)
        results[bench.name] = result
        if not bench.is_available():
            result.error = "unavailable on this machine"
            continue
        floor = by_name.get(bench.floor) if bench.floor is not None else None
        if floor is not None and (bench.is_floor or not floor.is_available()):
            floor = None
        _measure(bench, result, config, floor)
    for result in results.values():
        floor_name = result.benchmark.floor
        if (
            floor_name is not None
            and floor_name in results
            and not result.benchmark.is_floor
            and result.floor_stats is None
        ):
            result.floor_stats = results[floor_name].stats
    return list(results.values())
