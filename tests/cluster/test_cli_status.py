"""`python -m haperf cluster status` against stand-in nodes (tests/cluster/fakeservice.py): the
table from the admin endpoints, a member that is down, --json, and the usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from haperf.kv.localcluster import LocalCluster
from tests.cluster.test_localcluster import FAKE, WAIT_S


def haperf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_status_table_json_and_a_member_down(tmp_path: Path) -> None:
    with LocalCluster(3, node_command=FAKE) as c:
        c.start()
        c.wait_ready(WAIT_S)
        path = c.write_cluster_file(tmp_path / "cluster.json")
        out = haperf("cluster", "status", "--cluster", str(path))
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].split()[:5] == ["id", "role", "term", "commit/applied", "lag"]
        rows = {line.split()[0]: line.split() for line in lines[1:4]}
        assert rows["1"][1] == "leader" and rows["2"][1] == "follower"
        assert rows["2"][3] == "0/0" and rows["2"][4] == "0"
        assert rows["3"][5] == c.members[3].raft and rows["3"][7] == c.members[3].admin
        assert lines[4] == "leader: node 1"

        c.kill(3)
        out = haperf("cluster", "status", "--cluster", str(path))
        assert out.returncode == 0
        assert "down" in out.stdout.splitlines()[3] and "1 of 3 members not answering" in out.stdout

        out = haperf(
            "cluster", "status", "--admin", f"{c.members[1].admin},{c.members[2].admin}", "--json"
        )
        assert out.returncode == 0
        docs = orjson.loads(out.stdout)
        assert [d["id"] for d in docs] == [1, 2] and docs[0]["role"] == "leader"

        c.kill(1)  # the leader is gone: no live leader answers -> exit 1
        out = haperf("cluster", "status", "--cluster", str(path))
        assert out.returncode == 1 and "leader: none answering" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cluster", "status", "--cluster", "/nonexistent/c.json"), "cannot read the cluster file"),
        (("cluster", "status", "--admin", "nohost"), "--admin"),
        (("cluster", "up", "-n", "0"), "must be in 1..255, got 0"),
        (("cluster", "up", "--timeout", "-1"), "--timeout must be in"),
        (("cluster", "demo", "--keys", "0"), "--keys must be in"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    out = haperf(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_default_cluster_file_comes_from_the_environment(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HAPERF_CLUSTER_FILE": str(tmp_path / "none.json")}
    out = haperf("cluster", "status", env=env)
    assert out.returncode == 2 and str(tmp_path / "none.json") in out.stderr


def test_kv_with_no_member_answering_exits_1(tmp_path: Path) -> None:
    with LocalCluster(2, node_command=FAKE) as c:  # never started: nothing listens
        path = c.write_cluster_file(tmp_path / "cluster.json")
        out = haperf("kv", "--cluster", str(path), "get", "k")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "no member answered" in out.stderr
        assert c.members[1].resp in out.stderr and c.members[2].resp in out.stderr
        assert "Traceback" not in out.stderr
