"""The bench harness: statistics, calibration, selection, floors, peers, errors and JSON rows."""

import orjson
import pytest

from haperf.bench import report
from haperf.bench.registry import Benchmark, Op, Peer, all_benchmarks, register
from haperf.bench.run import RunConfig, run, select
from haperf.bench.targets import TARGETS
from haperf.bench.timing import calibrate, make_loop, measure_interleaved, summarize
from haperf.errors import ConfigError


def test_summarize_median_quartiles_and_spread() -> None:
    stats = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert stats.median_ns == 3.0
    assert (stats.min_ns, stats.max_ns) == (1.0, 5.0)
    assert (stats.q1_ns, stats.q3_ns) == (2.0, 4.0)
    assert stats.spread_pct == pytest.approx(100 * 2 / 3)
    assert summarize([7.0]).spread_pct == 0.0
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


class FakeClock:
    """A clock that advances a fixed number of ns per operation call, for exact timings."""

    def __init__(self, ns_per_call: int) -> None:
        self.now = 0
        self.ns_per_call = ns_per_call

    def __call__(self) -> int:
        return self.now

    def op(self, *_args: object) -> None:
        self.now += self.ns_per_call


@pytest.mark.parametrize("args", [(), (1,), (1, 2)])
def test_loop_times_every_arity_exactly(args: tuple[int, ...]) -> None:
    clock = FakeClock(ns_per_call=7)
    loop = make_loop(Op(clock.op, args), clock=clock)
    assert loop(1000) == 7000


def test_op_rejects_too_many_arguments() -> None:
    with pytest.raises(ValueError, match="at most 2"):
        Op(print, (1, 2, 3))


def test_calibrate_reaches_the_repeat_time() -> None:
    clock = FakeClock(ns_per_call=3)
    loop = make_loop(Op(clock.op), clock=clock)
    loops = calibrate(loop, repeat_ns=1_000_000)
    assert loops * 3 >= 1_000_000
    assert loops * 3 < 20 * 1_000_000  # overshoots by at most the growth factor
    with pytest.raises(ValueError, match="positive"):
        calibrate(loop, 0)


def test_interleaved_measurement_keeps_each_operation_apart() -> None:
    fast, slow = FakeClock(2), FakeClock(10)
    stats = measure_interleaved(
        [(make_loop(Op(fast.op), clock=fast), 100), (make_loop(Op(slow.op), clock=slow), 50)],
        repeats=3,
    )
    assert [s.median_ns for s in stats] == [2.0, 10.0]
    assert all(s.repeats == 3 for s in stats)


def test_warmup_rounds_run_but_are_not_counted() -> None:
    calls: list[int] = []

    def loop(n: int) -> int:
        calls.append(n)
        return 5 * n if len(calls) > 2 else 1000 * n  # the first two rounds are "cold"

    (stats,) = measure_interleaved([(loop, 10)], repeats=3, warmup_rounds=2)
    assert calls == [10] * 5
    assert stats.max_ns == 5.0


def _noop(_x: object) -> None:
    return None


def _missing_peer() -> Op:
    raise ImportError("no module named 'nonexistent_peer'", name="nonexistent_peer")


def _broken_setup() -> Op:
    raise RuntimeError("setup exploded")


FLOOR = Benchmark("t.floor", "t", "floor", lambda: Op(_noop, (1,)), floor=None, is_floor=True)
SUBJECT = Benchmark(
    "t.subject",
    "t",
    "subject",
    lambda: Op(sum, ((1, 2, 3),)),
    floor="t.floor",
    bytes_per_op=24,
    peers=(
        Peer("builtin-len", lambda: Op(len, ((1, 2, 3),))),
        Peer("absent", _missing_peer),
    ),
)
BROKEN = Benchmark("t.broken", "t", "broken", _broken_setup, floor="t.floor")
UNIVERSE = [FLOOR, SUBJECT, BROKEN]
FAST = {"repeats": 3, "repeat_ms": 0.2}


def test_run_measures_floor_first_and_reports_ratios() -> None:
    results = run(RunConfig(compare=True, patterns=("t.subject",), **FAST), benchmarks=UNIVERSE)
    assert [r.benchmark.name for r in results] == ["t.floor", "t.subject"]
    floor, subject = results
    assert floor.stats is not None and subject.stats is not None
    assert subject.floor_stats is not None and subject.floor_stats is not floor.stats
    assert subject.ratio_to_floor == pytest.approx(
        subject.stats.median_ns / subject.floor_stats.median_ns
    )
    assert subject.gb_per_s == pytest.approx(24 / subject.stats.median_ns)
    present, absent = subject.peers
    assert present.stats is not None and subject.peer_ratio(present) is not None
    assert absent.stats is None and absent.unavailable is not None
    assert "nonexistent_peer" in absent.unavailable


