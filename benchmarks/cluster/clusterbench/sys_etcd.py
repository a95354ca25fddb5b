"""etcd as a 3-member cluster on loopback (Debian's etcd-server), driven through its JSON gateway.

Owns starting, killing and restarting the etcd processes, the leader lookup
(`/v3/maintenance/status`), and the etcd load: many keep-alive HTTP/1.1 connections posting
`/v3/kv/put` (base64 key and value), dealt over the members (the leader alone for the sequential
client), one request in flight per connection, since Debian ships no `benchmark` tool and etcd's
gateway serves one request per connection at a time.
Linearizable reads are `/v3/kv/range` with serializable=false; the caught-up check reads the
marker with serializable=true on the restarted member itself. `etcdctl check perf` is recorded
as etcd's own view. Invariants: etcd fsyncs its WAL on every commit (not configurable); only the
processes spawned here are signalled.
"""

import asyncio
import base64
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from clusterbench import procs
from clusterbench.http import HttpConnection, b64, post_request
from clusterbench.load import closed_loop
from clusterbench.system import System, Unavailable, poll_until

START_TIMEOUT_S = 30.0
KEYSPACE = 100_000
REQUEST_POOL = 4_096
CHECK_PERF_TIMEOUT_S = 180.0
VALUE = b"v" * 100


def _status(port: int, timeout_s: float = 2.0) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/maintenance/status",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        status: dict[str, Any] = orjson.loads(resp.read())
        return status


