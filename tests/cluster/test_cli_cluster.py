"""The cluster CLI with real nodes, run exactly as a user would: `cluster up` (its printout, the
cluster file, Ctrl-C stopping every child with exit 0), `cluster status` and `kv get/set/del`
finding the cluster without flags, and `cluster demo` running to completion."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from haperf.kv.localcluster import fetch_status, read_cluster_file

WAIT_S = 60


def haperf(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", *args],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
        env=env,
    )


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def start_up(n: int, base: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`cluster up -n N --base-dir BASE` in a child; returns it and its output up to the line
    that says it is running."""
    up = subprocess.Popen(
        [sys.executable, "-m", "haperf", "cluster", "up", "-n", str(n), "--base-dir", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            up.wait(WAIT_S)
            raise AssertionError(f"cluster up ended early: {''.join(lines)} {up.stderr.read()}")
        lines.append(line)
        if "Ctrl-C stops the cluster" in line:
            break
    return up, "".join(lines)


def test_up_status_kv_round_trip_and_ctrl_c(tmp_path: Path) -> None:
    cluster_file = tmp_path / "state" / "cluster.json"
    env = {**os.environ, "HAPERF_CLUSTER_FILE": str(cluster_file)}
    base = tmp_path / "base"
    up, text = start_up(3, base, env)
    try:
        leader = int(re.search(r"leader: node (\d+)", text).group(1))  # type: ignore[union-attr]
        assert f"{leader}  127.0.0.1:" in text and "(leader)" in text
        doc = orjson.loads(cluster_file.read_bytes())
        assert doc["pid"] == up.pid and sorted(doc["members"]) == ["1", "2", "3"]
        assert (base / "cluster.json").is_file()

        out = haperf("kv", "set", "greeting", "hello world", env=env)
        assert (out.returncode, out.stdout) == (0, "OK\n"), out.stderr
        out = haperf("kv", "get", "greeting", env=env)
        assert (out.returncode, out.stdout) == (0, "hello world\n"), out.stderr
        follower = next(m for i, m in doc["members"].items() if int(i) != leader)
        out = haperf("kv", "--addr", follower["resp"], "get", "greeting", env=env)
        assert out.stdout == "hello world\n", out.stderr  # redirected to the leader
        out = haperf("kv", "del", "greeting", "nokey", env=env)
        assert out.stdout == "1\n", out.stderr
        out = haperf("kv", "get", "greeting", env=env)
        assert out.stdout == "(nil)\n"

        out = haperf("cluster", "status", env=env)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines()[1:4]]
        assert sorted(r[0] for r in rows) == ["1", "2", "3"]
        roles = {int(r[0]): r[1] for r in rows}
        assert roles[leader] == "leader" and list(roles.values()).count("follower") == 2
        commit_applied = {r[3] for r in rows}
        assert all(re.fullmatch(r"\d+/\d+", c) for c in commit_applied)
        assert out.stdout.splitlines()[-1] == f"leader: node {leader}"

        pids = _child_pids(base / "cluster.json")
        assert len(pids) == 3
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(WAIT_S)
    rest = up.stdout.read() if up.stdout else ""
    assert code == 0, rest + (up.stderr.read() if up.stderr else "")
    assert "SIGINT: stopping 3 nodes" in rest and "stopped" in rest
    assert all(_gone(p) for p in pids)
    assert not cluster_file.exists()  # removed by the `up` that wrote it
    for i in (1, 2, 3):  # every node stopped gracefully
        assert f"node {i}: SIGTERM, stopping" in (base / f"node-{i}.log").read_text()
    assert (base / "node-1").is_dir()  # --base-dir keeps the data


def _child_pids(cluster_file: Path) -> list[int]:
    members = read_cluster_file(cluster_file)
    statuses = [fetch_status(m["admin"]) for _, m in sorted(members.items())]
    return [int(s["service"]["pid"]) for s in statuses if s is not None]


def test_demo_runs_to_completion(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "haperf", "cluster", "demo"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for step in (
        "is the leader (term",
        "wrote 200 keys",
        "SIGKILL node",
        "is the new leader (term",
        "failover: the first write sent after the kill (",
        "s after its restart: the leader's commit index was",
        "writes stopped; all 3 nodes have applied index",
        "verified: all",
        "done. Failover",
    ):
        assert step in text, text
    old = int(re.search(r"SIGKILL node (\d+)", text).group(1))  # type: ignore[union-attr]
    new = int(re.search(r"node (\d+) is the new leader", text).group(1))  # type: ignore[union-attr]
    assert old != new
    assert re.search(rf"node {old} caught up", text)
    assert re.search(r"committed \d+ ms after the kill", text)


def test_up_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "HAPERF_CLUSTER_FILE": str(tmp_path / "cluster.json")}
    up, _ = start_up(1, tmp_path, env)
    try:
        pids = _child_pids(tmp_path / "cluster.json")
        assert len(pids) == 1
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(WAIT_S)
    assert code == 0 and "SIGTERM: stopping 1 nodes" in (up.stdout.read() if up.stdout else "")
    assert all(_gone(p) for p in pids)


def test_demo_reports_a_failed_step_with_exit_1() -> None:
    # One node: once it is SIGKILLed no new leader can come, so the failover step must fail.
    from haperf.kv.demo import DemoConfig, run

    lines: list[str] = []
    assert run(DemoConfig(nodes=1, keys=5, failover_timeout_s=1.0), out=lines.append) == 1
    text = "\n".join(lines)
    assert "SIGKILL node 1" in text and "FAILED: no leader agreed on" in text
    kept = Path(re.search(r"node logs: (\S+)", text).group(1))  # type: ignore[union-attr]
    assert (kept / "node-1.log").is_file()  # logs are kept for a failed run
    shutil.rmtree(kept)
