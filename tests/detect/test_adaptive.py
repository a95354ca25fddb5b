"""AdaptiveThreshold: the learned threshold is the (1 - target) quantile of phi at arrival.

Checked against a direct computation over the same phi values (numpy quantile on the bins),
plus warm-up, clamping, halving and NaN input, and inside a detector (threshold reported).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.detect import AdaptiveThreshold, PhiAccrualDetector
from haperf.errors import ConfigError, DetectorInputError

MS = 1_000_000
S = 1_000_000_000


def direct_threshold(phis: np.ndarray, rate: float, bins_per_phi: int = 32) -> float:
    """Smallest bin edge T with share(phi >= T) <= rate, by brute force over the edges."""
    edges = np.arange(0, 32 * bins_per_phi + 1) / bins_per_phi
    binned = np.minimum(np.floor(phis * bins_per_phi), 32 * bins_per_phi - 1) / bins_per_phi
    for edge in edges:
        if np.count_nonzero(binned >= edge) <= rate * len(phis):
            return float(edge)
    return float(edges[-1])


@pytest.mark.parametrize("rate", [0.1, 0.01, 0.001])
def test_learned_threshold_is_the_quantile(rate: float) -> None:
    rng = np.random.default_rng(11)
    phis = rng.exponential(1.0, 20_000)
    a = AdaptiveThreshold(rate, threshold_min=0.01, threshold_max=31.0, warmup_samples=0)
    for p in phis:
        a.update(float(p))
    assert a.learned_threshold == direct_threshold(phis, rate)
    assert a.threshold == a.learned_threshold
    # the share above it is within the target, one bin lower it is not
    assert a.would_suspect_fraction(a.threshold) <= rate
    assert a.would_suspect_fraction(a.threshold - 1 / 32) > rate
    assert a.samples == len(phis)


def test_warmup_and_clamping() -> None:
    a = AdaptiveThreshold(0.01, fallback_threshold=8.0, threshold_min=2.0, threshold_max=12.0)
    assert a.warmup_samples == 100
    for _ in range(99):
        assert a.update(0.0) == 8.0  # fallback during warm-up
    assert a.update(0.0) == 2.0  # all zeros: learned 0, clamped to threshold_min
    for _ in range(10_000):
        a.update(50.0)  # far beyond the histogram: clamped to threshold_max
    assert a.threshold == 12.0


def test_halving_keeps_the_estimate_and_follows_change() -> None:
    a = AdaptiveThreshold(0.05, threshold_min=0.1, threshold_max=31.0, samples_max=1000,
                          warmup_samples=10)
    for _ in range(5000):
        a.update(1.0)
    assert a.samples < 1000
    assert a.threshold == pytest.approx(1.0 + 1 / 32)  # just above the only value seen
    for _ in range(5000):
        a.update(5.0)  # the network got worse: the old values are forgotten
    assert a.threshold == pytest.approx(5.0 + 1 / 32)


@pytest.mark.parametrize("bad", [math.nan, -1.0])
def test_bad_phi_is_rejected(bad: float) -> None:
    a = AdaptiveThreshold(0.01)
    with pytest.raises(DetectorInputError):
        a.update(bad)
    assert a.samples == 0
    a.update(math.inf)  # infinity is a (huge) phi: it lands in the last bin
    assert a.samples == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_rate": 0.0},
        {"target_rate": 1.0},
        {"target_rate": math.nan},
        {"target_rate": 0.1, "threshold_min": 5.0, "threshold_max": 4.0},
        {"target_rate": 0.1, "fallback_threshold": 20.0},
        {"target_rate": 0.1, "warmup_samples": -1},
        {"target_rate": 0.1, "samples_max": 1},
    ],
)
def test_configuration_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        AdaptiveThreshold(**kwargs)


def test_detector_uses_and_reports_the_learned_threshold() -> None:
    rng = np.random.default_rng(5)
    d = PhiAccrualDetector(
        target_false_suspicion_rate=0.01, min_std_deviation_ns=MS, threshold=8.0
    )
    assert d.threshold == 8.0 and d.configured_threshold == 8.0
    times = np.cumsum(rng.normal(S, 50 * MS, 5000).astype(np.int64))
    phis = np.empty(len(times))
    d.heartbeat_array(times, phis)
    assert d.adaptive is not None
    assert d.adaptive.samples == len(times) - 1  # the first arrival has no interval
    learned = d.threshold
    assert learned != 8.0
    assert learned == direct_threshold(phis[1:], 0.01)
    share = np.count_nonzero(phis[1:] >= learned) / (len(phis) - 1)
    assert share <= 0.01
    last = int(times[-1])
    t_suspect = next(t for t in range(last, last + 10 * S, MS) if d.phi(t) >= learned)
    assert not d.is_available(t_suspect) and d.is_available(t_suspect - MS)


@given(
    phis=st.lists(st.floats(0.0, 40.0), min_size=1, max_size=400),
    rate=st.sampled_from([0.5, 0.2, 0.05, 0.01]),
)
def test_learned_threshold_matches_brute_force(phis: list[float], rate: float) -> None:
    a = AdaptiveThreshold(rate, threshold_min=0.01, threshold_max=32.0, warmup_samples=0)
    for p in phis:
        a.update(p)
    assert a.learned_threshold == direct_threshold(np.array(phis), rate)
