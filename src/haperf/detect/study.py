"""Accuracy study of the phi-accrual detector: false suspicions and detection time, by simulation.

Owns the scenario models, the measurement and the report (JSON, CSV, a markdown table and a PNG)
behind `python -m haperf detect study --seed N --out DIR`. Everything is numpy-vectorised and
driven by one numpy Generator seeded from --seed, so the same (seed, commit, options) gives the
same numbers; the detectors run in haperf's own bank (DetectorBank.heartbeat_many with phi_out),
not in a re-implementation.

Method:
- Each simulated node sends a heartbeat every interval_ns from a random phase; a heartbeat arrives
  after a network delay drawn from the scenario; arrivals are fed to the detector in arrival order.
- phi only rises between heartbeats, so an interval is falsely suspected at threshold T exactly
  when the phi at its arrival is >= T. Counting those (after the first window_size arrivals of
  each node, the warm-up) gives false suspicions per hour and per heartbeat for every T at once.
- Detection time: each node crashes at a uniform time within its last interval; the detector's
  phi after the last arrival is searched (bisection on integer ns) for the moment it reaches T.
  Reported from the crash: median and 99th percentile over nodes.
- Adaptive threshold: single detectors with target_false_suspicion_rate r; the realised share of
  intervals whose arrival phi reached the threshold in use at that time, after warm-up.
"""

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from haperf._native.phi import INTERVAL_NS_MAX, DetectorBank, PhiAccrualDetector
from haperf.errors import ConfigError, HaperfError

