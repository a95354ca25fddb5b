"""A real chaos run: a 3-node cluster in child processes, every nemesis kind, the full checks.

This is the run CI does (the issue asks for ~60 s): HAPERF_CHAOS_TIME sets the seconds of
workload under faults (default 30 here, CI exports 60), HAPERF_CHAOS_SEED the seed (default 1).
The run must be linearizable, lose no acknowledged write, and end with every node caught up;
on failure the assertion message is the run's summary and names the output directory (history,
node logs, summary.json) under pytest's tmp_path.
"""

import os
from pathlib import Path

from haperf.chaos.nemesis import NEMESIS_KINDS
from haperf.chaos.runner import RunConfig, describe, run

CHAOS_TIME_S = float(os.environ.get("HAPERF_CHAOS_TIME", "30"))
CHAOS_SEED = int(os.environ.get("HAPERF_CHAOS_SEED", "1"))


def test_chaos_run_against_a_real_cluster(tmp_path: Path) -> None:
    config = RunConfig(
        time_s=CHAOS_TIME_S,
        nodes=3,
        clients=5,
        keys=3,
        nemesis=NEMESIS_KINDS,
        seed=CHAOS_SEED,
        out=str(tmp_path / "run"),
        fault_s_min=1.0,
        fault_s_max=3.0,
        settle_s=60.0,
    )
    result = run(config, progress=print)
    text = describe(result)
    print(text)
    assert result.ok, text
    summary = result.summary
    ops = summary["ops"]
    # The run did real work under faults: acknowledged writes and reads, and faults applied.
    assert ops["write"]["ok"] > 0 and ops["read"]["ok"] > 0, text
    # Every scheduled fault was applied; kinds come in rounds, so with room for five faults
    # (seed 1 schedules 7 in 30 s) every kind was.
    assert sum(summary["faults_applied"].values()) == summary["faults_scheduled"] > 0, text
    if summary["faults_scheduled"] >= len(NEMESIS_KINDS):
        assert set(summary["faults_applied"]) == set(NEMESIS_KINDS), text
    assert summary["checks"]["linearizable"]["verdict"] == "linearizable"
    assert summary["checks"]["lost_writes"] == []
    assert summary["caught_up"]["ok"]
    for name in ("history.jsonl", "summary.json"):
        assert (result.out / name).is_file()
