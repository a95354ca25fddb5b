"""The whole run flow in-process: a fake cluster and fake clients, the real runner and nemesis.

The fake cluster has one linearizable store shared by every "node"; a killed node refuses
connections and breaks in-flight requests (after maybe applying them: the client must record
`info`), a paused node hangs its requests (the client times out: `info`). The runner's steps
run for real: schedule, nemesis over the fake processes and the real FaultProxy, workload,
heal, restart-all, final reads, catch-up check, history checks, summary.json. A node that never
catches up must fail the run.
"""

import asyncio
import random
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from haperf.chaos.runner import RunConfig, RunResult, describe, run


@dataclass(frozen=True)
class Member:
    id: int
    resp: str


class FakeCluster:
    def __init__(self, n: int, *, stuck_node: int = 0) -> None:
        self.members = {i: Member(i, f"fake:{i}") for i in range(1, n + 1)}
        self.state = dict.fromkeys(self.members, "down")
        self.data: dict[str, str] = {}
        self.commit = 0
        self.stuck_node = stuck_node
        self.calls: list[tuple[str, int]] = []
        self.rng = random.Random(3)

    def start(self, ids: Any = None) -> None:
        for i in ids or self.members:
            self.state[i] = "up"

    def stop(self, node_id: int | None = None) -> None:
        for i in [node_id] if node_id else list(self.members):
            self.state[i] = "down"

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        self.calls.append(("kill", node_id))
        self.state[node_id] = "down"

    def restart(self, node_id: int) -> None:
        self.calls.append(("restart", node_id))
        self.state[node_id] = "up"

    def pause(self, node_id: int) -> None:
        self.calls.append(("pause", node_id))
        self.state[node_id] = "paused"

    def resume(self, node_id: int) -> None:
        self.calls.append(("resume", node_id))
        self.state[node_id] = "up"

    def alive(self, node_id: int) -> bool:
        return self.state[node_id] != "down"

    def leader_id(self) -> int:
        up = [i for i, s in self.state.items() if s == "up"]
        return min(up) if up else 0

    def wait_leader(self, timeout_s: float) -> int:
        return self.leader_id()

    def wait_ready(self, timeout_s: float) -> None:
        return None

    def status(self, node_id: int) -> dict[str, Any] | None:
        if self.state[node_id] != "up":
            return None
        applied = self.commit - 1 if node_id == self.stuck_node else self.commit
        role = "leader" if node_id == self.leader_id() else "follower"
        return {"role": role, "term": 1, "commit": self.commit, "applied": applied}

    def close(self) -> None:
        self.stop()


class FakeKV:
    def __init__(self, cluster: FakeCluster, node: int) -> None:
        self.cluster = cluster
        self.node = node

    async def _reach(self) -> None:
        await asyncio.sleep(0.002)  # a round trip: keeps the history (and the check) small
        while self.cluster.state[self.node] == "paused":
            await asyncio.sleep(0.01)
        if self.cluster.state[self.node] == "down":
            raise ConnectionResetError(f"node {self.node} is down")

    async def _apply(self, fn: Any) -> Any:
        await self._reach()
        result = fn()
        self.cluster.commit += 1
        await asyncio.sleep(0)
        await self._reach()  # the reply can be lost after the write applied
        return result

    async def get(self, key: str) -> Any:
        await self._reach()
        value = self.cluster.data.get(key)
        return None if value is None else value.encode()

    async def set(self, key: str, value: Any) -> Any:
        return await self._apply(lambda: self.cluster.data.__setitem__(key, value))

    async def cas(self, key: str, expected: Any, new: Any) -> Any:
        def op() -> bool:
            if self.cluster.data.get(key) != expected:
                return False
            self.cluster.data[key] = new
            return True

        return bool(await self._apply(op))

    async def close(self) -> None:
        return None


def fake_run(tmp_path: Path, **kwargs: Any) -> tuple[RunResult, FakeCluster]:
    holder: dict[str, FakeCluster] = {}

    def make_cluster(config: RunConfig, proxy: Any, base: Path) -> FakeCluster:
        holder["c"] = FakeCluster(config.nodes, **kwargs)
        return holder["c"]

    async def connect(address: str, follow: bool, op_timeout_ns: int) -> FakeKV:
        cluster = holder["c"]
        node = int(address.split(":")[1])
        if cluster.state[node] == "down":
            raise ConnectionRefusedError(f"node {node} is down")
        return FakeKV(cluster, node)

    config = RunConfig(
        time_s=4.0,
        nodes=3,
        clients=4,
        keys=2,
        seed=5,
        out=str(tmp_path / "out"),
        op_timeout_s=0.2,
        settle_s=2.0,
        fault_s_min=0.2,
        fault_s_max=0.4,
        gap_s_min=0.05,
        gap_s_max=0.1,
    )
    result = run(config, progress=lambda line: None, make_cluster=make_cluster, connect=connect)
    return result, holder["c"]


def test_full_flow_records_faults_and_outcomes_and_passes_on_a_correct_store(
    tmp_path: Path,
) -> None:
    result, cluster = fake_run(tmp_path)
    text = describe(result)
    assert result.ok, text
    summary = result.summary
    records = [orjson.loads(x) for x in (result.out / "history.jsonl").read_bytes().splitlines()]
    nemesis = [r for r in records if r["process"] == "nemesis"]
    assert {r["f"] for r in nemesis} >= {"kill", "pause", "partition", "delay", "drop"}, text
    assert nemesis[-1]["f"] == "restart-all"
    # Every kill was followed by a restart, every pause by a resume.
    kills = [n for c, n in cluster.calls if c == "kill"]
    restarts = [n for c, n in cluster.calls if c == "restart"]
    assert kills and sorted(kills) == sorted(restarts)
    assert cluster.calls.count(("pause", 1)) + cluster.calls.count(("pause", 2)) + (
        cluster.calls.count(("pause", 3))
    ) == len([c for c in cluster.calls if c[0] == "resume"])
    ops = summary["ops"]
    assert ops["write"]["ok"] > 0 and ops["read"]["ok"] > 0
    # Kills and pauses made some outcomes uncertain, and those retired their processes.
    assert sum(v["info"] for v in ops.values()) > 0, text
    assert summary["processes"] > 4
    assert summary["caught_up"]["ok"]
    assert summary["checks"]["lost_writes"] == []
    assert summary["checks"]["linearizable"]["verdict"] == "linearizable"
    assert set(summary["final"]) == {"k0", "k1"}
    assert (result.out / "summary.json").is_file()
    assert "verdict" in text and "faults:" in text


def test_a_node_that_never_catches_up_fails_the_run(tmp_path: Path) -> None:
    result, _ = fake_run(tmp_path, stuck_node=2)
    assert not result.ok
    assert any("caught up" in v for v in result.summary["violations"])