MS = 1_000_000
S = 1_000_000_000
THRESHOLDS = tuple(range(1, 17))
DISTRIBUTIONS = ("normal", "exponential", "hybrid")
ADAPTIVE_TARGETS = (1e-2, 1e-3, 1e-4)
NODES_MAX = 100_000
HOURS_MAX = 1_000.0
# nodes x heartbeats per scenario; each simulated heartbeat costs ~50 bytes across the arrays.
HEARTBEATS_MAX = 20_000_000
# The detection-time search spans 0..2**40 ns: 41 halvings reach 1 ns; a few spare.
BISECTION_STEPS_MAX = 45
CLAIM_RATE = 3e-4  # "false-positive rate below 0.03% at phi = 8"

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """What to simulate. Times in ns; the detector parameters are shared by every run."""

    seed: int = 1
    nodes: int = 400
    hours: float = 2.0
    interval_ns: int = S
    window_size: int = 200
    min_std_deviation_ns: int = 100 * MS
    acceptable_heartbeat_pause_ns: int = 0
    tail_weight: float = 1e-6
    adaptive_nodes: int = 40
    adaptive_hours: float = 8.0

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= NODES_MAX:
            raise ConfigError(f"nodes must be in 1..{NODES_MAX}, got {self.nodes}")
        if not 1 <= self.adaptive_nodes <= NODES_MAX:
            raise ConfigError(
                f"adaptive nodes must be in 1..{NODES_MAX}, got {self.adaptive_nodes}"
            )
        for name in ("hours", "adaptive_hours"):
            value = getattr(self, name)
            if not 0 < value <= HOURS_MAX:
                raise ConfigError(f"{name} must be in (0, {HOURS_MAX:g}], got {value}")
        if not 10 * MS <= self.interval_ns <= 60 * S:
            raise ConfigError(f"interval_ns must be in 10 ms..60 s, got {self.interval_ns}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        for nodes, hours in ((self.nodes, self.hours), (self.adaptive_nodes, self.adaptive_hours)):
            if nodes * self.beats(hours) > HEARTBEATS_MAX:
                raise ConfigError(
                    f"{nodes} nodes x {self.beats(hours)} heartbeats exceeds {HEARTBEATS_MAX} "
                    "per scenario; use fewer nodes or hours"
                )

    def beats(self, hours: float) -> int:
        return max(self.window_size + 10, int(hours * 3600 * S / self.interval_ns))

    def detector_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "min_std_deviation_ns": self.min_std_deviation_ns,
            "acceptable_heartbeat_pause_ns": self.acceptable_heartbeat_pause_ns,
            "first_heartbeat_estimate_ns": self.interval_ns,
            "tail_weight": self.tail_weight,
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    """A network and host behaviour: how delays, losses and sender pauses are drawn."""

    name: str
    description: str
    make: Callable[[np.random.Generator, I64, int], tuple[I64, B]]


def _gaussian_delay(rng: np.random.Generator, shape: tuple[int, ...]) -> I64:
    # One-way delay 10 ms +- 20 ms (sd), never negative: interval jitter sd ~ 25 ms.
    return np.maximum(rng.normal(10 * MS, 20 * MS, shape), 0).astype(np.int64)


def _gaussian(rng: np.random.Generator, sends: I64, interval_ns: int) -> tuple[I64, B]:
    return sends + _gaussian_delay(rng, sends.shape), np.ones(sends.shape, dtype=bool)


def _heavy(rng: np.random.Generator, sends: I64, interval_ns: int) -> tuple[I64, B]:
    # Pareto (alpha 1.5, scale 5 ms) on top of 1 ms: P(delay > 1 s) ~ 3.5e-4, capped at 60 s.
    pareto = (rng.pareto(1.5, sends.shape) + 1.0) * 5 * MS
    delay = np.minimum(1 * MS + pareto, 60 * S).astype(np.int64)
    return sends + delay, np.ones(sends.shape, dtype=bool)


def _loss(rng: np.random.Generator, sends: I64, interval_ns: int) -> tuple[I64, B]:
    # Gaussian delays and 1% of heartbeats lost independently (two in a row: 1e-4).
    return sends + _gaussian_delay(rng, sends.shape), rng.random(sends.shape) >= 0.01


def _gc(rng: np.random.Generator, sends: I64, interval_ns: int) -> tuple[I64, B]:
    # Gaussian delays, and the sender stops for a stop-the-world pause about every 10 minutes
    # (Poisson), lasting lognormal(median 1.5 s, sigma 0.6), capped at 20 s. Heartbeats due in a
    # pause are coalesced into one sent when it ends (a timer that fires late fires once).
    sends = sends.copy()
    keep = np.ones(sends.shape, dtype=bool)
    nodes, beats = sends.shape
    span = beats * interval_ns
    counts = rng.poisson(span / (600 * S), nodes)
    for node in np.flatnonzero(counts):
        row = sends[node]
        starts = row[0] + rng.integers(0, span, counts[node])
        lengths = np.minimum(rng.lognormal(math.log(1.5 * S), 0.6, counts[node]), 20 * S)
        for start, length in zip(starts.tolist(), lengths.astype(np.int64).tolist(), strict=True):
            lo, hi = np.searchsorted(row, [start, start + length])
            if hi > lo:
                row[lo:hi] = start + length
                keep[node, lo : hi - 1] = False
    return sends + _gaussian_delay(rng, sends.shape), keep


SCENARIOS = (
    Scenario("gaussian", "gaussian delay 10 +- 20 ms", _gaussian),
    Scenario("heavy-tailed", "1 ms + Pareto(1.5, 5 ms) delay", _heavy),
    Scenario("loss-1%", "gaussian delay, 1% of heartbeats lost", _loss),
    Scenario("gc-pauses", "gaussian delay, ~1.5 s sender pause every ~10 min", _gc),
)


@dataclass(slots=True)
class Stream:
    """Simulated arrivals of one scenario: node-major order, each node's arrivals sorted."""

    nodes: I64
    times: I64
    position: I64  # index of the arrival within its node's stream
    last_send: I64  # per node: when its last heartbeat was sent
    counts: I64  # arrivals per node


def simulate(scenario: Scenario, config: StudyConfig, rng: np.random.Generator,
             nodes: int, hours: float) -> Stream:
    beats = config.beats(hours)
    phase = rng.integers(0, config.interval_ns, nodes)
    sends = phase[:, None] + np.arange(beats, dtype=np.int64)[None, :] * config.interval_ns
    arrivals, keep = scenario.make(rng, sends.astype(np.int64), config.interval_ns)
    big = np.iinfo(np.int64).max
    arrivals = np.where(keep, arrivals, big)
    arrivals.sort(axis=1)
    counts = keep.sum(axis=1).astype(np.int64)
    valid = np.arange(beats)[None, :] < counts[:, None]
    node_ids = np.broadcast_to(np.arange(nodes, dtype=np.int64)[:, None], arrivals.shape)
    position = np.broadcast_to(np.arange(beats, dtype=np.int64)[None, :], arrivals.shape)
    return Stream(
        nodes=np.ascontiguousarray(node_ids[valid]),
        times=np.ascontiguousarray(arrivals[valid]),
        position=np.ascontiguousarray(position[valid]),
        last_send=sends[:, -1].astype(np.int64),
        counts=counts,
    )


@dataclass(slots=True)
class Row:
    """One (scenario, distribution, threshold) measurement."""

    scenario: str
    distribution: str
    threshold: float
    false_suspicions: int
    intervals: int
    node_hours: float
    per_hour: float
    per_heartbeat: float
    detect_median_s: float
    detect_p99_s: float


def _detection_times(bank: DetectorBank, ids: I64, last_arrival: I64, crash: I64,
                     threshold: float) -> F64:
    """Seconds from each crash until phi reaches `threshold` (bisection on integer ns)."""
    lo = np.zeros(len(ids), dtype=np.int64)
    hi = np.full(len(ids), INTERVAL_NS_MAX, dtype=np.int64)
    # Only search from the crash on: a phi above T before the crash is a false suspicion.
    start = np.maximum(crash - last_arrival, 0)
    lo[:] = start
    reachable = bank.phi_many(ids, last_arrival + hi) >= threshold
    for _ in range(BISECTION_STEPS_MAX):
        mid = lo + (hi - lo) // 2
        above = bank.phi_many(ids, last_arrival + mid) >= threshold
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid + 1)
        if np.all(hi - lo <= 0):
            break
    seconds = (last_arrival + hi - crash) / S
    return np.where(reachable, seconds, np.inf)


