"""RaftNode benchmarks: durable replication on a 3-node cluster over loopback TCP.

Owns the rows raft.log_replication_per_entry (the specification's target: one sequential propose
-> committed on a quorum (fsync on every node) and applied on the leader; extra: p50/p99 in ms),
raft.node_pipelined (64 concurrent clients each proposing batches of 16: ns per command, extra:
writes/s) and raft.node_read_index (64 concurrent barrier() calls sharing one ReadIndex round:
ns per read). The leader runs in the bench process on the bench loop; the two followers are
child processes (`python -c ... serve_follower`), each its own RaftNode with a DiskStorage and
fsync on, so all three fsync independently as in production. Elections are pinned: the bench
node campaigns at once and every node uses a long election timeout, so the pauses of the bench
harness between repeats cannot move the leadership. Children exit when their stdin closes (the
bench process ended or cleanup ran); temporary data directories are removed by cleanup.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from haperf.bench.registry import Benchmark, Op, register_all
from haperf.bench.timing import bench_loop

VALUE = b"v" * 100  # 100-byte commands, as the cluster benchmarks
PIPELINE_CLIENTS = 64
PIPELINE_BATCH = 16
READ_CLIENTS = 64
SAMPLES_MAX = 200_000  # latency samples kept per row
START_TIMEOUT_S = 30.0
# Long election timeout (ticks of 10 ms): the harness pauses the loop between repeats.
BENCH_ELECTION_TICKS = 1000
BENCH_HEARTBEAT_TICKS = 5


class _Null:
    """A state machine that does nothing (the rows measure replication, not the application)."""

    def apply(self, index: int, data: bytes) -> object:
        return None

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        return None


def free_ports(n: int) -> list[int]:
    """n free loopback ports (bound then released: fine for a benchmark on one machine)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_options(**overrides: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "election_ticks": BENCH_ELECTION_TICKS,
        "heartbeat_ticks": BENCH_HEARTBEAT_TICKS,
        "snapshot_entries": 1_000_000,
    }
    opts.update(overrides)
    return opts


def serve_follower(argv: list[str]) -> None:
    """Child process entry: argv = [id, members JSON, data_dir, options JSON]; runs a RaftNode
    until stdin closes."""
    from haperf.raft.node import NodeConfig, RaftNode
    from haperf.runtime.loop import new_event_loop

    node_id = int(argv[0])
    members = {int(k): v for k, v in json.loads(argv[1]).items()}
    options = json.loads(argv[3])

    async def main() -> None:
        node = RaftNode(NodeConfig(node_id, members, data_dir=argv[2], **options), _Null())
        await node.start()
        loop = asyncio.get_running_loop()
        eof = loop.create_future()

        def on_stdin() -> None:
            if not os.read(sys.stdin.fileno(), 4096) and not eof.done():
                eof.set_result(None)

        loop.add_reader(sys.stdin.fileno(), on_stdin)
        print("ready", flush=True)
        await eof
        loop.remove_reader(sys.stdin.fileno())
        await node.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


class BenchCluster:
    """Leader in this process (on `loop`), two followers in child processes, fsync on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, **options: Any) -> None:
        from haperf.raft.node import NodeConfig, RaftNode

        self.loop = loop
        self.tmp = tempfile.mkdtemp(prefix="haperf-raftnode-")
        ports = free_ports(3)
        self.members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        opts = node_options(**options)
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            for node_id in (2, 3):
                self.procs.append(self._spawn(node_id, opts))
            for p in self.procs:
                assert p.stdout is not None
                if p.stdout.readline().strip() != b"ready":
                    raise RuntimeError("a benchmark follower failed to start")
            self.node = RaftNode(
                NodeConfig(1, self.members, data_dir=os.path.join(self.tmp, "n1"), **opts),
                _Null(),
            )
            loop.run_until_complete(self._elect())
        except BaseException:
            self.close()
            raise

    def _spawn(self, node_id: int, opts: dict[str, Any]) -> subprocess.Popen[bytes]:
        code = (
            "import sys; from haperf.bench.suites.raftnode import serve_follower; "
            "serve_follower(sys.argv[1:])"
        )
        args = [
            str(node_id),
            json.dumps(self.members),
            os.path.join(self.tmp, f"n{node_id}"),
            json.dumps(opts),
        ]
        return subprocess.Popen(
            [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    async def _elect(self) -> None:
        await self.node.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.node.is_leader:
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark cluster elected no leader")
            await self.node.campaign()
            await asyncio.sleep(0.05)
        await self.node.propose(VALUE)  # every member record applied, connections warm

    def close(self) -> None:
        node = getattr(self, "node", None)
        if node is not None and not self.loop.is_closed():
            self.loop.run_until_complete(node.stop())
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _percentiles(samples: list[int]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)
    return {
        "p50_ms": s[len(s) // 2] / 1e6,
        "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] / 1e6,
    }


def _sequential() -> Op:
    loop = bench_loop()
    cluster = BenchCluster(loop)
    node = cluster.node
    samples: list[int] = []
    clock = time.perf_counter_ns

    async def one() -> None:
        t = clock()
        await node.propose(VALUE)
        if len(samples) < SAMPLES_MAX:
            samples.append(clock() - t)

    return Op(one, is_async=True, cleanup=cluster.close, extra=lambda: _percentiles(samples))


def _pipelined() -> Op:
    loop = bench_loop()
    cluster = BenchCluster(loop)
    node = cluster.node
    batch = [VALUE] * PIPELINE_BATCH
    per_call = PIPELINE_CLIENTS * PIPELINE_BATCH
    done = {"commands": 0, "ns": 0}

    async def round_() -> None:
        t = time.perf_counter_ns()
        await asyncio.gather(*(node.propose_many(batch) for _ in range(PIPELINE_CLIENTS)))
        done["ns"] += time.perf_counter_ns() - t
        done["commands"] += per_call

    def extra() -> dict[str, float]:
        if not done["ns"]:
            return {}
        return {"writes_per_s": done["commands"] / (done["ns"] / 1e9)}

    return Op(round_, is_async=True, ops_per_call=per_call, cleanup=cluster.close, extra=extra)


def _reads() -> Op:
    loop = bench_loop()
    cluster = BenchCluster(loop)
    node = cluster.node

    async def round_() -> None:
        await asyncio.gather(*(node.barrier() for _ in range(READ_CLIENTS)))

    return Op(round_, is_async=True, ops_per_call=READ_CLIENTS, cleanup=cluster.close)


def _available() -> bool:
    return sys.platform.startswith("linux")


_ROWS: list[tuple[str, str, Callable[[], Op]]] = [
    (
        "raft.log_replication_per_entry",
        "3 nodes (leader here, 2 child processes), loopback TCP, fsync on: one sequential "
        "propose -> committed and applied on the leader",
        _sequential,
    ),
    (
        "raft.node_pipelined",
        f"same cluster, {PIPELINE_CLIENTS} clients x propose_many({PIPELINE_BATCH}) in flight: "
        "per command",
        _pipelined,
    ),
    (
        "raft.node_read_index",
        f"same cluster, {READ_CLIENTS} concurrent linearizable read barriers (one shared "
        "ReadIndex round): per read",
        _reads,
    ),
]

register_all(
    [
        Benchmark(name, "raft", what, setup, floor="floor.await_call", available=_available)
        for name, what, setup in _ROWS
    ]
)
