"""What the RESP path adds to one request: `python benchmarks/kv/resp_latency.py [--requests N]`.

Owns a small latency probe (not a test, not a registry row): in one process on the haperf loop
(uvloop when importable), a 1-node RaftNode (fsync off, no data directory) with a KVStore and a
RespServer, and a KVClient sending sequential requests. It prints p50/p99 of node.propose of a
SET command (no RESP at all), and of SET, GET and PING through KVClient -> RespServer, so the
difference is the client and server cost per request. Everything runs on 127.0.0.1 and stops
by itself.
"""

import argparse
import asyncio
import time

from haperf.bench.suites.raftnode import free_ports
from haperf.kv import commands as c
from haperf.kv.client import KVClient
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore
from haperf.raft.node import NodeConfig, RaftNode
from haperf.runtime.loop import run

VALUE = b"x" * 100


def _summary(samples_ns: list[int]) -> str:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1e3
    p99 = ordered[int(0.99 * (len(ordered) - 1))] / 1e3
    return f"p50 {p50:8.1f} us   p99 {p99:9.1f} us"


async def probe(requests: int) -> None:
    raft_port, resp_port = free_ports(2)
    store = KVStore()
    node = RaftNode(
        NodeConfig(1, {1: f"127.0.0.1:{raft_port}"}, fsync=False),
        store,
        metadata={"resp": f"127.0.0.1:{resp_port}"},
    )
    await node.start()
    server = RespServer(node, store, f"127.0.0.1:{resp_port}")
    try:
        await node.wait_leader(10_000_000_000)
        while not node.is_leader:
            await asyncio.sleep(0.01)
        await server.start()
        rows: dict[str, list[int]] = {"node.propose(SET)": [], "SET": [], "GET": [], "PING": []}
        for i in range(requests):
            t = time.perf_counter_ns()
            await node.propose(c.encode_set(b"p%d" % i, VALUE, time.time_ns()))
            rows["node.propose(SET)"].append(time.perf_counter_ns() - t)
        async with KVClient(server.address) as client:
            for i in range(requests):
                t = time.perf_counter_ns()
                await client.set(b"k%d" % i, VALUE)
                rows["SET"].append(time.perf_counter_ns() - t)
            for i in range(requests):
                t = time.perf_counter_ns()
                await client.get(b"k%d" % i)
                rows["GET"].append(time.perf_counter_ns() - t)
            for _ in range(requests):
                t = time.perf_counter_ns()
                await client.ping()
                rows["PING"].append(time.perf_counter_ns() - t)
        for name, samples in rows.items():
            print(f"{name:18s} {_summary(samples)}")
    finally:
        await server.close()
        await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    run(probe(args.requests))


if __name__ == "__main__":
    main()