def parse_check_perf(output: str) -> tuple[list[str], float | None]:
    """The PASS/FAIL lines of `etcdctl check perf` and the throughput they state (writes/s)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    summary = [ln for ln in lines if re.match(r"^(PASS|FAIL)", ln)]
    found = (re.search(r"Throughput.*?(\d+) writes/s", ln) for ln in summary)
    throughput = next((float(m.group(1)) for m in found if m), None)
    return summary, throughput


class EtcdSystem(System):
    name = "etcd"

    def __init__(self) -> None:
        self._workdir: Path | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._client_ports: dict[int, int] = {}
        self._peer_ports: dict[int, int] = {}
        self._failover_conns: dict[int, HttpConnection] = {}
        self._version = "?"

    def check_available(self) -> None:
        exe = shutil.which("etcd")
        if exe is None:
            raise Unavailable("etcd is not installed (Debian: apt install etcd-server)")
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        first = out.stdout.splitlines()[0] if out.stdout else "etcd ?"
        self._version = first.replace("etcd Version:", "etcd").strip()

    def _host(self, member: int) -> str:
        return f"127.0.0.1:{self._client_ports[member]}"

    def _argv(self, member: int) -> list[str]:
        assert self._workdir is not None
        cluster = ",".join(f"m{m}=http://127.0.0.1:{self._peer_ports[m]}" for m in self.members)
        client = f"http://127.0.0.1:{self._client_ports[member]}"
        peer = f"http://127.0.0.1:{self._peer_ports[member]}"
        return [
            "etcd",
            "--name", f"m{member}",
            "--data-dir", str(self._workdir / f"m{member}.etcd"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster,
            "--initial-cluster-token", "haperf-bench",
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip

    def _spawn(self, member: int) -> None:
        assert self._workdir is not None
        self._procs[member] = procs.CHILDREN.spawn(
            self._argv(member), log_path=self._workdir / f"m{member}.log"
        )

    def start(self, workdir: Path) -> None:
        self._workdir = workdir
        ports = procs.free_ports(2 * len(self.members))
        for i, member in enumerate(self.members):
            self._client_ports[member] = ports[2 * i]
            self._peer_ports[member] = ports[2 * i + 1]
        for member in self.members:
            self._spawn(member)
        for member in self.members:
            if not procs.wait_port(self._client_ports[member], START_TIMEOUT_S):
                raise RuntimeError(f"etcd member {member} did not start; see {workdir}")

    def close(self) -> None:
        for conn in self._failover_conns.values():
            conn.close()
        self._failover_conns.clear()
        for proc in self._procs.values():
            procs.CHILDREN.stop(proc)
        self._procs.clear()

    def pid(self, member: int) -> int:
        return self._procs[member].pid

    def leader(self, timeout_s: float) -> int:
        def agreed() -> int | None:
            ids: dict[str, int] = {}
            leaders = set()
            for member in self.members:
                if self._procs[member].poll() is not None:
                    continue
                st = _status(self._client_ports[member])
                ids[str(st["header"]["member_id"])] = member
                leaders.add(str(st.get("leader", "0")))
            if len(leaders) == 1:
                return ids.get(leaders.pop())
            return None

        result: int = poll_until(agreed, timeout_s, "etcd agreeing on a leader")
        return result

    def kill(self, member: int) -> None:
        procs.CHILDREN.signal(self._procs[member], signal.SIGKILL)

    def restart(self, member: int) -> None:
        self._procs[member].wait(timeout=procs.STOP_TIMEOUT_S)
        self._spawn(member)

    def repair(self, member: int) -> None:
        # Nothing to do short of removing and re-adding the member: a stuck member is counted
        # and the series goes on with it as it is.
        self._procs[member].poll()

    def notes(self) -> dict[str, str]:
        return {
            "version": self._version,
            "server": "etcd-server from Debian, 3 members, default settings",
            "fsync": "on: etcd fdatasyncs its WAL before acknowledging (not configurable)",
            "write_client": "own asyncio HTTP/1.1 keep-alive client on the JSON gateway "
            "(/v3/kv/put, base64), N connections dealt over all 3 members (etcd's fastest "
            "setting here), 1 request in flight each",
            "sequential_client": "the same HTTP client, 1 connection to the leader",
            "read": "/v3/kv/range with serializable=false (linearizable: ReadIndex), "
            "connections spread like the writes",
            "raft_timings": "etcd defaults: heartbeat 100 ms, election timeout 1000 ms",
        }

    async def _load(
        self,
        path_kind: str,
        connections: int,
        duration_s: float,
        ops_max: int | None = None,
        *,
        spread: bool,
    ) -> dict[str, Any]:
        """Closed-loop load; `spread` deals the connections over every member, leader first.

        Spreading is etcd's fastest setting here: each member's gateway then does its share of
        the JSON work and forwards to the leader over gRPC (measured: about 1.4x the rate of
        sending everything to the leader at 256 connections on this machine).
        """
        leader = await asyncio.to_thread(self.leader, START_TIMEOUT_S)
        targets = [leader] + ([m for m in self.members if m != leader] if spread else [])
        host = "127.0.0.1"
        body: dict[str, Any]
        if path_kind == "put":
            body = {"value": b64(VALUE)}
            path = "/v3/kv/put"
        else:
            body = {"serializable": False}
            path = "/v3/kv/range"
        pool = [
            post_request(host, path, {"key": b64(b"key:%06d" % i), **body})
            for i in range(REQUEST_POOL)
        ]
        conns = await asyncio.gather(
            *(
                HttpConnection.open("127.0.0.1", self._client_ports[targets[i % len(targets)]])
                for i in range(connections)
            )
        )
        counters = [i * 7919 for i in range(connections)]
        pool_size = len(pool)

        async def one(worker: int) -> None:
            n = counters[worker] = counters[worker] + 1
            await conns[worker].request(pool[n % pool_size])

        warmup = min(1.0, max(0.2, duration_s / 5))
        try:
            result = await closed_loop(
                connections, one, duration_s=duration_s, warmup_s=warmup, ops_max=ops_max
            )
        finally:
            for conn in conns:
                conn.close()
        out = result.summary()
        where = "spread over all members" if spread else "to the leader"
        out["client"] = f"asyncio HTTP/1.1 keep-alive, {connections} connections {where}"
        return out

    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        return await self._load("put", 1, duration_s, ops_max, spread=False)

    async def concurrent_writes(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        return await self._load("put", in_flight, max(duration_s, 1.0), spread=True)

    async def linearizable_reads(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        return await self._load("range", in_flight, max(duration_s, 1.0), spread=True)

    async def _conn(self, member: int) -> HttpConnection:
        conn = self._failover_conns.get(member)
        if conn is None or not conn.is_open:
            conn = await HttpConnection.open("127.0.0.1", self._client_ports[member])
            self._failover_conns[member] = conn
        return conn

    async def write_once(self, member: int, key: bytes, value: bytes) -> None:
        conn = await self._conn(member)
        await conn.post_json(
            self._host(member), "/v3/kv/put", {"key": b64(key), "value": b64(value)}
        )

    async def reset_client(self, member: int) -> None:
        conn = self._failover_conns.pop(member, None)
        if conn is not None:
            conn.close()

    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        conn = await HttpConnection.open("127.0.0.1", self._client_ports[member])
        try:
            reply = await conn.post_json(
                self._host(member), "/v3/kv/range", {"key": b64(key), "serializable": True}
            )
        finally:
            conn.close()
        kvs = reply.get("kvs") or []
        return bool(kvs) and base64.b64decode(kvs[0].get("value", "")) == value

    async def extras(self, quick: bool) -> dict[str, Any]:
        """etcd's own `etcdctl check perf --load=l` (60 s of load; skipped in quick mode)."""
        if quick:
            return {"etcdctl_check_perf": "skipped in --quick mode"}
        exe = shutil.which("etcdctl")
        if exe is None:
            return {"etcdctl_check_perf": "etcdctl not installed (apt install etcd-client)"}
        endpoints = ",".join(f"http://{self._host(m)}" for m in self.members)
        out = await asyncio.to_thread(
            subprocess.run,
            [exe, "--endpoints", endpoints, "check", "perf", "--load", "l"],
            capture_output=True,
            text=True,
            timeout=CHECK_PERF_TIMEOUT_S,
            check=False,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )
        summary, throughput = parse_check_perf(out.stdout + out.stderr)
        return {
            "etcdctl_check_perf": {
                "command": "etcdctl check perf --load l",
                "summary": summary,
                "writes_per_s": throughput,
                "exit_code": out.returncode,
            }
        }