def test_peers_only_run_with_compare() -> None:
    results = run(RunConfig(patterns=("t.subject",), **FAST), benchmarks=UNIVERSE)
    assert results[1].peers == []


def test_failing_setup_becomes_an_error_row() -> None:
    results = run(RunConfig(patterns=("t.broken",), **FAST), benchmarks=UNIVERSE)
    broken = results[-1]
    assert broken.stats is None
    assert broken.error == "RuntimeError: setup exploded"
    row = report.result_row(broken)
    assert row["ns_per_op"] is None and row["error"] == "RuntimeError: setup exploded"


def test_select_by_group_and_glob_and_unknown_pattern() -> None:
    assert [b.name for b in select(["t"], UNIVERSE)] == ["t.floor", "t.subject", "t.broken"]
    assert [b.name for b in select(["t.s*"], UNIVERSE)] == ["t.subject"]
    with pytest.raises(ConfigError, match="matches no benchmark; groups are t"):
        select(["nope"], UNIVERSE)


def test_config_validates_its_bounds() -> None:
    with pytest.raises(ConfigError, match="repeats"):
        RunConfig(repeats=0)
    with pytest.raises(ConfigError, match="repeat time"):
        RunConfig(repeat_ms=-1.0)
    assert RunConfig(quick=True).effective_repeats < RunConfig().effective_repeats


def test_registry_rejects_duplicates_and_bad_names() -> None:
    existing = all_benchmarks()[0]
    with pytest.raises(ValueError, match="registered twice"):
        register(existing)
    with pytest.raises(ValueError, match="must start with its group"):
        register(Benchmark("x.y", "other", "bad", lambda: Op(_noop, (1,))))


def test_registered_benchmarks_are_well_formed() -> None:
    benchmarks = all_benchmarks()
    names = {b.name for b in benchmarks}
    floors = {b.name for b in benchmarks if b.is_floor}
    assert {"floor.py_call", "floor.memcpy_1MiB", "crc32c.1MiB", "crc32c.64B"} <= names
    for b in benchmarks:
        assert b.floor is None or b.floor in floors, b.name
        assert b.is_floor == (b.floor is None), b.name


def test_known_targets_match_the_specification() -> None:
    spec = {
        "breaker.state_check": 12,
        "breaker.execute_closed": 145,
        "breaker.execute_open": 8,
        "phi.heartbeat": 127,
        "phi.calculation": 892,
        "phi.adaptive_threshold": 1200,
        "raft.single_command": 841,
        "raft.batch_100": 72_300,
        "raft.leader_election": 152_000_000,
        "raft.log_replication_per_entry": 8_200_000,
    }
    assert {name: t.target_ns for name, t in TARGETS.items()} == spec


def test_json_document_has_the_documented_fields() -> None:
    config = RunConfig(compare=True, patterns=("t.subject",), **FAST)
    results = run(config, benchmarks=UNIVERSE)
    doc = orjson.loads(report.to_json({"cpu": "test"}, config, results))
    assert set(doc) == {"machine", "config", "results", "targets"}
    row = doc["results"][1]
    for key in ("name", "group", "ns_per_op", "target_ns", "ratio_to_floor", "peer_ratios"):
        assert key in row
    assert set(row["peer_ratios"]) == {"builtin-len"}
    assert len(doc["targets"]) == len(TARGETS)


@pytest.mark.parametrize(
    ("ns", "text"),
    [(None, "-"), (12.34, "12.3 ns"), (4560.0, "4.560 us"), (152e6, "152 ms"), (2.5e9, "2.500 s")],
)
def test_format_ns(ns: float | None, text: str) -> None:
    assert report.format_ns(ns) == text


def test_ops_per_call_divides_the_per_iteration_time() -> None:
    clock = FakeClock(ns_per_call=1000)
    loop = make_loop(Op(clock.op), clock=clock)
    (whole,) = measure_interleaved([(loop, 10)], repeats=3)
    (per_item,) = measure_interleaved([(loop, 10)], repeats=3, ops_per_call=[250])
    assert whole.median_ns == 1000.0
    assert per_item.median_ns == 4.0
    with pytest.raises(ValueError, match="ops_per_call"):
        measure_interleaved([(loop, 10)], repeats=1, ops_per_call=[0])
    with pytest.raises(ValueError, match="ops_per_call"):
        Op(_noop, (1,), ops_per_call=0)