def measure(
    scenario: Scenario,
    distribution: str,
    stream: Stream,
    config: StudyConfig,
    rng: np.random.Generator,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[Row]:
    nodes = len(stream.counts)
    bank = DetectorBank(capacity=nodes, distribution=distribution, **config.detector_params())
    ids = bank.add_nodes(nodes)
    phi = np.empty(len(stream.times))
    bank.heartbeat_many(ids[stream.nodes], stream.times, phi)
    counted = stream.position >= config.window_size
    phis = np.sort(phi[counted])
    intervals = len(phis)
    node_hours = intervals * config.interval_ns / S / 3600
    last_arrival = np.array(
        [bank.node_stats(int(i))[3] for i in ids], dtype=np.int64
    )
    crash = stream.last_send + rng.integers(0, config.interval_ns, nodes)
    rows = []
    for t in thresholds:
        false = intervals - int(np.searchsorted(phis, t, side="left"))
        detect = _detection_times(bank, ids, last_arrival, crash, t)
        rows.append(
            Row(
                scenario=scenario.name,
                distribution=distribution,
                threshold=float(t),
                false_suspicions=false,
                intervals=intervals,
                node_hours=node_hours,
                per_hour=false / node_hours,
                per_heartbeat=false / intervals,
                detect_median_s=float(np.median(detect)),
                detect_p99_s=float(np.quantile(detect, 0.99)),
            )
        )
    return rows


@dataclass(slots=True)
class AdaptiveRow:
    """Realised false-suspicion share of the adaptive threshold against its target."""

    scenario: str
    target: float
    realised: float
    intervals: int
    threshold_median: float
    threshold_final_min: float
    threshold_final_max: float


def measure_adaptive(scenario: Scenario, stream: Stream, config: StudyConfig,
                     target: float) -> AdaptiveRow:
    false = 0
    counted = 0
    finals: list[float] = []
    used_all: list[F64] = []
    bounds = np.concatenate([[0], np.cumsum(stream.counts)])
    for node in range(len(stream.counts)):
        times = stream.times[bounds[node] : bounds[node + 1]]
        d = PhiAccrualDetector(
            distribution="normal", target_false_suspicion_rate=target, **config.detector_params()
        )
        phi = np.empty(len(times))
        used = np.empty(len(times))
        d.heartbeat_array(np.ascontiguousarray(times), phi, used)
        assert d.adaptive is not None
        warm = np.arange(len(times)) > d.adaptive.warmup_samples
        false += int(np.count_nonzero(phi[warm] >= used[warm]))
        counted += int(np.count_nonzero(warm))
        finals.append(d.threshold)
        used_all.append(used[warm])
    used_cat = np.concatenate(used_all) if used_all else np.zeros(0)
    return AdaptiveRow(
        scenario=scenario.name,
        target=target,
        realised=false / counted if counted else math.nan,
        intervals=counted,
        threshold_median=float(np.median(used_cat)) if len(used_cat) else math.nan,
        threshold_final_min=min(finals),
        threshold_final_max=max(finals),
    )


@dataclass(slots=True)
class StudyResult:
    config: StudyConfig
    rows: list[Row] = field(default_factory=list)
    adaptive: list[AdaptiveRow] = field(default_factory=list)

    def row(self, scenario: str, distribution: str, threshold: float) -> Row:
        for r in self.rows:
            if (r.scenario, r.distribution, r.threshold) == (scenario, distribution, threshold):
                return r
        raise KeyError((scenario, distribution, threshold))


def run_study(config: StudyConfig, progress: Callable[[str], None] | None = None) -> StudyResult:
    """Simulate every scenario and measure every distribution and threshold (seeded)."""
    result = StudyResult(config)
    root = np.random.SeedSequence(config.seed)
    children = root.spawn(len(SCENARIOS))
    for scenario, child in zip(SCENARIOS, children, strict=True):
        rng = np.random.default_rng(child)
        if progress is not None:
            progress(f"simulating {scenario.name}")
        stream = simulate(scenario, config, rng, config.nodes, config.hours)
        for distribution in DISTRIBUTIONS:
            result.rows += measure(scenario, distribution, stream, config, rng)
        adaptive_stream = simulate(
            scenario, config, rng, config.adaptive_nodes, config.adaptive_hours
        )
        for target in ADAPTIVE_TARGETS:
            result.adaptive.append(measure_adaptive(scenario, adaptive_stream, config, target))
    return result


# -- report ------------------------------------------------------------------------------------

TABLE_THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 12.0, 16.0)


