"""haperf as a 3-member cluster: `haperf.kv.localcluster.LocalCluster` (a KVService per member).

Owns the haperf side of the comparison: the cluster with its default Raft timings (10 ms ticks,
50 ms heartbeat, 150-300 ms election timeout, fsync on, quorum acks), redis-benchmark with
pipelining against the leader's RESP port for throughput and reads (GET is linearizable:
ReadIndex), the async `haperf.kv.client.KVClient` for the sequential latency, and the node's
admin status for the caught-up check (the restarted member has applied at least the commit index
the leader reported after the marker write). Invariant: processes are started, killed and
stopped only through the LocalCluster, which signals only its own children.
"""

import asyncio
import signal
from pathlib import Path
from typing import Any

from clusterbench.load import closed_loop
from clusterbench.system import RespSystem, Unavailable

LEADER_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class HaperfSystem(RespSystem):
    name = "haperf"

    def __init__(self) -> None:
        super().__init__()
        self._cluster: Any = None
        self._marker_commit: dict[bytes, int] = {}

    def check_available(self) -> None:
        try:
            from haperf.kv import client, localcluster
        except ImportError as exc:
            raise Unavailable(f"haperf's KV cluster is not importable: {exc}") from exc
        del client, localcluster
        self._check_redis_benchmark()

    def start(self, workdir: Path) -> None:
        from haperf.kv.localcluster import LocalCluster

        self._cluster = LocalCluster(n=len(self.members), base_dir=str(workdir / "cluster"))
        self._cluster.start()
        self._cluster.wait_ready(READY_TIMEOUT_S)
        self.members = tuple(sorted(self._cluster.members))

    def close(self) -> None:
        self._close_clients()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def resp_port(self, member: int) -> int:
        return _port(self._cluster.members[member].resp)

    def pid(self, member: int) -> int:
        pid: int = self._cluster.pid(member)
        return pid

    def leader(self, timeout_s: float) -> int:
        leader: int = self._cluster.wait_leader(timeout_s)
        return leader

    def kill(self, member: int) -> None:
        self._cluster.kill(member, signal.SIGKILL)

    def restart(self, member: int) -> None:
        self._cluster.restart(member)

    def repair(self, member: int) -> None:
        # A haperf member that did not catch up is counted and left as it is (no repair).
        del member

    def notes(self) -> dict[str, str]:
        from haperf._version import __version__

        return {
            "version": f"haperf {__version__}",
            "server": "one python -m haperf.kv.service process per member (LocalCluster): "
            "RaftNode + KV store + RESP port + admin HTTP",
            "fsync": "on: a write is acknowledged once a majority of voters fsynced it (quorum "
            "acks; group commit: one fsync per batch; the leader sends before its own fsync)",
            "write_client": "redis-benchmark with pipelining against the leader's RESP port",
            "sequential_client": "haperf.kv.client.KVClient (asyncio), 1 request in flight",
            "read": "GET through the leader's RESP port (linearizable: ReadIndex)",
            "raft_timings": "haperf defaults: 10 ms tick, heartbeat 50 ms, election timeout "
            "150-300 ms",
        }

    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        from haperf.kv.client import KVClient

        leader = await asyncio.to_thread(self.leader, LEADER_TIMEOUT_S)
        client = KVClient(self._cluster.members[leader].resp)
        value = b"v" * 100
        counter = 0

        async def one(_: int) -> None:
            nonlocal counter
            counter += 1
            await client.set(b"seq:%d" % (counter % 100_000), value)

        try:
            result = await closed_loop(
                1, one, duration_s=duration_s, warmup_s=min(1.0, duration_s / 5), ops_max=ops_max
            )
        finally:
            await client.close()
        out = result.summary()
        out["client"] = "haperf.kv.client.KVClient, 1 request in flight"
        return out

    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        if key not in self._marker_commit:
            # The marker was acknowledged before this first call: the leader's commit index now
            # covers it, and a member that has applied that far holds it.
            leader = await asyncio.to_thread(self.leader, LEADER_TIMEOUT_S)
            status = await asyncio.to_thread(self._cluster.status, leader)
            self._marker_commit[key] = int(status["commit"])
        status = await asyncio.to_thread(self._cluster.status, member)
        return status is not None and int(status["applied"]) >= self._marker_commit[key]
