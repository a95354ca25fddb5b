"""KVClient against RespServers on 127.0.0.1 (FakeNode underneath): typed calls and error mapping.

Owns the client's tests: typed commands, pipelining, redirect following from a follower to the
leader (and the bound on hops when followers point at each other), TRYAGAIN retries, and the
typed errors (-UNKNOWN -> CommitUnknownError, -DROPPED -> ProposalDroppedError, -ERR ->
KVReplyError, a write whose reply never comes -> CommitUnknownError).
"""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    KVReplyError,
    NotLeaderError,
    ProposalDroppedError,
    RedirectError,
)
from haperf.kv.client import KVClient
from haperf.kv.resp import ErrorReply
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore
from tests.kv.fake_node import FakeNode

TEST_TIMEOUT_S = 20


async def _cluster(n: int) -> tuple[list[FakeNode], list[RespServer]]:
    """n fake nodes (node 1 leads), each with its own store and server on a free port."""
    nodes = [FakeNode(KVStore(), i + 1) for i in range(n)]
    servers = [RespServer(node, node.store, "127.0.0.1:0") for node in nodes]
    for server in servers:
        await server.start()
    metadata = {i + 1: {"resp": s.address} for i, s in enumerate(servers)}
    for node in nodes:
        node.metadata = {k: dict(v) for k, v in metadata.items()}
    return nodes, servers


def run(n: int, body: Callable[[list[FakeNode], list[RespServer]], Awaitable[None]]) -> None:
    async def main() -> None:
        nodes, servers = await _cluster(n)
        try:
            await asyncio.wait_for(body(nodes, servers), TEST_TIMEOUT_S)
        finally:
            for server in servers:
                await server.close()

    asyncio.run(main())


def test_typed_commands() -> None:
    async def body(nodes: list[FakeNode], servers: list[RespServer]) -> None:
        async with KVClient(servers[0].address) as client:
            assert await client.ping()
            assert await client.set("k", "v")
            assert not await client.set("k", "w", nx=True)
            assert await client.set(b"k", b"w", xx=True, ttl_ns=5_000_000_001)
            assert nodes[0].store.ttl_ns(b"k") is not None
            assert await client.get("k") == b"w"
            assert await client.get("nope") is None
            assert await client.cas("k", "w", "z")
            assert not await client.cas("k", "w", "y")
            assert await client.incr("n") == 1
            assert await client.incr("n", -5) == -4
            assert await client.exists("k", "n", "nope") == 2
            assert await client.mget("k", "nope") == [b"z", None]
            assert await client.delete("k", "nope") == 1
            assert await client.leader() == (1, servers[0].address)
            info = await client.info("raft")
            assert info["raft_role"] == "leader"
            replies = await client.pipeline([[b"SET", b"p%d" % i, i] for i in range(100)])
            assert replies == ["OK"] * 100
            assert await client.pipeline([[b"GET", b"p7"], [b"INCR", b"k2"], [b"BAD"]]) == [
                b"7",
                1,
                ErrorReply("ERR unknown command 'BAD', with args beginning with: "),
            ]
            with pytest.raises(KVReplyError) as err:
                await client.execute("INCRBY", "p1", "x")
            assert err.value.code == "ERR"

    run(1, body)


def test_follows_redirect_to_the_leader() -> None:
    async def body(nodes: list[FakeNode], servers: list[RespServer]) -> None:
        for node in nodes:
            node.leader = 2
        async with KVClient(servers[0].address) as client:
            assert await client.set("k", "v")
            assert client.address == servers[1].address
            assert nodes[1].store.get(b"k") == b"v"
            assert nodes[0].store.get(b"k") is None
        async with KVClient(servers[2].address, follow_redirects=False) as client:
            with pytest.raises(RedirectError) as err:
                await client.get("k")
            assert err.value.address == servers[1].address
            assert isinstance(err.value, NotLeaderError)

    run(3, body)


def test_redirect_hops_are_bounded() -> None:
    async def body(nodes: list[FakeNode], servers: list[RespServer]) -> None:
        # Two followers, each believing the other leads: a client must give up.
        nodes[0].leader = 2
        nodes[1].leader = 1
        async with KVClient(servers[0].address, redirects_max=3) as client:
            with pytest.raises(RedirectError):
                await client.set("k", "v")
        assert servers[0].counters["redirects"] + servers[1].counters["redirects"] == 4
        nodes[0].leader = 0
        async with KVClient(servers[0].address, redirects_max=2, tryagain_delay_ns=1_000_000) as c:
            with pytest.raises(RedirectError) as err:
                await c.get("k")
            assert err.value.address == ""

    run(2, body)


def test_unknown_dropped_and_lost_replies_are_typed() -> None:
    async def body(nodes: list[FakeNode], servers: list[RespServer]) -> None:
        node = nodes[0]
        async with KVClient(servers[0].address, timeout_ns=300_000_000) as client:
            node.fail_with = CommitUnknownError("leader lost after append")
            with pytest.raises(CommitUnknownError, match="leader lost"):
                await client.set("k", "v")
            node.fail_with = ProposalDroppedError("transfer")
            with pytest.raises(ProposalDroppedError):
                await client.incr("n")
            node.fail_with = None
            # A write whose reply never arrives: outcome unknown, never resent.
            node.gate = asyncio.Event()
            with pytest.raises(CommitUnknownError, match="may have been applied"):
                await client.set("k", "v")
            assert len(node.batches) == 1
            node.gate.set()
            await asyncio.sleep(0.05)
            # The connection was dropped; the next request uses a fresh one.
            assert await client.get("k") == b"v"
            node.gate = asyncio.Event()
            node.batches.clear()
            with pytest.raises(TimeoutError):
                await client.pipeline([[b"SET", b"a", b"1"]])
            node.gate.set()
        with pytest.raises(ConfigError):
            KVClient("nohost")
        with pytest.raises(ConfigError):
            KVClient("127.0.0.1:1", timeout_ns=0)

    run(1, body)


def test_reconnects_after_the_server_closed_the_connection() -> None:
    async def body(nodes: list[FakeNode], servers: list[RespServer]) -> None:
        async with KVClient(servers[0].address) as client:
            assert await client.set("k", "1")
            assert await client.execute("QUIT") == "OK"
            await asyncio.sleep(0.05)
            assert await client.get("k") == b"1"

    run(1, body)
