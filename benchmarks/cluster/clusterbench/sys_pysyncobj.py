"""PySyncObj as a 3-member cluster: one `clusterbench.pysyncobj_server` process per member.

Owns starting, killing and restarting those processes and the PySyncObj-specific checks: the
leader is the member whose STATUS says so and whom both others name; a restarted member has
caught up when its local copy (LGET) holds the marker write. Writes are replicated method calls
(acknowledged after commit and apply on the leader); PySyncObj never fsyncs (its journal is an
mmap flushed by the OS), which the report states. Invariant: only the processes spawned here are
signalled, through `procs.CHILDREN`.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from clusterbench import procs
from clusterbench.load import closed_loop
from clusterbench.resp import RespConnection
from clusterbench.system import RespSystem, Unavailable, poll_until, resp_call

BENCH_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


class PySyncObjSystem(RespSystem):
    name = "PySyncObj"

    def __init__(self) -> None:
        super().__init__()
        self._workdir: Path | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._raft_ports: dict[int, int] = {}
        self._resp_ports: dict[int, int] = {}
        self._version = "?"

    def check_available(self) -> None:
        try:
            import pysyncobj  # type: ignore[import-untyped]
        except ImportError as exc:
            raise Unavailable(f"PySyncObj is not installed (pip install pysyncobj): {exc}") from exc
        self._check_redis_benchmark()
        from pysyncobj.version import VERSION  # type: ignore[import-untyped]

        self._version = str(VERSION)
        del pysyncobj

    def resp_port(self, member: int) -> int:
        return self._resp_ports[member]

    def _argv(self, member: int) -> list[str]:
        assert self._workdir is not None
        argv = [
            sys.executable,
            "-m",
            "clusterbench.pysyncobj_server",
            "--self",
            f"127.0.0.1:{self._raft_ports[member]}",
            "--resp",
            str(self._resp_ports[member]),
            "--data",
            str(self._workdir / f"m{member}"),
        ]
        for other in self.members:
            if other != member:
                argv += ["--partner", f"127.0.0.1:{self._raft_ports[other]}"]
        return argv

    def _spawn(self, member: int) -> None:
        assert self._workdir is not None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p
        )
        self._procs[member] = procs.CHILDREN.spawn(
            self._argv(member), log_path=self._workdir / f"m{member}.log", env=env, cwd=BENCH_DIR
        )
        if not procs.wait_port(self._resp_ports[member], START_TIMEOUT_S):
            raise RuntimeError(
                f"PySyncObj member {member} did not open its RESP port; see its log in "
                f"{self._workdir}"
            )

    def start(self, workdir: Path) -> None:
        self._workdir = workdir
        ports = procs.free_ports(2 * len(self.members))
        for i, member in enumerate(self.members):
            self._raft_ports[member] = ports[2 * i]
            self._resp_ports[member] = ports[2 * i + 1]
        for member in self.members:
            self._spawn(member)

    def close(self) -> None:
        self._close_clients()
        for proc in self._procs.values():
            procs.CHILDREN.stop(proc)
        self._procs.clear()

    def pid(self, member: int) -> int:
        return self._procs[member].pid

    def status(self, member: int) -> dict[str, Any]:
        raw = resp_call(self._resp_ports[member], b"STATUS")
        status: dict[str, Any] = json.loads(raw)
        return status

    def leader(self, timeout_s: float) -> int:
        by_addr = {f"127.0.0.1:{port}": m for m, port in self._raft_ports.items()}

        def agreed() -> int | None:
            named = set()
            for member in self.members:
                if self._procs[member].poll() is not None:
                    continue
                st = self.status(member)
                named.add(by_addr.get(st["leader"] or ""))
                if st["state"] == "leader":
                    named.add(member)
            if len(named) == 1 and None not in named:
                return named.pop()
            return None

        result: int = poll_until(agreed, timeout_s, "PySyncObj agreeing on a leader")
        return result

    def kill(self, member: int) -> None:
        procs.CHILDREN.signal(self._procs[member], signal.SIGKILL)

    def restart(self, member: int) -> None:
        old = self._procs[member]
        old.wait(timeout=procs.STOP_TIMEOUT_S)
        self._spawn(member)

    def repair(self, member: int) -> None:
        # A member stuck after its restart is started again from an empty data directory: it
        # then receives the whole state from the leader (the cluster stays 3 members).
        assert self._workdir is not None
        procs.CHILDREN.kill(self._procs[member])
        shutil.rmtree(self._workdir / f"m{member}", ignore_errors=True)
        self._spawn(member)

    def notes(self) -> dict[str, str]:
        return {
            "version": f"PySyncObj {self._version}",
            "server": "one process per member: SyncObj holding a dict (set/get replicated "
            "methods), file journal + full dump file, asyncio RESP front end",
            "fsync": "none: PySyncObj has no fsync (its journal is an mmap flushed by the OS)",
            "write_client": "redis-benchmark against the leader's RESP front end",
            "sequential_client": "the benchmark's asyncio RESP client, one connection",
            "read": "GET as a replicated method call: a read through the Raft log (PySyncObj "
            "offers no ReadIndex or lease read; local reads are not linearizable)",
            "raft_timings": "PySyncObj defaults: election timeout 0.4-1.4 s, append entries "
            "every 0.1 s, autoTick every 0.05 s",
        }

    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        port = self._resp_ports[self.leader(START_TIMEOUT_S)]
        conn = await RespConnection.open("127.0.0.1", port)
        value = b"v" * 100
        counter = 0

        async def one(_: int) -> None:
            nonlocal counter
            counter += 1
            await conn.call(b"SET", b"seq:%d" % (counter % 100_000), value)

        try:
            result = await closed_loop(
                1, one, duration_s=duration_s, warmup_s=min(1.0, duration_s / 5), ops_max=ops_max
            )
        finally:
            conn.close()
        out = result.summary()
        out["client"] = "asyncio RESP client, 1 connection, 1 request in flight"
        return out

    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        conn = await RespConnection.open("127.0.0.1", self._resp_ports[member])
        try:
            local = await conn.call(b"LGET", key)
        finally:
            conn.close()
        return bool(local == value)
