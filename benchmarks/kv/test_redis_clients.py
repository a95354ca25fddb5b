"""Real Redis clients against haperf's RESP server on a real 3-node RaftNode cluster (127.0.0.1).

Owns the compatibility checks that need peers (CI installs the `peers` extra and Debian's
redis-tools before running benchmarks/): redis-py with its default RESP3 handshake, with
protocol=2, and with its pure-Python parsers instead of hiredis; redis-py's MovedError naming
the leader when a follower is asked to write; redis-cli one-shot commands and `redis-cli -c`
following the redirect on its own; redis-benchmark with pipelining finishing its run. Skipped
only when redis-py or the redis-tools binaries are absent. Every wait is bounded; the cluster
and its servers are closed by the test that started them.
"""

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from haperf.bench.suites.raftnode import free_ports
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore
from haperf.raft.node import NodeConfig, RaftNode
from haperf.runtime.loop import run as run_loop

TIMEOUT_S = 60


async def _cluster(n: int) -> tuple[list[RaftNode], list[RespServer], list[KVStore]]:
    ports = free_ports(2 * n)
    raft = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(n)}
    resp = {i + 1: f"127.0.0.1:{ports[n + i]}" for i in range(n)}
    meta = {i: {"resp": a} for i, a in resp.items()}
    nodes, servers, stores = [], [], []
    for i in raft:
        store = KVStore()
        node = RaftNode(
            NodeConfig(i, raft, seed=i, member_metadata=meta), store, metadata={"resp": resp[i]}
        )
        await node.start()
        server = RespServer(node, store, resp[i])
        await server.start()
        nodes.append(node)
        servers.append(server)
        stores.append(store)
    return nodes, servers, stores


def run(body: Callable[[list[RaftNode], list[RespServer], list[KVStore]], Awaitable[None]]) -> None:
    async def main() -> None:
        nodes, servers, stores = await _cluster(3)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT_S
            while not any(n.is_leader for n in nodes) or any(
                not n.leader_id or not n.member_metadata(n.leader_id) for n in nodes
            ):
                assert loop.time() < deadline, "no leader elected"
                await asyncio.sleep(0.02)
            await asyncio.wait_for(body(nodes, servers, stores), TIMEOUT_S)
        finally:
            for server in servers:
                await server.close()
            for node in nodes:
                await node.stop()

    run_loop(main())


def _roles(
    nodes: list[RaftNode], servers: list[RespServer]
) -> tuple[RespServer, RespServer, int]:
    leader = next(i for i, n in enumerate(nodes) if n.is_leader)
    follower = next(i for i, n in enumerate(nodes) if not n.is_leader)
    return servers[leader], servers[follower], leader


def _port(server: RespServer) -> int:
    return int(server.address.rpartition(":")[2])


def test_redis_py_unchanged() -> None:
    redis = pytest.importorskip("redis")
    from redis._parsers import _RESP2Parser, _RESP3Parser

    def session(port: int, follower_port: int, **options: Any) -> None:
        pool = redis.ConnectionPool(host="127.0.0.1", port=port, **options)
        r = redis.Redis(connection_pool=pool)
        assert r.ping() is True
        assert r.set("k", "v") is True
        assert r.get("k") == b"v"
        assert r.set("k", "w", nx=True) is None
        assert r.set("t", "1", px=60_000) is True
        assert 0 < r.pttl("t") <= 60_000
        assert r.incr("n") >= 1
        assert r.mget("k", "missing") == [b"v", None]
        assert r.exists("k", "missing") == 1
        assert r.execute_command("CAS", "k", "v", "z") == 1
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.set(f"p{i}", i)
        assert pipe.execute() == [True] * 50
        assert r.delete("k", "p1") == 2
        assert r.info("raft")["raft_role"] == "leader"
        assert r.set("s", "x") is True
        with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
            r.incr("s")
        # A follower answers a write with MOVED naming the leader's RESP address.
        follower_pool = redis.ConnectionPool(host="127.0.0.1", port=follower_port, **options)
        follower = redis.Redis(connection_pool=follower_pool)
        with pytest.raises(redis.exceptions.MovedError) as moved:
            follower.set("k", "1")
        assert (moved.value.host, moved.value.port) == ("127.0.0.1", port)
        pool.disconnect()
        follower_pool.disconnect()

    async def body(nodes: list[RaftNode], servers: list[RespServer], _: list[KVStore]) -> None:
        leader, follower, _i = _roles(nodes, servers)
        for options in (
            {},
            {"protocol": 2},
            {"protocol": 3, "parser_class": _RESP3Parser},
            {"protocol": 2, "parser_class": _RESP2Parser},
        ):
            await asyncio.to_thread(session, _port(leader), _port(follower), **options)

    run(body)


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (Debian: apt-get install redis-tools)")
    return path


async def _exec(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def test_redis_cli_and_cluster_mode_redirect() -> None:
    cli = _need("redis-cli")

    async def body(nodes: list[RaftNode], servers: list[RespServer], stores: list[KVStore]) -> None:
        leader, follower, i = _roles(nodes, servers)
        lp, fp = str(_port(leader)), str(_port(follower))
        assert await _exec(cli, "-p", lp, "set", "foo", "bar") == (0, "OK\n")
        assert await _exec(cli, "-p", lp, "get", "foo") == (0, "bar\n")
        assert await _exec(cli, "-p", lp, "incrby", "n", "5") == (0, "5\n")
        code, out = await _exec(cli, "-p", fp, "set", "foo", "baz")
        assert out.strip() == f"MOVED 0 {leader.address}"
        # Cluster mode follows MOVED by itself.
        code, out = await _exec(cli, "-c", "-p", fp, "set", "foo", "baz")
        assert code == 0 and out.strip().endswith("OK"), out
        assert stores[i].get(b"foo") == b"baz"
        code, out = await _exec(cli, "-p", lp, "info", "raft")
        assert "raft_role:leader" in out

    run(body)


def test_redis_benchmark_pipelined_run() -> None:
    bench = _need("redis-benchmark")

    async def body(nodes: list[RaftNode], servers: list[RespServer], stores: list[KVStore]) -> None:
        leader, _, i = _roles(nodes, servers)
        code, out = await _exec(
            bench, "-p", str(_port(leader)), "-t", "set,get", "-n", "4000", "-P", "16", "-c", "4",
            "-d", "100", "-q",
        )
        assert code == 0, out
        assert "SET:" in out and "GET:" in out and "requests per second" in out, out
        value = stores[i].get(b"key:__rand_int__")  # its payload is random bytes of -d size
        assert value is not None and len(value) == 100

    run(body)