def _fmt_rate(x: float) -> str:
    if x == 0:
        return "0"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 0.1:
        return f"{x:.2f}"
    return f"{x:.1e}"


def _fmt_s(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.2f}"


def markdown(result: StudyResult) -> str:
    """The tables for docs/failure-detection.md."""
    c = result.config
    out = io.StringIO()
    out.write(
        f"seed {c.seed}, {c.nodes} nodes x {c.hours:g} h per scenario, heartbeat every "
        f"{c.interval_ns / S:g} s, window {c.window_size}, min_std_deviation "
        f"{c.min_std_deviation_ns / MS:g} ms, acceptable pause "
        f"{c.acceptable_heartbeat_pause_ns / MS:g} ms, hybrid tail_weight {c.tail_weight:g}\n\n"
    )
    out.write("False suspicions per node-hour (and per heartbeat interval) by threshold:\n\n")
    head = " | ".join(f"T={t:g}" for t in TABLE_THRESHOLDS)
    out.write(f"| scenario | model | {head} |\n")
    out.write("| --- | --- |" + " --- |" * len(TABLE_THRESHOLDS) + "\n")
    for scenario in SCENARIOS:
        for distribution in DISTRIBUTIONS:
            cells = []
            for t in TABLE_THRESHOLDS:
                r = result.row(scenario.name, distribution, t)
                cells.append(f"{_fmt_rate(r.per_hour)} ({_fmt_rate(r.per_heartbeat)})")
            out.write(f"| {scenario.name} | {distribution} | {' | '.join(cells)} |\n")
    out.write("\nDetection time after a crash, median / p99 in seconds:\n\n")
    out.write(f"| scenario | model | {head} |\n")
    out.write("| --- | --- |" + " --- |" * len(TABLE_THRESHOLDS) + "\n")
    for scenario in SCENARIOS:
        for distribution in DISTRIBUTIONS:
            cells = []
            for t in TABLE_THRESHOLDS:
                r = result.row(scenario.name, distribution, t)
                cells.append(f"{_fmt_s(r.detect_median_s)} / {_fmt_s(r.detect_p99_s)}")
            out.write(f"| {scenario.name} | {distribution} | {' | '.join(cells)} |\n")
    out.write(
        f"\nAdaptive threshold ({c.adaptive_nodes} nodes x {c.adaptive_hours:g} h, normal model): "
        "realised share of falsely suspected intervals after warm-up vs target:\n\n"
    )
    out.write("| scenario | target | realised | intervals | median T used | final T (min..max) |\n")
    out.write("| --- | --- | --- | --- | --- | --- |\n")
    for a in result.adaptive:
        out.write(
            f"| {a.scenario} | {a.target:g} | {_fmt_rate(a.realised)} | {a.intervals} | "
            f"{a.threshold_median:.2f} | "
            f"{a.threshold_final_min:.2f}..{a.threshold_final_max:.2f} |\n"
        )
    out.write(
        f"\nClaim check (per-interval false-suspicion share at phi = 8 < {CLAIM_RATE:g}):\n\n"
    )
    for scenario in SCENARIOS:
        for distribution in DISTRIBUTIONS:
            r = result.row(scenario.name, distribution, 8.0)
            verdict = "below" if r.per_heartbeat < CLAIM_RATE else "NOT below"
            out.write(
                f"- {scenario.name}, {distribution}: {r.false_suspicions} of {r.intervals} "
                f"intervals = {_fmt_rate(r.per_heartbeat)}, {verdict} 0.03%\n"
            )
    return out.getvalue()


