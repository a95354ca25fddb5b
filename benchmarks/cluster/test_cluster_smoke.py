"""Smoke runs of benchmarks/cluster/run.py --quick, one system at a time (CI, never on speed).

Owns the end-to-end check that each system starts as 3 members, is measured, is failed over
and is cleaned up: the run exits 0, every measurement produced figures (no errors), the leader
kills were all measured, and no member process survives. A peer is skipped only when its binary
or package is absent; haperf is skipped only when its KV cluster is not importable. haperf must
also show that every restarted member caught up (issue 7's requirement); the peers' catch-up
counts are reported, not asserted.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 600
TERM_GRACE_S = 30


def _missing(name: str) -> str | None:
    if shutil.which("redis-benchmark") is None and name in ("pysyncobj", "haperf"):
        return "redis-benchmark is not installed (apt install redis-tools)"
    if name == "etcd" and shutil.which("etcd") is None:
        return "etcd is not installed (apt install etcd-server)"
    if name == "pysyncobj" and importlib.util.find_spec("pysyncobj") is None:
        return "pysyncobj is not installed (pip install 'haperf[peers]')"
    if name == "haperf":
        try:
            found = importlib.util.find_spec("haperf.kv.localcluster") is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return "haperf.kv.localcluster is not available in this build"
    return None


def _run(name: str, out: Path) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / "run.py"), "--quick", "--systems", name, "--out", str(out)]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # SIGTERM first: run.py then stops the members it started (SIGKILL would orphan them).
            proc.terminate()
            output, _ = proc.communicate(timeout=TERM_GRACE_S)
            pytest.fail(f"run.py --quick --systems {name} took over {RUN_TIMEOUT_S} s: {output}")
    assert proc.returncode == 0, output[-6000:]
    doc: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().count("| metric |") == 1
    return doc


def _no_errors(results: dict[str, Any]) -> None:
    for key, value in results.items():
        if isinstance(value, dict):
            assert "error" not in value, f"{key}: {value['error']}"
    for n, run in results["concurrent_writes"].items():
        assert "error" not in run, f"{n} in flight: {run['error']}"


@pytest.mark.parametrize(
    ("name", "label"), [("etcd", "etcd"), ("pysyncobj", "PySyncObj"), ("haperf", "haperf")]
)
def test_quick_run_measures_the_system(name: str, label: str, tmp_path: Path) -> None:
    reason = _missing(name)
    if reason is not None:
        pytest.skip(reason)
    doc = _run(name, tmp_path)
    results = doc["systems"][label]
    assert "unavailable" not in results, results.get("unavailable")
    _no_errors(results)
    assert results["leader"] in (1, 2, 3)
    assert results["sequential_writes"]["ops_per_s"] > 0
    assert results["sequential_writes"]["p99_ms"] >= results["sequential_writes"]["p50_ms"]
    for n in doc["plan"]["in_flight"]:
        assert results["concurrent_writes"][str(n)]["ops_per_s"] > 0
    assert results["linearizable_reads"]["ops_per_s"] > 0
    idle = results["idle"]
    assert sorted(idle) == ["1", "2", "3"]
    assert all(m["rss_mb"] > 0 for m in idle.values())
    failover = results["failover"]
    assert failover["kills"] == doc["plan"]["kills"]
    assert failover["timeouts"] == 0
    assert failover["median_ms"] > 0
    if name == "haperf":
        assert failover["not_caught_up"] == 0
    # Every member process was stopped with the run (the run's own children only).
    for member_pid in _pids(results):
        assert not Path(f"/proc/{member_pid}").exists() or _is_zombie(member_pid)


def _pids(results: dict[str, Any]) -> list[int]:
    return [int(p) for p in results.get("pids", {}).values()]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
