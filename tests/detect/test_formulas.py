"""The phi formulas against independently computed and published values.

Published facts used: Akka's PhiAccrualFailureDetectorSpec expects phi(timeDiff, mean=1000,
sd=100) of about 0.0/0.1/0.3/1.6/4.7/10.8/15.3 at timeDiff 0/500/1000/1200/1400/1600/1700 (+-0.1),
phi(10, 0, 1) ~ 38 +- 1, and a logistic CDF within 0.001 of the normal CDF; Cassandra's phi is
dt / (mean ln 10), so phi = 1 after mean * ln 10 and phi = 8 after 8 ln 10 = 18.42 means.
The detector is put into a known window (mean, sd) by choosing its seed and heartbeats.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from haperf.detect import INTERVAL_NS_MAX, PhiAccrualDetector
from tests.detect.reference import akka_phi, cassandra_phi, hybrid_phi

MS = 1_000_000


def window_detector(mean_ms: int, sd_ms: int, **kw: object) -> tuple[PhiAccrualDetector, int]:
    """A detector whose window is exactly {mean - sd, mean + sd} ms, last heartbeat at t."""
    d = PhiAccrualDetector(window_size=2, min_std_deviation_ns=1, **kw)  # type: ignore[arg-type]
    t = 0
    d.heartbeat(t)
    for interval in ((mean_ms - sd_ms) * MS, (mean_ms + sd_ms) * MS):
        t += interval
        d.heartbeat(t)
    assert d.mean_ns == mean_ms * MS
    assert d.std_deviation_ns == sd_ms * MS
    return d, t


@pytest.mark.parametrize(
    ("time_diff_ms", "expected"),
    [(0, 0.0), (500, 0.1), (1000, 0.3), (1200, 1.6), (1400, 4.7), (1600, 10.8), (1700, 15.3)],
)
def test_normal_matches_akka_published_values(time_diff_ms: int, expected: float) -> None:
    d, t = window_detector(1000, 100)
    assert d.phi(t + time_diff_ms * MS) == pytest.approx(expected, abs=0.1)


def test_normal_outlier_matches_akka() -> None:
    # Akka: phi(10, mean 0, sd 1) is 38 +- 1 (no overflow, no precision loss).
    d, t = window_detector(1000, 1)
    assert d.phi(t + 1010 * MS) == pytest.approx(38.0, abs=1.0)


@pytest.mark.parametrize(
    ("diff_sd", "cdf"),
    [(0, 0.5), (0.6, 0.7257), (1.5, 0.9332), (2.0, 0.97725), (2.5, 0.99379), (3.5, 0.99977)],
)
def test_logistic_cdf_is_close_to_normal(diff_sd: float, cdf: float) -> None:
    d, t = window_detector(1000, 100)
    phi = d.phi(t + int((1000 + diff_sd * 100) * MS))
    assert 1.0 - 10.0 ** (-phi) == pytest.approx(cdf, abs=0.001)
    # and to the exact normal CDF
    assert 1.0 - 10.0 ** (-phi) == pytest.approx(0.5 * math.erfc(-diff_sd / math.sqrt(2)), abs=1e-3)


@given(
    mean_ms=st.integers(10, 5000),
    sd_frac=st.floats(0.01, 0.9),
    dt_frac=st.floats(0.0, 3.0),
    pause_ms=st.integers(0, 3000),
)
def test_normal_equals_akka_two_branch_form(
    mean_ms: int, sd_frac: float, dt_frac: float, pause_ms: int
) -> None:
    sd_ms = max(1, int(mean_ms * sd_frac))
    d, t = window_detector(mean_ms, sd_ms, acceptable_heartbeat_pause_ns=pause_ms * MS)
    dt = int(dt_frac * (mean_ms + pause_ms) * MS)
    y = (dt - (mean_ms + pause_ms) * MS) / (sd_ms * MS)
    # Akka's two-branch form divides subnormal numbers beyond phi ~ 300 and returns Infinity
    # past ~ 308 (the reason haperf uses the softplus form); compare where it is accurate.
    assume(y * (1.5976 + 0.070566 * y * y) < 680)
    expected = akka_phi(dt, (mean_ms + pause_ms) * MS, sd_ms * MS)
    assert d.phi(t + dt) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@given(mean_ms=st.integers(1, 10_000), dt_ms=st.integers(0, 1_000_000))
def test_exponential_matches_cassandra(mean_ms: int, dt_ms: int) -> None:
    d, t = window_detector(mean_ms, 0, distribution="exponential")
    assert d.phi(t + dt_ms * MS) == pytest.approx(
        cassandra_phi(dt_ms * MS, mean_ms * MS), rel=1e-12, abs=0
    )


def test_exponential_phi_8_after_18_42_means() -> None:
    d, t = window_detector(1000, 0, distribution="exponential")
    assert d.phi(t + int(1000 * MS * math.log(10))) == pytest.approx(1.0, rel=1e-9)
    assert d.phi(t + int(8 * 1000 * MS * math.log(10))) == pytest.approx(8.0, rel=1e-9)


@given(
    mean_ms=st.integers(50, 5000),
    sd_frac=st.floats(0.01, 0.5),
    dt_frac=st.floats(0.0, 4.0),
    log_w=st.floats(-9, -1),
)
def test_hybrid_matches_mixture_reference(
    mean_ms: int, sd_frac: float, dt_frac: float, log_w: float
) -> None:
    sd_ms = max(1, int(mean_ms * sd_frac))
    w = 10.0**log_w
    d, t = window_detector(mean_ms, sd_ms, distribution="hybrid", tail_weight=w)
    dt = int(dt_frac * mean_ms * MS)
    expected = hybrid_phi(dt, mean_ms * MS, sd_ms * MS, 0.0, w)
    assert d.phi(t + dt) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_hybrid_lies_between_normal_body_and_exponential_tail() -> None:
    # Below the mean it follows the normal body; far out it grows linearly (slope of the
    # exponential tail, 1 / (mean ln 10) per ns) instead of the normal's cubic growth.
    dn, t = window_detector(1000, 50)
    dh, _ = window_detector(1000, 50, distribution="hybrid", tail_weight=1e-6)
    for ms in (0, 500, 900, 1000, 1050):
        assert dh.phi(t + ms * MS) == pytest.approx(dn.phi(t + ms * MS), rel=1e-5, abs=1e-9)
    slope = (dh.phi(t + 20_000 * MS) - dh.phi(t + 10_000 * MS)) / (10_000 * MS)
    assert slope == pytest.approx(1 / (1000 * MS * math.log(10)), rel=1e-6)
    assert dh.phi(t + 3000 * MS) < 8.0 < dn.phi(t + 3000 * MS)
    # phi 8 is reached when w * exp(-late / mean) = 1e-8: late = mean * ln(w / 1e-8) = 4.6 s.
    late_ms = 1000 * math.log(1e-6 / 1e-8)
    assert dh.phi(t + int((1000 + late_ms) * MS)) == pytest.approx(8.0, abs=0.01)


@pytest.mark.parametrize("distribution", ["normal", "exponential", "hybrid"])
def test_phi_is_finite_nonnegative_and_monotone(distribution: str) -> None:
    d, t = window_detector(1000, 10, distribution=distribution)
    dts = np.unique(
        np.concatenate(
            [
                np.arange(0, 3000 * MS, 97_003),
                np.geomspace(1, 2**62, 5000).astype(np.int64),
                [INTERVAL_NS_MAX, 2**62, 2**63 - 1 - t],
            ]
        )
    )
    phis = [d.phi(t + int(x)) for x in dts]
    assert all(math.isfinite(p) and p >= 0.0 for p in phis)
    assert all(b >= a for a, b in itertools.pairwise(phis))
    assert phis[-1] > 1e6  # huge gaps give huge, still finite, phi


@pytest.mark.parametrize("distribution", ["normal", "exponential", "hybrid"])
def test_before_first_heartbeat_and_before_last_heartbeat(distribution: str) -> None:
    d = PhiAccrualDetector(distribution=distribution)
    assert d.phi(10**18) == 0.0  # never heard from: not suspected (Akka)
    d.heartbeat(5 * 10**9)
    assert d.phi(0) == d.phi(5 * 10**9)  # a time before the last heartbeat counts as dt = 0
    assert d.phi(-(2**63)) == d.phi(5 * 10**9)


@given(
    distribution=st.sampled_from(["normal", "exponential", "hybrid"]),
    intervals=st.lists(st.integers(0, 5 * 10**9), min_size=1, max_size=30),
    pause=st.integers(0, 10**9),
    a=st.integers(0, 2**62),
    b=st.integers(0, 2**62),
)
def test_phi_is_monotone_for_any_window(
    distribution: str, intervals: list[int], pause: int, a: int, b: int
) -> None:
    d = PhiAccrualDetector(
        distribution=distribution,
        window_size=10,
        min_std_deviation_ns=1,
        acceptable_heartbeat_pause_ns=pause,
    )
    t = 0
    d.heartbeat(t)
    for x in intervals:
        t += x
        d.heartbeat(t)
    lo, hi = sorted((a, b))
    p_lo, p_hi = d.phi(t + lo), d.phi(t + hi)
    assert 0.0 <= p_lo <= p_hi and math.isfinite(p_hi)
