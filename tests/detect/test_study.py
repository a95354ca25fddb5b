"""The accuracy study: reproducible from its seed, internally consistent, and its CLI.

Small configurations only (a few nodes, minutes of simulated time); the full study is a
command, not a test.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from haperf.cli.main import main
from haperf.detect.study import (
    DISTRIBUTIONS,
    SCENARIOS,
    THRESHOLDS,
    StudyConfig,
    run_study,
    simulate,
)
from haperf.errors import ConfigError

SMALL = {"nodes": 12, "hours": 0.25, "adaptive_nodes": 2, "adaptive_hours": 0.3}


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    a = run_study(StudyConfig(seed=5, **SMALL))  # type: ignore[arg-type]
    b = run_study(StudyConfig(seed=5, **SMALL))  # type: ignore[arg-type]
    c = run_study(StudyConfig(seed=6, **SMALL))  # type: ignore[arg-type]
    assert a.rows == b.rows and a.adaptive == b.adaptive
    assert [r.detect_median_s for r in a.rows] != [r.detect_median_s for r in c.rows]


def test_rows_are_consistent() -> None:
    result = run_study(StudyConfig(seed=2, **SMALL))  # type: ignore[arg-type]
    assert len(result.rows) == len(SCENARIOS) * len(DISTRIBUTIONS) * len(THRESHOLDS)
    for scenario in SCENARIOS:
        for distribution in DISTRIBUTIONS:
            rows = [result.row(scenario.name, distribution, float(t)) for t in THRESHOLDS]
            false = [r.false_suspicions for r in rows]
            assert false == sorted(false, reverse=True)  # a higher threshold never adds any
            medians = [r.detect_median_s for r in rows]
            assert medians == sorted(medians)  # and never detects sooner
            assert all(m > 0 for m in medians)
    # Cassandra's model: phi = T after T ln 10 mean intervals past the last arrival; the crash
    # is uniform within the last interval, so the median sits about half an interval earlier.
    r = result.row("gaussian", "exponential", 8.0)
    assert r.detect_median_s == pytest.approx(8 * math.log(10) - 0.5 + 0.01, abs=0.3)
    for a in result.adaptive:
        # a run shorter than the warm-up (1 / target heartbeats) has nothing to judge yet
        assert (0.0 <= a.realised <= 1.0) if a.intervals else math.isnan(a.realised)
    assert any(a.intervals for a in result.adaptive)


def test_scenarios_shape_the_arrivals() -> None:
    config = StudyConfig(seed=1, nodes=50, hours=0.5)
    rng = np.random.default_rng(0)
    by_name = {s.name: simulate(s, config, rng, 50, 0.5) for s in SCENARIOS}
    beats = config.beats(0.5)
    assert np.all(by_name["gaussian"].counts == beats)
    lost = 1 - by_name["loss-1%"].counts.sum() / (50 * beats)
    assert 0.005 < lost < 0.015
    gc = by_name["gc-pauses"]
    assert gc.counts.sum() < 50 * beats  # heartbeats due inside pauses were coalesced
    for stream in by_name.values():
        bounds = np.concatenate([[0], np.cumsum(stream.counts)])
        for node in range(3):
            assert np.all(np.diff(stream.times[bounds[node] : bounds[node + 1]]) >= 0)


def test_cli_writes_the_report(tmp_path: Path) -> None:
    args = ["detect", "study", "--seed", "3", "--out", str(tmp_path), "--nodes", "6",
            "--hours", "0.25", "--adaptive-nodes", "2", "--adaptive-hours", "0.3", "--no-plot"]
    assert main(args) == 0
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["config"]["seed"] == 3
    assert len(data["rows"]) == len(SCENARIOS) * len(DISTRIBUTIONS) * len(THRESHOLDS)
    assert "| gc-pauses | hybrid |" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "study.csv").read_text().startswith("scenario,distribution,threshold")


@pytest.mark.parametrize(
    "extra", [["--nodes", "0"], ["--hours", "-1"], ["--tail-weight", "2"], ["--seed", "-1"]]
)
def test_cli_bad_arguments_exit_2(tmp_path: Path, extra: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["detect", "study", "--out", str(tmp_path), "--no-plot", *extra])
    assert exc.value.code == 2


def test_config_errors() -> None:
    with pytest.raises(ConfigError):
        StudyConfig(interval_ns=1)
    with pytest.raises(ConfigError, match="exceeds"):
        StudyConfig(nodes=100_000, hours=10)
