"""haperf.kv on the real RaftNode over TCP on 127.0.0.1: one node, then three.

Owns the integration tests of KVStore + RespServer + KVClient with haperf.raft.RaftNode: writes
go through the Raft log, reads through ReadIndex barriers, a node restarted from its data
directory (snapshot + log, fsync off for speed) has every acknowledged key and TTL back, a client
on a follower is redirected to the leader, and after the leader stops a surviving follower
redirects to the new leader. Bounded: every wait has a deadline, every node and server is closed.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from haperf.bench.suites.raftnode import free_ports
from haperf.errors import RedirectError
from haperf.kv import commands as c
from haperf.kv.client import KVClient
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore
from haperf.raft.node import NodeConfig, RaftNode
from haperf.runtime.loop import run as run_loop

TEST_TIMEOUT_S = 40
WAIT_S = 15


async def _until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {WAIT_S} s: {what}")
        await asyncio.sleep(0.01)


class Member:
    def __init__(
        self, node_id: int, raft: dict[int, str], resp: dict[int, str], data: Path
    ) -> None:
        self.id = node_id
        self.raft = raft
        self.resp_addresses = resp
        self.data = data
        self.store = KVStore()
        self.node: RaftNode | None = None
        self.server: RespServer | None = None

    async def start(self, **options: object) -> None:
        self.store = KVStore()
        config = NodeConfig(
            self.id,
            self.raft,
            data_dir=str(self.data),
            fsync=False,
            seed=self.id,
            member_metadata={i: {"resp": a} for i, a in self.resp_addresses.items()},
            **options,  # type: ignore[arg-type]
        )
        self.node = RaftNode(config, self.store, metadata={"resp": self.resp_addresses[self.id]})
        await self.node.start()
        self.server = RespServer(self.node, self.store, self.resp_addresses[self.id])
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self.node is not None:
            await self.node.stop()
            self.node = None


def run(
    n: int, tmp_path: Path, body: Callable[[list[Member]], Awaitable[None]], **options: object
) -> None:
    async def main() -> None:
        ports = free_ports(2 * n)
        raft = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(n)}
        resp = {i + 1: f"127.0.0.1:{ports[n + i]}" for i in range(n)}
        members = [Member(i, raft, resp, tmp_path / f"n{i}") for i in raft]
        try:
            for m in members:
                await m.start(**options)
            await asyncio.wait_for(body(members), TEST_TIMEOUT_S)
        finally:
            for m in members:
                await m.stop()

    run_loop(main())


def _leader(members: list[Member]) -> Member | None:
    for m in members:
        if m.node is not None and m.node.is_leader:
            return m
    return None


def test_single_node_serves_and_restarts_from_disk(tmp_path: Path) -> None:
    async def body(members: list[Member]) -> None:
        (m,) = members
        assert m.node is not None
        await m.node.wait_leader(WAIT_S * 1_000_000_000)
        await _until(lambda: m.node is not None and m.node.is_leader, "single node leads")
        async with KVClient(m.resp_addresses[1]) as client:
            assert await client.set("k", "v")
            assert await client.set("ttl", "x", ttl_ns=3600 * 10**9)
            assert await client.incr("n", 41) == 41
            assert await client.cas("k", "v", "w")
            replies = await client.pipeline([[b"SET", b"p%d" % i, b"%d" % i] for i in range(300)])
            assert replies == ["OK"] * 300
            assert await client.get("k") == b"w"
            assert await client.mget("p0", "p299", "zz") == [b"0", b"299", None]
            info = await client.info("raft")
            assert info["raft_role"] == "leader" and int(info["raft_applied_index"]) >= 304
        # node.read runs an encoded query through ReadIndex.
        assert await m.node.read(c.encode_get(b"n", 0)) == b"41"
        # Restart from the data directory (snapshot_entries is small: a snapshot was taken).
        assert m.node.status()["snapshot_index"] > 0
        await m.stop()
        await m.start(snapshot_entries=100)
        assert m.node is not None
        await m.node.wait_leader(WAIT_S * 1_000_000_000)
        await _until(lambda: m.node is not None and m.node.is_leader, "restarted node leads")
        async with KVClient(m.resp_addresses[1]) as client:
            assert await client.get("k") == b"w"
            assert await client.get("p123") == b"123"
            assert await client.incr("n") == 42
            assert 0 < (m.store.ttl_ns(b"ttl") or 0) <= 3600 * 10**9

    run(1, tmp_path, body, snapshot_entries=100)


def test_three_nodes_redirect_replicate_and_fail_over(tmp_path: Path) -> None:
    async def body(members: list[Member]) -> None:
        await _until(lambda: _leader(members) is not None, "a leader")
        leader = _leader(members)
        assert leader is not None
        followers = [m for m in members if m is not leader]
        await _until(
            lambda: all(
                f.node is not None and f.node.leader_id == leader.id
                and f.node.member_metadata(leader.id).get("resp")
                for f in followers
            ),
            "followers know the leader and its RESP address",
        )
        # A client that starts on a follower is redirected to the leader.
        async with KVClient(followers[0].resp_addresses[followers[0].id]) as client:
            assert await client.set("a", "1")
            assert client.address == leader.resp_addresses[leader.id]
            assert await client.incr("n", 5) == 5
            assert await client.pipeline([[b"SET", b"b%d" % i, b"x"] for i in range(100)]) == (
                ["OK"] * 100
            )
        # Every replica applies the same commands (same clock: the leader's, from the command).
        await _until(
            lambda: all(m.store.get(b"b99") == b"x" for m in members), "replicated to all"
        )
        assert len({m.store.clock_ns for m in members}) == 1
        # Redirect errors as a non-following client sees them.
        async with KVClient(
            followers[1].resp_addresses[followers[1].id], follow_redirects=False
        ) as client:
            with pytest.raises(RedirectError) as err:
                await client.set("c", "1")
            assert err.value.address == leader.resp_addresses[leader.id]
            # Reads are served by the follower itself, behind a ReadIndex from the leader.
            assert await client.get("a") == b"1"
            assert await client.mget("b0", "none") == [b"x", None]
        # The leader stops; a follower that survives redirects to the new leader.
        await leader.stop()
        await _until(lambda: _leader(followers) is not None, "a new leader")
        new = _leader(followers)
        assert new is not None
        survivor = followers[0] if followers[0] is not new else followers[1]
        await _until(
            lambda: survivor.node is not None and survivor.node.leader_id == new.id,
            "the survivor follows the new leader",
        )
        async with KVClient(survivor.resp_addresses[survivor.id]) as client:
            assert await client.get("a") == b"1"
            assert await client.incr("n") == 6
            assert client.address == new.resp_addresses[new.id]

    run(3, tmp_path, body)


def test_leader_ack_mode_still_answers_results(tmp_path: Path) -> None:
    """ack="leader" acknowledges before apply; replies that need a result wait for a quorum."""

    async def body(members: list[Member]) -> None:
        (m,) = members
        assert m.node is not None
        await _until(lambda: m.node is not None and m.node.is_leader, "single node leads")
        assert m.server is not None and m.server.leader_ack
        async with KVClient(m.resp_addresses[1]) as client:
            assert await client.set("k", "1")
            assert await client.incr("k", 2) == 3
            assert not await client.set("k", "x", nx=True)
            assert await client.set("k", "y", xx=True)
            assert await client.cas("k", "y", "z")
            assert await client.delete("k", "none") == 1
            assert await client.pipeline([[b"SET", b"p", b"1"], [b"INCR", b"p"]]) == ["OK", 2]

    run(1, tmp_path, body, ack="leader")