def test_async_op_awaits_inside_one_coroutine_with_the_clock_inside() -> None:
    clock = FakeClock(ns_per_call=7)
    awaited: list[int] = []

    async def step(x: int) -> None:
        awaited.append(x)
        clock.op()

    loop = make_loop(Op(step, (5,), is_async=True), clock=clock)
    assert loop(4) == 28
    assert awaited == [5, 5, 5, 5]


def test_cleanup_runs_once_and_extra_figures_are_reported() -> None:
    cleaned: list[str] = []

    def setup() -> Op:
        return Op(
            _noop,
            (1,),
            ops_per_call=2,
            cleanup=lambda: cleaned.append("done"),
            extra=lambda: {"p99_ms": 1.5},
        )

    bench = Benchmark("t.extra", "t", "extra", setup, floor="t.floor")
    results = run(RunConfig(patterns=("t.extra",), **FAST), benchmarks=[FLOOR, bench])
    assert cleaned == ["done"]
    assert results[-1].extra == {"p99_ms": 1.5}
    assert report.result_row(results[-1])["extra"] == {"p99_ms": 1.5}
    assert "t.extra: p99_ms=1.5" in report.to_table(_fake_machine(), RunConfig(**FAST), results)


def _fake_machine() -> dict[str, object]:
    return {
        "haperf": "0",
        "date_utc": "now",
        "cpu": "cpu",
        "arch": "x",
        "cores": 2,
        "usable_cores": 2,
        "os": "os",
        "python": "py",
        "build_type": "Release",
        "debug_checks": False,
        "compiler": "cc",
        "cython": "3",
        "crc32c_backend": "x",
    }


def test_a_family_name_selects_every_group_in_it() -> None:
    rows = [
        Benchmark("breaker.a", "breaker", "a", lambda: Op(_noop, (1,))),
        Benchmark("sketch.b", "sketch", "b", lambda: Op(_noop, (1,))),
        Benchmark("wal.c", "wal", "c", lambda: Op(_noop, (1,))),
    ]
    assert [b.name for b in select(["resilience"], rows)] == ["breaker.a", "sketch.b"]


def test_target_metric_compares_an_extra_figure_with_the_target() -> None:
    name = next(iter(TARGETS))
    group = TARGETS[name].group
    bench = Benchmark(
        name,
        group,
        "simulated",
        lambda: Op(_noop, (1,), extra=lambda: {"median_ns": TARGETS[name].target_ns / 2}),
        floor="t.floor",
        target_metric="median_ns",
    )
    (_, row) = run(RunConfig(patterns=(name,), **FAST), benchmarks=[FLOOR, bench])
    assert row.ratio_to_target == pytest.approx(0.5)
    assert report.result_row(row)["target_value_ns"] == TARGETS[name].target_ns / 2


def test_the_floor_is_timed_interleaved_with_each_row() -> None:
    setups: list[str] = []

    def floor_setup() -> Op:
        setups.append("floor")
        return Op(_noop, (1,))

    floor = Benchmark("t.floor", "t", "floor", floor_setup, floor=None, is_floor=True)
    row = Benchmark("t.row", "t", "row", lambda: Op(sum, ((1, 2),)), floor="t.floor")
    floor_row, measured = run(RunConfig(patterns=("t.row",), **FAST), benchmarks=[floor, row])
    assert setups == ["floor", "floor"]
    assert measured.floor_stats is not None
    assert measured.floor_stats is not floor_row.stats


def test_a_peer_whose_setup_fails_is_reported_not_fatal() -> None:
    def broken_peer() -> Op:
        raise RuntimeError("no running event loop")

    row = Benchmark(
        "t.peered",
        "t",
        "peered",
        lambda: Op(_noop, (1,)),
        floor="t.floor",
        peers=(Peer("bad", broken_peer),),
    )
    (_, measured) = run(
        RunConfig(compare=True, patterns=("t.peered",), **FAST), benchmarks=[FLOOR, row]
    )
    assert measured.stats is not None
    assert measured.peers[0].unavailable == "setup failed (RuntimeError: no running event loop)"
