"""RaftNode over real loopback TCP (TcpTransport) and DiskStorage: replication, a leader
stop, restart from disk, and EmbeddedRaftNode called from several threads.

127.0.0.1 only; every wait is bounded; nothing asserts on timing.
"""

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from haperf.bench.suites.raftnode import free_ports
from haperf.errors import ConfigError, NodeStoppedError, TransportError
from haperf.raft import NodeConfig, RaftNode
from haperf.raft.embedded import EmbeddedRaftNode
from haperf.runtime.loop import new_event_loop
from tests.raft_node.harness import KV

TIMEOUT_S = 30.0


async def _wait(predicate: object, timeout_s: float = TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_three_nodes_on_tcp_with_disk_storage(tmp_path: Path) -> None:
    async def body() -> None:
        ports = free_ports(3)
        members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        kvs: dict[int, KV] = {}
        nodes: dict[int, RaftNode] = {}

        async def start(i: int) -> RaftNode:
            kvs[i] = KV()
            cfg = NodeConfig(i, members, data_dir=str(tmp_path / f"n{i}"), seed=i)
            nodes[i] = RaftNode(cfg, kvs[i], metadata={"resp": f"r{i}"})
            await nodes[i].start()
            return nodes[i]

        for i in members:
            await start(i)
        try:
            lead = await nodes[1].wait_leader(20_000_000_000)
            await _wait(lambda: nodes[lead].is_leader)
            for k in range(50):
                await nodes[lead].propose(f"k{k}={k}".encode())
            await nodes[lead].propose_many([f"m{k}=1".encode() for k in range(100)], ack="all")
            # Stop the leader: a new one is elected; acknowledged writes are all there.
            await nodes.pop(lead).stop()
            await _wait(lambda: any(n.is_leader for n in nodes.values()))
            new = next(i for i, n in nodes.items() if n.is_leader)
            await nodes[new].propose(b"after=1")
            for k in range(50):
                assert await nodes[new].read(f"k{k}") == str(k)
            # The old leader restarts from its data directory and catches up.
            old = await start(lead)
            commit = nodes[new].status()["commit"]
            await _wait(lambda: old.status()["applied"] >= commit)
            assert kvs[lead].data == kvs[new].data
            assert old.member_metadata(new) == {"resp": f"r{new}"}
        finally:
            for n in nodes.values():
                await n.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 120))
    finally:
        loop.close()


def test_embedded_node_from_several_threads(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    kv = KV()
    node = EmbeddedRaftNode(
        NodeConfig(1, {1: f"127.0.0.1:{port}"}, data_dir=str(tmp_path / "e1")), kv
    )
    with node:
        assert node.wait_leader(10_000_000_000) == 1
        errors: list[BaseException] = []

        def worker(t: int) -> None:
            try:
                for k in range(20):
                    node.propose(f"t{t}k{k}={k}".encode())
                assert node.read(f"t{t}k19") == "19"
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(TIMEOUT_S)
        assert not errors, errors
        assert node.status()["applied"] >= 80
        assert len(kv.data) == 80
        with pytest.raises(ConfigError):  # errors cross the thread boundary with their type
            node.propose(b"")
    node.stop()  # idempotent after the context manager stopped it
    with pytest.raises(NodeStoppedError):
        node.propose(b"late=1")


def test_snapshot_over_tcp_and_restart_from_a_disk_snapshot(tmp_path: Path) -> None:
    """Thesis 5: a follower down while the leader compacted gets the snapshot over TCP; a node
    restarted from a data dir holding a snapshot restores it and replays the log after it."""

    async def body() -> None:
        ports = free_ports(3)
        members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        kvs: dict[int, KV] = {}
        nodes: dict[int, RaftNode] = {}

        async def start(i: int) -> RaftNode:
            kvs[i] = KV()
            cfg = NodeConfig(
                i, members, data_dir=str(tmp_path / f"n{i}"), seed=i, snapshot_entries=25
            )
            nodes[i] = RaftNode(cfg, kvs[i])
            await nodes[i].start()
            return nodes[i]

        for i in members:
            await start(i)
        try:
            lead = await nodes[1].wait_leader(20_000_000_000)
            await _wait(lambda: nodes[lead].is_leader)
            f = next(i for i in nodes if i != lead)
            f_last = nodes[f].status()["last_index"]
            await nodes.pop(f).stop()
            for k in range(80):
                await nodes[lead].propose(f"k{k}={k}".encode())
            assert nodes[lead].status()["snapshot_index"] > f_last
            # Whichever node leads when f returns (leadership may move under load), its log
            # must no longer reach back to f's: only a snapshot can catch f up.
            await _wait(lambda: all(n.status()["snapshot_index"] > f_last for n in nodes.values()))
            lagging = await start(f)
            commit = nodes[lead].status()["commit"]
            await _wait(lambda: lagging.status()["applied"] >= commit)
            assert lagging.status()["counters"]["snapshots_installed"] >= 1
            assert kvs[f].data == kvs[lead].data
            # Restart the leader itself from its own snapshot + log.
            await nodes.pop(lead).stop()
            again = await start(lead)
            assert again.status()["snapshot_index"] > 0
            assert kvs[lead].data.get("k10") == "10"  # restored before any new leader
            await _wait(lambda: any(n.is_leader for n in nodes.values()))
            new = next(i for i, n in nodes.items() if n.is_leader)
            await nodes[new].propose(b"last=1")
            commit = nodes[new].status()["commit"]
            await _wait(lambda: all(n.status()["applied"] >= commit for n in nodes.values()))
            assert kvs[1].data == kvs[2].data == kvs[3].data
        finally:
            for n in nodes.values():
                await n.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 120))
    finally:
        loop.close()


