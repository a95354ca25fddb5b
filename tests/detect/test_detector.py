"""PhiAccrualDetector: window bookkeeping, exactness, bad input, states and transitions.

Every test drives virtual time (explicit int ns or a fake clock); nothing sleeps or times itself.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.detect import (
    ALIVE,
    FAILED,
    INTERVAL_NS_MAX,
    SUSPECT,
    WINDOW_SIZE_MAX,
    NodeState,
    PhiAccrualDetector,
)
from haperf.errors import ConfigError, DetectorInputError
from tests.detect.reference import PlainDetector, exact_moments

MS = 1_000_000
S = 1_000_000_000


def test_first_heartbeat_estimate_seeds_the_window_like_akka() -> None:
    d = PhiAccrualDetector(first_heartbeat_estimate_ns=1000 * MS)
    assert list(d.intervals_ns()) == [750 * MS, 1250 * MS]
    assert d.mean_ns == 1000 * MS
    assert d.std_deviation_ns == 250 * MS
    assert d.last_heartbeat_ns is None
    d.heartbeat(7)
    assert d.sample_count == 2 and d.last_heartbeat_ns == 7  # the first arrival adds no interval


def test_window_overflow_keeps_only_the_last_window_size_intervals() -> None:
    d = PhiAccrualDetector(window_size=5)
    t = 0
    d.heartbeat(t)
    for i in range(1, 13):
        t += i * MS
        d.heartbeat(t)
    assert list(d.intervals_ns()) == [i * MS for i in range(8, 13)]
    assert d.window_sum_ns == sum(i * MS for i in range(8, 13))
    assert d.window_sum_squares_ns2 == sum((i * MS) ** 2 for i in range(8, 13))
    assert d.mean_ns == 10 * MS


@given(
    window=st.integers(1, 40),
    intervals=st.lists(st.integers(0, INTERVAL_NS_MAX), min_size=1, max_size=200),
)
def test_window_sums_are_exact(window: int, intervals: list[int]) -> None:
    d = PhiAccrualDetector(window_size=window)
    ref = PlainDetector(window, d.first_heartbeat_estimate_ns, 1.0, 0.0)
    t = 0
    d.heartbeat(t)
    ref.heartbeat(t)
    for x in intervals:
        t += x
        d.heartbeat(t)
        ref.heartbeat(t)
    assert list(d.intervals_ns()) == ref.intervals
    assert d.window_sum_ns == sum(ref.intervals)
    assert d.window_sum_squares_ns2 == sum(x * x for x in ref.intervals)
    mean, var = exact_moments(ref.intervals)
    assert d.mean_ns == float(mean)
    assert d.std_deviation_ns == pytest.approx(math.sqrt(var), rel=1e-15, abs=0)


def test_moments_stay_exact_after_ten_million_heartbeats() -> None:
    # Intervals near the top of the range with a large spread: a running-sum-of-doubles detector
    # drifts by many ulps here; integer sums cannot drift, and a fresh recomputation agrees.
    rng = np.random.default_rng(20261122)
    d = PhiAccrualDetector(window_size=200)
    n = 10_000_000
    chunk = 1_000_000
    t = 0
    d.heartbeat(t)
    for _ in range(n // chunk):
        intervals = rng.integers(0, INTERVAL_NS_MAX, chunk, dtype=np.int64, endpoint=True)
        intervals[::7] = rng.integers(0, 1000, len(intervals[::7]))  # tiny ones mixed in
        times = t + np.cumsum(intervals)
        t = int(times[-1])
        assert d.heartbeat_array(times) == chunk
    assert d.heartbeats == n + 1
    window = [int(x) for x in d.intervals_ns()]
    assert len(window) == 200
    assert d.window_sum_ns == sum(window)
    assert d.window_sum_squares_ns2 == sum(x * x for x in window)
    mean, var = exact_moments(window)
    assert d.mean_ns == float(mean)
    assert Fraction(d.std_deviation_ns) ** 2 == pytest.approx(var, rel=1e-15)


def test_bursts_zero_intervals_and_zero_variance() -> None:
    d = PhiAccrualDetector(window_size=4, min_std_deviation_ns=10 * MS)
    for _ in range(10):
        assert d.heartbeat(5 * S)  # a burst: equal times are zero intervals, accepted
    assert list(d.intervals_ns()) == [0, 0, 0, 0]
    assert d.mean_ns == 0.0 and d.std_deviation_ns == 0.0
    # zero variance falls back to min_std_deviation_ns: phi is still finite and monotone
    values = [d.phi(5 * S + k * MS) for k in range(0, 200)]
    assert values[0] == pytest.approx(math.log10(2), rel=1e-12)
    assert all(math.isfinite(v) for v in values)
    assert values == sorted(values)
    e = PhiAccrualDetector(window_size=4, distribution="exponential")
    for _ in range(6):
        e.heartbeat(0)
    assert e.mean_ns == 0.0
    assert math.isfinite(e.phi(10**18)) and e.phi(10**18) > 0  # mean floored at 1 ns


def test_long_pause_is_clamped_and_keeps_phi_finite() -> None:
    d = PhiAccrualDetector(window_size=3)
    d.heartbeat(0)
    d.heartbeat(2**62)  # a gap of ~146 years
    assert d.intervals_ns()[-1] == INTERVAL_NS_MAX
    assert math.isfinite(d.phi(2**63 - 1))
    assert d.state(2**62 + 1) == ALIVE  # the arrival itself brought the node back


def test_time_going_backwards_is_ignored_and_counted() -> None:
    d = PhiAccrualDetector()
    assert d.heartbeat(10 * S)
    before = (list(d.intervals_ns()), d.last_heartbeat_ns)
    assert d.heartbeat(9 * S) is False
    assert d.heartbeat(-(2**63)) is False
    assert d.ignored_backwards == 2 and d.heartbeats == 1
    assert (list(d.intervals_ns()), d.last_heartbeat_ns) == before
    assert d.heartbeat(11 * S)
    assert d.intervals_ns()[-1] == S


def test_heartbeat_array_rejects_unequal_phi_out() -> None:
    d = PhiAccrualDetector()
    with pytest.raises(DetectorInputError):
        d.heartbeat_array(np.arange(3, dtype=np.int64), np.empty(2))


@pytest.mark.parametrize("bad", [math.nan, 1.5, "1", None, math.inf])
def test_non_integer_times_are_rejected_with_type_error(bad: object) -> None:
    d = PhiAccrualDetector()
    d.heartbeat(0)
    with pytest.raises(TypeError):
        d.heartbeat(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        d.phi(bad)  # type: ignore[arg-type]
    assert d.heartbeats == 1


def test_float_arrays_are_rejected() -> None:
    d = PhiAccrualDetector()
    with pytest.raises(ValueError, match="dtype"):
        d.heartbeat_array(np.array([0.0, math.nan]))  # type: ignore[arg-type]
    assert d.heartbeats == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": math.nan},
        {"threshold": 0.0},
        {"threshold": math.inf},
        {"failed_threshold": 4.0},
        {"failed_threshold": math.nan},
        {"window_size": 0},
        {"window_size": WINDOW_SIZE_MAX + 1},
        {"min_std_deviation_ns": 0},
        {"acceptable_heartbeat_pause_ns": -1},
        {"first_heartbeat_estimate_ns": 0},
        {"first_heartbeat_estimate_ns": INTERVAL_NS_MAX + 1},
        {"distribution": "weibull"},
        {"tail_weight": 0.0},
        {"tail_weight": math.nan},
        {"target_false_suspicion_rate": 0.0},
        {"target_false_suspicion_rate": math.nan},
        {"target_false_suspicion_rate": 0.01, "adaptive_threshold_min": 9.0},
        {"on_transition": 3},
        {"clock": "now"},
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]


def test_states_and_transitions_are_reported_once() -> None:
    seen: list[tuple[NodeState, NodeState, int, float]] = []
    d = PhiAccrualDetector(
        threshold=3.0,
        failed_threshold=10.0,
        min_std_deviation_ns=50 * MS,
        on_transition=lambda old, new, now, phi: seen.append((old, new, now, phi)),
    )
    t = 0
    for _ in range(20):
        d.heartbeat(t)
        t += S
    last = t - S
    assert d.state(last + S) == ALIVE
    # phi rises through 3 and then 10 as time passes with no heartbeat
    times = [last + S + k * 10 * MS for k in range(0, 100)]
    states = [d.state(x) for x in times]
    assert states[0] == ALIVE and states[-1] == FAILED
    assert SUSPECT in states
    assert [(o, n) for o, n, _, _ in seen] == [(ALIVE, SUSPECT), (SUSPECT, FAILED)]
    for _, new, now, phi in seen:
        assert phi == d.phi(now)
        assert phi >= (3.0 if new == SUSPECT else 10.0)
    assert d.current_state == FAILED
    d.heartbeat(times[-1])  # back: reported by the heartbeat itself
    assert seen[-1][:2] == (FAILED, ALIVE)
    assert len(seen) == 3


def test_a_raising_callback_propagates_and_state_is_kept() -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("callback failed")

    d = PhiAccrualDetector(threshold=1.0, on_transition=boom)
    d.heartbeat(0)
    with pytest.raises(RuntimeError):
        d.state(100 * S)
    assert d.current_state != ALIVE


def test_clock_methods_use_the_injected_clock() -> None:
    now = [0]
    d = PhiAccrualDetector(clock=lambda: now[0])
    for k in range(5):
        now[0] = k * S
        d.heartbeat_now()
    now[0] = 4 * S + S // 2
    assert d.phi_now() == d.phi(now[0])
    assert d.state_now() == ALIVE
    assert d.last_heartbeat_ns == 4 * S
    plain = PhiAccrualDetector()
    assert isinstance(plain.heartbeat_now(), bool)  # default clock: time.monotonic_ns


@given(
    window=st.integers(1, 30),
    steps=st.lists(st.integers(-5 * S, 5 * S), min_size=1, max_size=60),
    probe=st.integers(0, 20 * S),
)
def test_detector_matches_plain_python_reference(window: int, steps: list[int], probe: int) -> None:
    d = PhiAccrualDetector(window_size=window, min_std_deviation_ns=MS)
    ref = PlainDetector(window, d.first_heartbeat_estimate_ns, float(MS), 0.0)
    t = 10 * S
    for step in steps:
        t += step
        assert d.heartbeat(t) == ref.heartbeat(t)
    assert list(d.intervals_ns()) == ref.intervals
    expected = ref.phi(t + probe)
    if expected > 250:  # Akka's form loses digits in subnormal numbers past phi ~ 300
        assert d.phi(t + probe) > 250
    else:
        assert d.phi(t + probe) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_phi_at_arrival_in_heartbeat_array() -> None:
    d = PhiAccrualDetector()
    e = PhiAccrualDetector()
    times = np.cumsum(np.full(50, S, dtype=np.int64))
    times[30] = times[29] + 3 * S  # one late arrival
    times[31:] += 3 * S
    phis = np.empty(50)
    d.heartbeat_array(times, phis)
    expected = []
    for x in times:
        expected.append(e.phi(int(x)))
        e.heartbeat(int(x))
    assert phis.tolist() == expected
    assert phis[30] == max(phis)
