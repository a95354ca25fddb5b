"""Budgets: the latency sketch against exact quantiles (hypothesis), merge, bounded bins and
collapse; LatencyBudget windows and threshold events; ErrorBudget burn rates, the SRE
workbook's multi-window alerts on synthetic traffic, and budget gating."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native.sketch import LatencySketch
from haperf.errors import ConfigError
from haperf.resilience import (
    SRE_WORKBOOK_ALERTS,
    BurnRateAlert,
    ErrorBudget,
    LatencyBudget,
    LatencyThreshold,
)
from haperf.resilience.budget import DAY_NS, HOUR_NS, MINUTE_NS
from tests.resilience.vloop_limits import FakeClock

QUANTILES = (0.5, 0.9, 0.99, 0.999)
latencies = st.lists(
    st.one_of(
        st.integers(1, 10**12),
        st.floats(1e-3, 1e12, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=3000,
)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@given(latencies)
def test_relative_error_within_one_percent(values: list[float]) -> None:
    sketch = LatencySketch(0.01)
    for v in values:
        sketch.record(v)
    for q in QUANTILES:
        want = exact(values, q)
        got = sketch.quantile(q)
        assert got is not None
        assert abs(got - want) <= 0.01 * want * (1 + 1e-9), (q, want, got)
    assert sketch.count == len(values) and sketch.collapsed == 0
    assert sketch.min == min(values) and sketch.max == max(values)


@given(latencies, latencies)
def test_merge_equals_sketch_of_the_union(a: list[float], b: list[float]) -> None:
    sa, sb, su = LatencySketch(), LatencySketch(), LatencySketch()
    for v in a:
        sa.record(v)
        su.record(v)
    for v in b:
        sb.record(v)
        su.record(v)
    sa.merge(sb)
    assert sa.count == su.count and sa.min == su.min and sa.max == su.max
    for q in (0.0, *QUANTILES, 1.0):
        assert sa.quantile(q) == su.quantile(q)
        want = exact(a + b, q)
        assert abs(sa.quantile(q) - want) <= 0.01 * want * (1 + 1e-9)  # type: ignore[operator]


def test_zero_and_bad_values() -> None:
    sketch = LatencySketch()
    assert sketch.quantile(0.5) is None
    sketch.record(0)
    sketch.record(0)
    sketch.record(100)
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == pytest.approx(100, rel=0.01)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            sketch.record(bad)
    with pytest.raises(ValueError):
        sketch.quantile(1.5)
    with pytest.raises(ValueError):
        sketch.merge(LatencySketch(0.02))
    with pytest.raises(ValueError):
        sketch.merge(sketch)


def test_bins_are_bounded_and_collapse_only_the_lowest() -> None:
    sketch = LatencySketch(0.01, bins_max=64)
    values = [1.05**i for i in range(2000)]  # spans far more than 64 buckets
    for v in values:
        sketch.record(v)
    assert sketch.bins_used <= 64
    assert sketch.collapsed > 0
    # Quantiles in the uncollapsed top of the range keep the guarantee.
    for q in (0.99, 0.999, 1.0):
        want = exact(values, q)
        assert abs(sketch.quantile(q) - want) <= 0.01 * want * (1 + 1e-9)  # type: ignore[operator]
    # A value below the window joins the lowest kept bucket, it is not lost.
    sketch.record(1.0)
    assert sketch.count == 2001 and sketch.bins_used <= 64


def test_window_slides_down_without_collapse_when_it_fits() -> None:
    sketch = LatencySketch(0.01, bins_max=128)
    sketch.record(1e6)
    sketch.record(1e6 / 1.5)  # ~20 buckets lower: the window moves, nothing collapses
    sketch.record(1e6 * 1.5)
    assert sketch.collapsed == 0 and sketch.quantile(0.0) == pytest.approx(1e6 / 1.5, rel=0.01)


def test_latency_budget_thresholds_fire_breach_then_recover() -> None:
    clock = FakeClock()
    events = []
    budget = LatencyBudget(
        window_ns=10**9,
        thresholds=[LatencyThreshold(0.99, 50_000_000)],
        on_event=events.append,
        evaluate_every=100,
        samples_min=50,
        clock=clock,
    )
    for _ in range(500):
        budget.record(10_000_000)
    assert events == []
    for _ in range(300):
        budget.record(80_000_000)
    assert [e.kind for e in events] == ["breach"]
    assert events[0].value_ns == pytest.approx(80_000_000, rel=0.01)
    assert budget.breached() == [LatencyThreshold(0.99, 50_000_000)]
    # Two windows later the slow samples are gone.
    clock.advance(2 * 10**9)
    for _ in range(100):
        budget.record(10_000_000)
    assert [e.kind for e in events] == ["breach", "recover"]
    assert budget.metrics()["breached"] == 0


def test_latency_budget_window_keeps_current_and_previous() -> None:
    clock = FakeClock()
    budget = LatencyBudget(window_ns=1000, samples_min=1, clock=clock)
    budget.record(5)
    clock.advance(1000)
    budget.record(7)
    assert budget.count() == 2
    clock.advance(1000)
    assert budget.count() == 1
    clock.advance(5000)
    assert budget.count() == 0 and budget.quantile_ns(0.5) is None
    assert budget.is_slow(100, 0.5, default_ns=50)


def test_latency_budget_decorator_times_calls() -> None:
    clock = FakeClock()
    budget = LatencyBudget(samples_min=1, clock=clock)

    @budget
    def work() -> None:
        clock.advance(3_000_000)

    for _ in range(10):
        work()
    assert budget.quantile_ns(0.5) == pytest.approx(3_000_000, rel=0.01)
    assert budget.metrics()["calls"] == 10


def test_sre_workbook_alert_table() -> None:
    table = [
        (a.long_window_ns, a.short_window_ns, a.burn_rate, a.severity) for a in SRE_WORKBOOK_ALERTS
    ]
    assert table == [
        (HOUR_NS, 5 * MINUTE_NS, 14.4, "page"),
        (6 * HOUR_NS, 30 * MINUTE_NS, 6.0, "page"),
        (3 * DAY_NS, 6 * HOUR_NS, 1.0, "ticket"),
    ]
    # 14.4x for 1 h spends 2% of a 30-day budget; 6x for 6 h, 5%; 1x for 3 days, 10%.
    assert [
        round(a.burn_rate * a.long_window_ns / (30 * DAY_NS), 3) for a in SRE_WORKBOOK_ALERTS
    ] == [
        0.02,
        0.05,
        0.1,
    ]


def traffic(budget: ErrorBudget, clock: FakeClock, minutes: int, error_rate: float) -> None:
    """One minute at a time: 1000 calls per minute with the given error rate."""
    for _ in range(minutes):
        bad = round(1000 * error_rate)
        budget.record(False, bad)
        budget.record(True, 1000 - bad)
        clock.advance(MINUTE_NS)


def test_fast_burn_pages_within_minutes_and_resolves() -> None:
    clock = FakeClock()
    events = []
    budget = ErrorBudget(0.999, on_alert=events.append, evaluate_every_ns=MINUTE_NS, clock=clock)
    traffic(budget, clock, 120, 0.0)
    assert budget.evaluate() == [] and budget.firing() == []
    # 2% errors = 20x burn: both the 1 h and 5 min windows exceed 14.4x after ~45 min.
    traffic(budget, clock, 60, 0.02)
    names = [(e.kind, e.alert.name) for e in events]
    assert ("firing", "page_fast_burn") in names
    assert budget.burn_rate(5 * MINUTE_NS) == pytest.approx(20.0, rel=0.05)
    # Errors stop: the short window clears first, which resolves the page quickly even though
    # the 1 h window still burns above 14.4x.
    traffic(budget, clock, 6, 0.0)
    budget.evaluate()
    assert budget.burn_rate(HOUR_NS) > 14.4 * 0.5
    assert "page_fast_burn" not in [a.name for a in budget.firing()]
    assert ("resolved", "page_fast_burn") in [(e.kind, e.alert.name) for e in events]


def test_short_spike_alone_does_not_page() -> None:
    clock = FakeClock()
    budget = ErrorBudget(0.999, evaluate_every_ns=MINUTE_NS, clock=clock)
    traffic(budget, clock, 120, 0.0)
    traffic(budget, clock, 3, 0.05)  # 50x for 3 minutes: the 1 h window stays below 14.4x
    budget.evaluate()
    assert budget.burn_rate(5 * MINUTE_NS) > 14.4
    assert budget.burn_rate(HOUR_NS) < 14.4
    # No page; (the 1x ticket does fire: with only two hours of history, 150 errors in 123,000
    # calls already burn 1.2x over its 3-day and 6-hour windows.)
    assert [a.severity for a in budget.firing()] == ["ticket"]


def test_slow_burn_pages_on_the_six_hour_alert() -> None:
    clock = FakeClock()
    budget = ErrorBudget(0.999, evaluate_every_ns=10 * MINUTE_NS, clock=clock)
    traffic(budget, clock, 7 * 60, 0.008)  # 8x: above 6x, below 14.4x
    budget.evaluate()
    assert [a.name for a in budget.firing()] == ["page_slow_burn", "ticket"]


def test_exhausted_budget_gates_retries() -> None:
    clock = FakeClock()
    budget = ErrorBudget(0.99, 10 * HOUR_NS, alerts=(), requests_min=100, clock=clock)
    budget.record(False, 5)
    assert budget.allows_retry()  # below requests_min
    budget.record(True, 995)
    assert budget.remaining() == pytest.approx(0.5)
    assert budget.allows_retry()
    budget.record(False, 20)
    assert budget.remaining() < 0 and not budget.allows_retry() and not budget.allows_hedge()
    # The budget comes back when the window slides past the failures.
    clock.advance(11 * HOUR_NS)
    budget.record(True, 100)
    assert budget.remaining() == 1.0 and budget.allows_retry()
    m = budget.metrics()
    assert m["calls"] == 100 and m["exhausted"] == 0
    assert budget.burn_rate(10 * HOUR_NS) == 0.0
    with pytest.raises(ConfigError, match="SLO window"):
        budget.burn_rate(11 * HOUR_NS)


def test_error_budget_decorator_counts_outcomes() -> None:
    clock = FakeClock()
    budget = ErrorBudget(0.9, HOUR_NS, alerts=(), clock=clock, errors=(OSError,))

    @budget
    def call(fail: bool) -> int:
        if fail:
            raise OSError("x")
        return 1

    call(False)
    with pytest.raises(OSError):
        call(True)
    assert budget.metrics()["failures"] == 1 and budget.metrics()["successes"] == 1


@pytest.mark.parametrize(
    "build",
    [
        lambda: ErrorBudget(1.0),
        lambda: ErrorBudget(0.0),
        lambda: ErrorBudget(1.5),
        lambda: ErrorBudget(0.999, HOUR_NS),  # the 3-day alert exceeds a 1 h SLO window
        lambda: BurnRateAlert("x", MINUTE_NS, HOUR_NS, 2.0, "page"),
        lambda: BurnRateAlert("x", HOUR_NS, MINUTE_NS, -1.0, "page"),
        lambda: BurnRateAlert("x", HOUR_NS, MINUTE_NS, 1.0, "email"),  # type: ignore[arg-type]
        lambda: LatencyThreshold(1.5, 10),
        lambda: LatencyThreshold(0.99, 0),
        lambda: LatencyBudget(relative_accuracy=0.0),
        lambda: LatencyBudget(bins_max=4),
        lambda: LatencyBudget(window_ns=0),
        lambda: ErrorBudget(0.999, bucket_ns=1),  # too many buckets
    ],
)
def test_bad_configuration(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_slow_call_threshold_follows_the_quantile() -> None:
    clock = FakeClock()
    budget = LatencyBudget(samples_min=10, evaluate_every=50, clock=clock)
    assert budget.is_slow(60_000_000, 0.9, default_ns=50_000_000)  # default until samples
    for i in range(100):
        budget.record((i + 1) * 1_000_000)  # 1..100 ms
    # Evaluated at 50 and 100 records: p90 is now ~90 ms.
    assert not budget.is_slow(85_000_000, 0.9, default_ns=50_000_000)
    assert budget.is_slow(95_000_000, 0.9, default_ns=50_000_000)


@given(
    st.lists(
        st.floats(1e-6, 1e15, allow_nan=False, allow_infinity=False), min_size=1, max_size=500
    ),
    st.integers(16, 64),
)
def test_collapse_keeps_count_and_bound_and_top_quantile(values: list[float], bins: int) -> None:
    sketch = LatencySketch(0.01, bins_max=bins)
    for v in values:
        sketch.record(v)
    assert sketch.count == len(values) and sketch.bins_used <= bins
    # The maximum always lives in the highest bucket, which never collapses.
    top = sketch.quantile(1.0)
    assert top is not None and abs(top - max(values)) <= 0.01 * max(values) * (1 + 1e-9)
    if sketch.collapsed == 0:
        for q in QUANTILES:
            want = exact(values, q)
            assert abs(sketch.quantile(q) - want) <= 0.01 * want * (1 + 1e-9)  # type: ignore[operator]
