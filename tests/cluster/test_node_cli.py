"""`python -m haperf node` with flags, run as a user would: a one-member cluster becomes ready,
serves a write over RESP, stops gracefully on SIGTERM (exit 0), and keeps the write across a
restart from its data directory."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from haperf.kv.client import KVClient
from haperf.kv.localcluster import _free_ports, http_get

WAIT_S = 30.0


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "haperf", "node", *args], stdout=out, stderr=subprocess.STDOUT
        )


def _wait_ready(proc: subprocess.Popen[bytes], admin: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if http_get(admin, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"node not ready in {WAIT_S} s: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(WAIT_S)
        raise


def test_single_node_from_flags_serves_stops_and_restarts(tmp_path: Path) -> None:
    raft, resp, admin = (f"127.0.0.1:{p}" for p in _free_ports("127.0.0.1", 3))
    args = ["--id", "1", "--peers", f"1={raft}/{resp}/{admin}", "--data", str(tmp_path / "d")]
    log = tmp_path / "node.log"

    async def io(write: bool) -> bytes | None:
        client = KVClient(resp, timeout_ns=5_000_000_000)
        try:
            if write:
                assert await client.set("greeting", "hello")
            return await client.get("greeting")
        finally:
            await client.close()

    proc = _start(args, log)
    try:
        _wait_ready(proc, admin, log)
        assert asyncio.run(asyncio.wait_for(io(True), WAIT_S)) == b"hello"
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    assert "node 1: SIGTERM, stopping" in log.read_text()

    proc = _start(args, log)
    try:
        _wait_ready(proc, admin, log)
        assert asyncio.run(asyncio.wait_for(io(False), WAIT_S)) == b"hello"
    finally:
        assert _stop(proc) == 0, log.read_text()


def test_a_taken_raft_port_fails_fast_with_a_message(tmp_path: Path) -> None:
    raft, resp, admin = (f"127.0.0.1:{p}" for p in _free_ports("127.0.0.1", 3))
    host, port = raft.rsplit(":", 1)
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "haperf",
                "node",
                "--id",
                "1",
                "--peers",
                f"1={raft}/{resp}/{admin}",
                "--data",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            check=False,
        )
    assert out.returncode == 1, out.stderr
    assert f"cannot listen on {raft}" in out.stderr and "Traceback" not in out.stderr