def test_add_and_remove_a_voter_over_tcp(tmp_path: Path) -> None:
    """A node added at run time is dialled by every member once its address is replicated
    (the transport refuses senders it does not know), catches up as a learner, votes, and is
    removed again."""

    async def body() -> None:
        ports = free_ports(4)
        members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports[:3])}
        addr4 = f"127.0.0.1:{ports[3]}"
        kvs: dict[int, KV] = {}
        nodes: dict[int, RaftNode] = {}
        for i in members:
            kvs[i] = KV()
            nodes[i] = RaftNode(NodeConfig(i, members, data_dir=str(tmp_path / f"n{i}")), kvs[i])
            await nodes[i].start()
        try:
            lead = await nodes[1].wait_leader(20_000_000_000)
            await _wait(lambda: nodes[lead].is_leader)
            for k in range(20):
                await nodes[lead].propose(f"k{k}={k}".encode())
            kvs[4] = KV()
            cfg4 = NodeConfig(4, members, data_dir=str(tmp_path / "n4"), join=True, listen=addr4)
            nodes[4] = RaftNode(cfg4, kvs[4], metadata={"resp": "r4"})
            await nodes[4].start()
            await nodes[lead].add_voter(4, addr4, {"resp": "r4"})
            await nodes[lead].propose(b"with4=1")
            commit = nodes[lead].status()["commit"]
            await _wait(lambda: nodes[4].status()["applied"] >= commit)
            assert kvs[4].data == kvs[lead].data
            assert 4 in nodes[4].status()["voters"]
            assert all(n.member_metadata(4) == {"resp": "r4"} for n in nodes.values())
            await nodes[lead].remove(4)
            await nodes.pop(4).stop()
            assert await nodes[lead].propose(b"without4=1") > 0
            assert 4 not in nodes[lead].status()["voters"]
        finally:
            for n in nodes.values():
                await n.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 120))
    finally:
        loop.close()


def test_stop_after_a_failed_start_returns_and_frees_the_data_dir(tmp_path: Path) -> None:
    """start() on a taken listen address raises TransportError; stop() afterwards returns at
    once (it used to wait forever for a stop that never began), and the data directory's lock
    is released so a second node can open it."""

    async def body() -> None:
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        try:
            addr = f"127.0.0.1:{holder.getsockname()[1]}"
            node = RaftNode(NodeConfig(1, {1: addr}, data_dir=str(tmp_path / "n1")), KV())
            with pytest.raises(TransportError, match="cannot listen"):
                await node.start()
            await asyncio.wait_for(node.stop(), 5)
        finally:
            holder.close()
        again = RaftNode(NodeConfig(1, {1: addr}, data_dir=str(tmp_path / "n1")), KV())
        await again.start()
        await again.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 60))
    finally:
        loop.close()


def test_a_bad_address_is_refused_at_construction_and_a_failed_start_frees_the_data_dir(
    tmp_path: Path,
) -> None:
    """Bad configuration raises ConfigError when NodeConfig is built; and whatever makes start()
    fail after the storage opened (here a state machine whose restore raises) releases the data
    directory's lock, so the next node on that directory starts."""
    with pytest.raises(ConfigError, match="members\\[1\\]"):
        NodeConfig(1, {1: "127.0.0.1:notaport"}, data_dir=str(tmp_path / "n1"))

    class BrokenRestore(KV):
        def restore(self, data: bytes) -> None:
            raise RuntimeError("restore failed on purpose")

    async def body() -> None:
        addr = f"127.0.0.1:{free_ports(1)[0]}"
        cfg = NodeConfig(1, {1: addr}, data_dir=str(tmp_path / "n1"), snapshot_entries=5)
        first = RaftNode(cfg, KV())
        await first.start()
        await first.wait_leader(20_000_000_000)
        for k in range(12):
            await first.propose(f"k{k}={k}".encode())
        assert first.status()["snapshot_index"] > 0
        await first.stop()
        broken = RaftNode(cfg, BrokenRestore())
        with pytest.raises(RuntimeError, match="on purpose"):
            await broken.start()
        again = RaftNode(cfg, KV())  # no stop() of the broken node in between
        await again.start()
        await again.stop()
        await asyncio.wait_for(broken.stop(), 5)

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 60))
    finally:
        loop.close()
