"""LocalCluster's process lifecycle with stand-in nodes (tests/cluster/fakeservice.py: the real
KVService and admin server around a fake node), so every fault a chaos run uses is tested
without Raft: start, status over HTTP, SIGKILL, SIGSTOP/SIGCONT, restart on the same ports,
graceful SIGTERM stop (exit 0), a child that dies at start, the parent watch, and cleanup.
Only this test's own children are ever signalled (through LocalCluster's Popen handles)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from haperf.errors import ConfigError, LocalClusterError
from haperf.kv.config import load_config
from haperf.kv.localcluster import LocalCluster, http_get, read_cluster_file

FAKE = [sys.executable, str(Path(__file__).with_name("fakeservice.py"))]
WAIT_S = 30.0


def fake_cluster(n: int = 3, **kwargs: object) -> LocalCluster:
    return LocalCluster(n, node_command=FAKE, **kwargs)  # type: ignore[arg-type]


def test_members_get_distinct_ports_and_valid_node_files(tmp_path: Path) -> None:
    with fake_cluster(
        3, base_dir=tmp_path, dial=lambda a, b: f"127.0.0.1:{9000 + 10 * a + b}"
    ) as c:
        addresses = [a for m in c.members.values() for a in (m.raft, m.resp, m.admin)]
        assert len(set(addresses)) == 9
        assert all(a.startswith("127.0.0.1:") for a in addresses)
        for i in c.ids:
            config = c.config(i)
            assert config.dial == {j: f"127.0.0.1:{9000 + 10 * i + j}" for j in c.ids if j != i}
            assert config.data_dir == str(tmp_path.resolve() / f"node-{i}")
        c.set_dial(None)
        assert c.config(1).dial == {}
        path = c.write_cluster_file()
        members = read_cluster_file(path)
        assert members[2]["admin"] == c.members[2].admin
    assert tmp_path.is_dir()  # a base_dir given by the caller is kept


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="n must be in"):
        LocalCluster(0)
    with pytest.raises(ConfigError, match=r"raft_options: raft\.ack"):
        LocalCluster(3, raft_options={"ack": "some"})
    with fake_cluster(1) as c, pytest.raises(ConfigError, match="node 5 is not a member"):
        c.kill(5)


def test_lifecycle_kill_pause_restart_stop() -> None:
    with fake_cluster(3) as c:
        base = c.base_dir
        c.start()
        c.wait_ready(WAIT_S)
        assert c.wait_leader(WAIT_S) == 1
        status = c.status(2)
        assert status is not None and status["id"] == 2 and status["leader"] == 1
        assert status["service"]["resp"] == c.members[2].resp
        for i in c.ids:
            assert load_config(c.members[i].config_path).id == i

        old_pid = c.pid(3)
        c.kill(3)
        assert not c.alive(3) and c.returncode(3) == -signal.SIGKILL
        assert c.live_ids() == [1, 2]
        assert c.wait_leader(WAIT_S) == 1  # a killed member is not a failure to wait on
        with pytest.raises(LocalClusterError, match="not running"):
            c.kill(3)
        c.restart(3)
        assert c.pid(3) not in (None, old_pid)
        c.wait_ready(WAIT_S, ids=[3])

        c.pause(2)
        assert c.paused(2) and c.alive(2) and c.live_ids() == [1, 3]
        assert c.status(2, timeout_s=0.3) is None  # stopped: cannot answer
        c.resume(2)
        assert c.status(2) is not None

        c.pause(1)
        c.stop(1)  # a paused member is continued, then stopped gracefully
        assert c.returncode(1) == 0
        c.stop()
        assert all(c.returncode(i) == 0 for i in c.ids)  # SIGTERM -> graceful, exit 0
        log = Path(c.members[2].log_path).read_text()
        assert "node 2: SIGTERM, stopping" in log and "node 2: stopped" in log
    assert not base.exists()  # a temporary base_dir is removed by close()


def test_a_port_in_use_fails_the_child_with_a_message() -> None:
    with fake_cluster(1) as c:
        host, port = c.members[1].admin.rsplit(":", 1)
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind((host, int(port)))
            squatter.listen()
            c.start()
            with pytest.raises(LocalClusterError, match="node 1 exited with status 2") as info:
                c.wait_ready(WAIT_S)
        assert f"cannot listen on the admin address {c.members[1].admin}" in str(info.value)
        assert "Traceback" not in str(info.value)


def test_start_failure_surfaces_as_local_cluster_error(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('cannot start: broken on purpose')\nsys.exit(3)\n")
    with LocalCluster(1, node_command=[sys.executable, str(script)]) as c:
        c.start()
        with pytest.raises(LocalClusterError, match="node 1 exited with status 3") as info:
            c.wait_ready(WAIT_S)
        assert "broken on purpose" in str(info.value)


def test_children_stop_when_the_parent_dies(tmp_path: Path) -> None:
    # A parent process that starts a cluster and is then SIGKILLed: no atexit runs in it, so
    # the children's own parent watch must stop them.
    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(
            f"""
            import sys, time, orjson
            from haperf.kv.localcluster import LocalCluster
            c = LocalCluster(2, {str(tmp_path / "base")!r}, node_command={FAKE!r})
            c.start()
            c.wait_ready(30)
            print(orjson.dumps([c.pid(1), c.pid(2)]).decode(), flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(parent)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode() if proc.stderr else ""
        pids = orjson.loads(line)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        time.sleep(0.05)
    assert not any(_exists(p) for p in pids)
    log = (tmp_path / "base" / "node-1.log").read_text()
    assert "parent" in log and "exited, stopping" in log


def _exists(pid: int) -> bool:
    # The children were re-parented to init (or a subreaper), which reaps them; a zombie
    # that is not reaped yet still counts as gone once its state is Z.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_atexit_guard_stops_children_of_a_parent_that_exits(tmp_path: Path) -> None:
    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(
            f"""
            import orjson
            from haperf.kv.localcluster import LocalCluster
            c = LocalCluster(1, {str(tmp_path / "base")!r}, node_command={FAKE!r})
            c.start()
            c.wait_ready(30)
            print(orjson.dumps([c.pid(1)]).decode(), flush=True)
            """  # exits without close(): the atexit guard stops the child
        )
    )
    out = subprocess.run(
        [sys.executable, str(parent)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    (pid,) = orjson.loads(out.stdout)
    assert not _exists(pid)
    assert "node 1: SIGTERM, stopping" in (tmp_path / "base" / "node-1.log").read_text()


def test_admin_endpoints_of_a_child_over_http() -> None:
    with fake_cluster(1) as c:
        c.start()
        c.wait_ready(WAIT_S)
        admin = c.members[1].admin
        code, body = http_get(admin, "/metrics")
        assert code == 200 and b'haperf_raft_is_leader{node="1"} 1' in body
        assert http_get(admin, "/nope")[0] == 404
        assert os.path.exists(c.members[1].log_path)


def test_ports_are_below_the_ephemeral_range() -> None:
    from haperf.kv.localcluster import _ephemeral_range

    low, _ = _ephemeral_range()
    with fake_cluster(5) as c:
        ports = [
            int(a.rsplit(":", 1)[1]) for m in c.members.values() for a in (m.raft, m.resp, m.admin)
        ]
    assert len(set(ports)) == 15
    if low > 10_000 + 15:
        assert all(p < low for p in ports)


def test_a_cluster_dropped_without_close_stops_its_children() -> None:
    import gc

    c = fake_cluster(2)
    c.start()
    c.wait_ready(WAIT_S)
    pids = [c.pid(i) for i in c.ids]
    base = c.base_dir
    del c
    gc.collect()
    assert all(p is not None and not _exists(p) for p in pids)
    assert "node 1: SIGTERM, stopping" in (base / "node-1.log").read_text()


def test_a_new_cluster_on_the_same_base_dir_reuses_the_addresses(tmp_path: Path) -> None:
    with fake_cluster(2, base_dir=tmp_path) as first:
        first.start()
        first.wait_ready(WAIT_S)
        for m in first.members.values():
            Path(m.data_dir).mkdir(exist_ok=True)  # what a real node leaves behind
        with pytest.raises(LocalClusterError, match="is in use: is that cluster still running"):
            fake_cluster(2, base_dir=tmp_path)
        with pytest.raises(LocalClusterError, match="a cluster of 2 members, not 3"):
            fake_cluster(3, base_dir=tmp_path)
        addresses = {i: (m.raft, m.resp, m.admin) for i, m in first.members.items()}
    with fake_cluster(2, base_dir=tmp_path) as second:
        assert {i: (m.raft, m.resp, m.admin) for i, m in second.members.items()} == addresses
        second.start()
        second.wait_ready(WAIT_S)