def plot(result: StudyResult, path: Path) -> None:
    """False suspicions per hour and median detection time vs threshold, one column per scenario."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise HaperfError(
            "the study plot needs matplotlib: pip install 'haperf[docs]'"
        ) from exc
    fig, axes = plt.subplots(2, len(SCENARIOS), figsize=(4 * len(SCENARIOS), 7), sharex=True)
    floor = 0.5 / max(r.node_hours for r in result.rows)
    for col, scenario in enumerate(SCENARIOS):
        top, bottom = axes[0][col], axes[1][col]
        for distribution in DISTRIBUTIONS:
            rows = [r for r in result.rows
                    if r.scenario == scenario.name and r.distribution == distribution]
            xs = [r.threshold for r in rows]
            top.plot(xs, [max(r.per_hour, floor) for r in rows], marker="o", ms=3,
                     label=distribution)
            bottom.plot(xs, [r.detect_median_s for r in rows], marker="o", ms=3,
                        label=distribution)
        top.set_yscale("log")
        top.set_title(f"{scenario.name}\n({scenario.description})", fontsize=9)
        top.axvline(8, color="grey", lw=0.5, ls="--")
        bottom.axvline(8, color="grey", lw=0.5, ls="--")
        bottom.set_xlabel("threshold (phi)")
        if col == 0:
            top.set_ylabel("false suspicions per node-hour\n(floored at 0.5 / total hours)")
            bottom.set_ylabel("median detection time after crash (s)")
        bottom.set_yscale("log")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    c = result.config
    fig.suptitle(
        f"phi-accrual accuracy (seed {c.seed}, {c.nodes} nodes x {c.hours:g} h, heartbeat "
        f"{c.interval_ns / S:g} s)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: StudyResult, out_dir: Path, with_plot: bool = True) -> list[Path]:
    """Write study.json, study.csv, study.md and (with_plot) study.png into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    data = {
        "config": asdict(result.config),
        "rows": [asdict(r) for r in result.rows],
        "adaptive": [asdict(a) for a in result.adaptive],
    }
    p = out_dir / "study.json"
    p.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    paths.append(p)
    p = out_dir / "study.csv"
    with p.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(result.rows[0]).keys()))
        writer.writeheader()
        for r in result.rows:
            writer.writerow(asdict(r))
    paths.append(p)
    p = out_dir / "study.md"
    p.write_text(markdown(result))
    paths.append(p)
    if with_plot:
        p = out_dir / "study.png"
        plot(result, p)
        paths.append(p)
    return paths
