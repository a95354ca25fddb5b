"""RespServer over 127.0.0.1 with raw RESP bytes, exactly as redis-cli and redis-py send them.

Owns the server's behavioural tests against FakeNode (tests/kv/fake_node.py): replies byte for
byte, pipelined writes proposed as one batch, reads behind one barrier (none right after the
batch's own writes), redirects (-MOVED / -TRYAGAIN), unknown and dropped outcomes, protocol
errors closing the stream, size limits, clients_max, RESP3 after HELLO 3, TTLs read against an
injected wall clock, and fuzzed garbage that must never take the server down. Every test runs
its own loop with a hard time bound and closes what it opened.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from haperf.errors import CommitUnknownError, NodeStoppedError, ProposalDroppedError
from haperf.kv.resp import ReplyParser, encode_command, encode_commands
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore
from tests.kv.fake_node import FakeNode

TEST_TIMEOUT_S = 20


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.now_ns


def run(
    body: Callable[[RespServer, FakeNode, Clock], Awaitable[None]], **server_kwargs: Any
) -> None:
    async def main() -> None:
        store = KVStore(**server_kwargs.pop("store_kwargs", {}))
        node = FakeNode(store, metadata={2: {"resp": "127.0.0.1:7002"}})
        clock = Clock()
        server = RespServer(node, store, "127.0.0.1:0", wall_clock_ns=clock, **server_kwargs)
        await server.start()
        node.metadata[1] = {"resp": server.address}
        try:
            await asyncio.wait_for(body(server, node, clock), TEST_TIMEOUT_S)
        finally:
            await server.close()

    asyncio.run(main())


class Conn:
    """A raw client socket: send bytes, read exactly n replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = ReplyParser()
        self.replies: list[object] = []
        self.raw = b""

    @classmethod
    async def open(cls, server: RespServer) -> "Conn":
        host, _, port = server.address.rpartition(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, n: int) -> list[object]:
        while len(self.replies) < n:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError(f"closed after {len(self.replies)} replies")
            self.raw += data
            self.replies += self.parser.feed(data)
        out, self.replies = self.replies[:n], self.replies[n:]
        return out

    async def read_raw(self, size: int) -> bytes:
        while len(self.raw) < size:
            data = await self.reader.read(65536)
            if not data:
                break
            self.raw += data
        return self.raw

    async def closed(self) -> bool:
        """True when the server closed the connection (EOF after any pending bytes)."""
        while True:
            data = await self.reader.read(65536)
            if not data:
                return True
            self.raw += data

    async def close(self) -> None:
        self.writer.close()


async def ask(server: RespServer, *requests: list[bytes]) -> list[object]:
    conn = await Conn.open(server)
    try:
        await conn.send(encode_commands(requests))
        return await conn.read(len(requests))
    finally:
        await conn.close()


def test_redis_cli_bytes_get_exact_replies() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        conn = await Conn.open(server)
        # redis-cli sends what the user typed, in an array, lower case as typed.
        await conn.send(b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n")
        await conn.send(b"*2\r\n$3\r\nget\r\n$3\r\nfoo\r\n")
        await conn.send(b"*2\r\n$3\r\nget\r\n$4\r\nnope\r\n")
        await conn.send(b"*2\r\n$4\r\nincr\r\n$3\r\nfoo\r\n")
        await conn.send(b"*1\r\n$4\r\nping\r\n")
        await conn.read(5)
        assert conn.raw == (
            b"+OK\r\n$3\r\nbar\r\n$-1\r\n-ERR value is not an integer or out of range\r\n+PONG\r\n"
        )
        await conn.close()

    run(body)


def test_redis_py_handshake_then_resp3_replies() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        conn = await Conn.open(server)
        await conn.send(
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
            b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-py\r\n"
            b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$7\r\nLIB-VER\r\n$5\r\n8.1.0\r\n"
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        )
        raw = await conn.read_raw(10)
        while not raw.endswith(b"+OK\r\n+OK\r\n_\r\n"):
            raw = await conn.read_raw(len(raw) + 1)
        assert raw.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
        assert b"$5\r\nproto\r\n:3\r\n" in raw
        await conn.close()
        hello = await ask(server, [b"HELLO"], [b"HELLO", b"4"], [b"HELLO", b"x"])
        assert isinstance(hello[0], list) and hello[0][:2] == [b"server", b"redis"]
        assert hello[1].message.startswith("NOPROTO")  # type: ignore[union-attr]
        assert hello[2].message.startswith("ERR Protocol version")  # type: ignore[union-attr]

    run(body)


def test_pipelined_writes_are_one_batch_and_reads_one_barrier() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        writes = [[b"SET", b"k%d" % i, b"v%d" % i] for i in range(50)]
        replies = await ask(server, *writes, [b"GET", b"k7"], [b"MGET", b"k1", b"x"])
        assert replies == ["OK"] * 50 + [b"v7", [b"v1", None]]
        assert [len(b) for b in node.batches] == [50]
        assert node.barriers == 0  # reads right after the batch's own writes applied
        replies = await ask(server, *[[b"GET", b"k%d" % i] for i in range(10)])
        assert replies == [b"v%d" % i for i in range(10)]
        assert node.barriers == 1
        # Interleaved runs keep request order: write, read, write, read.
        replies = await ask(
            server,
            [b"SET", b"x", b"1"],
            [b"GET", b"x"],
            [b"INCR", b"x"],
            [b"GET", b"x"],
            [b"EXISTS", b"x", b"x", b"nope"],
            [b"DEL", b"x", b"nope"],
            [b"GET", b"x"],
        )
        assert replies == ["OK", b"1", 2, b"2", 2, 1, None]
        assert [len(b) for b in node.batches] == [50, 1, 1, 1]

    run(body)


def test_set_options_cas_and_errors() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        replies = await ask(
            server,
            [b"SET", b"k", b"1", b"NX"],
            [b"SET", b"k", b"2", b"NX"],
            [b"SET", b"k", b"3", b"XX", b"GET"],
            [b"SET", b"missing", b"3", b"XX"],
            [b"SET", b"k", b"1", b"NX", b"XX"],
            [b"SET", b"k", b"1", b"EX", b"0"],
            [b"SET", b"k", b"1", b"EX", b"abc"],
            [b"SET", b"k", b"1", b"KEEPTTL", b"PX", b"5"],
            [b"CAS", b"k", b"3", b"4"],
            [b"CAS", b"k", b"3", b"5"],
            [b"GET", b"k"],
            [b"INCRBY", b"n", b"-5"],
            [b"DECRBY", b"n", b"5"],
            [b"DECR", b"n"],
            [b"INCRBY", b"n", b"1.5"],
            [b"SETNX", b"n", b"1"],
            [b"GET"],
            [b"NOSUCH", b"a"],
            [b"SELECT", b"0"],
            [b"SELECT", b"1"],
            [b"ECHO", b"hi"],
            [b"KEYS", b"*"],
            [b"KEYS", b"k?"],
            [b"DBSIZE"],
        )
        messages = [r.message if hasattr(r, "message") else r for r in replies]
        assert messages == [
            "OK",
            None,
            b"1",
            None,
            "ERR syntax error",
            "ERR invalid expire time in 'set' command",
            "ERR value is not an integer or out of range",
            "ERR syntax error",
            1,
            0,
            b"4",
            -5,
            -10,
            -11,
            "ERR value is not an integer or out of range",
            0,
            "ERR wrong number of arguments for 'get' command",
            "ERR unknown command 'NOSUCH', with args beginning with: 'a'",
            "OK",
            "ERR DB index is out of range",
            b"hi",
            [b"k", b"n"],
            "ERR haperf KEYS takes only 'prefix*' patterns (or '*')",
            2,
        ]

    run(body)


def test_ttl_reads_use_the_wall_clock_and_writes_carry_it() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        start = clock.now_ns
        assert await ask(server, [b"SET", b"k", b"v", b"PX", b"100"]) == ["OK"]
        assert node.store.clock_ns == start  # the leader's wall clock travelled in the command
        assert await ask(server, [b"PTTL", b"k"], [b"TTL", b"k"], [b"TTL", b"none"]) == [
            100,
            0,
            -2,
        ]
        clock.now_ns += 99_000_000
        assert await ask(server, [b"GET", b"k"]) == [b"v"]
        clock.now_ns += 1_000_000
        # Expired for reads at the reader's clock, although no write moved replicated time.
        assert await ask(server, [b"GET", b"k"], [b"EXISTS", b"k"]) == [None, 0]
        assert node.store.clock_ns == start

    run(body)


def test_not_leader_redirects_with_moved_or_tryagain() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        node.leader = 2
        replies = await ask(server, [b"SET", b"k", b"v"], [b"GET", b"k"], [b"PING"])
        assert [getattr(r, "message", r) for r in replies] == [
            "MOVED 0 127.0.0.1:7002",
            "MOVED 0 127.0.0.1:7002",
            "PONG",
        ]
        assert node.batches == []
        node.leader = 3  # known leader, address not known
        (reply,) = await ask(server, [b"SET", b"k", b"v"])
        assert reply.message.startswith("TRYAGAIN the leader is node 3")  # type: ignore[attr-defined]
        node.leader = 0
        (reply,) = await ask(server, [b"GET", b"k"])
        assert reply.message.startswith("TRYAGAIN no leader")  # type: ignore[attr-defined]
        slots, leader = await ask(server, [b"CLUSTER", b"SLOTS"], [b"LEADER"])
        assert (slots, leader) == ([], [0, None, 1, b"follower"])
        node.leader = 1
        assert await ask(server, [b"CLUSTER", b"SLOTS"], [b"LEADER"]) == [
            [[0, 16383, [b"127.0.0.1", int(server.address.rpartition(":")[2]), b"1"]]],
            [1, server.address.encode(), 1, b"leader"],
        ]

    run(body)


def test_unknown_and_dropped_outcomes_have_their_own_prefixes() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        node.fail_with = CommitUnknownError("timed out after append")
        replies = await ask(server, [b"SET", b"k", b"v"], [b"INCR", b"n"], [b"GET", b"k"])
        assert replies[0].message.startswith("UNKNOWN ")  # type: ignore[union-attr]
        assert replies[1] == replies[0]
        assert replies[2].message.startswith("DROPPED ")  # type: ignore[union-attr]
        node.fail_with = ProposalDroppedError("leadership transfer")
        (reply,) = await ask(server, [b"SET", b"k", b"v"])
        assert reply.message.startswith("DROPPED not applied")  # type: ignore[attr-defined]
        node.fail_with = NodeStoppedError("stopping")
        (reply,) = await ask(server, [b"DEL", b"k"])
        assert reply.message.startswith("DROPPED")  # type: ignore[attr-defined]
        assert server.counters["unknown_outcomes"] == 1

    run(body)


def test_protocol_error_answers_then_closes() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        conn = await Conn.open(server)
        await conn.send(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n")
        await conn.closed()
        assert conn.raw == b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
        conn = await Conn.open(server)
        await conn.send(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$99999999999\r\n")
        await conn.closed()
        assert conn.raw.startswith(b"$-1\r\n-ERR Protocol error: a bulk string of 99999999999")
        # The server is still there for everyone else.
        assert await ask(server, [b"PING"]) == ["PONG"]
        assert server.counters["protocol_errors"] == 2

    run(body)


def test_size_limits_and_oversized_requests() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        (reply,) = await ask(server, [b"SET", b"k", b"x" * 200])
        assert "value_bytes_max=100" in reply.message  # type: ignore[attr-defined]
        (reply,) = await ask(server, [b"SET", b"k" * 20, b"x"])
        assert "key_bytes_max=16" in reply.message  # type: ignore[attr-defined]
        conn = await Conn.open(server)
        await conn.send(encode_command([b"SET", b"k", b"x" * 5000]))
        await conn.closed()
        assert conn.raw.startswith(b"-ERR Protocol error: a bulk string of 5000 bytes is above")
        assert node.batches == []

    run(body, request_bytes_max=2048, store_kwargs={"key_bytes_max": 16, "value_bytes_max": 100})


def test_clients_max_refuses_extra_connections() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        first = await Conn.open(server)
        second = await Conn.open(server)
        await first.send(encode_command([b"PING"]))
        await first.read(1)
        await second.send(encode_command([b"PING"]))
        await second.read(1)
        third = await Conn.open(server)
        await third.closed()
        assert third.raw == b"-ERR max number of clients reached\r\n"
        await first.close()
        for _ in range(500):  # the server sees the close within a few loop turns
            if len(server._connections) < 2:
                break
            await asyncio.sleep(0.01)
        fourth = await Conn.open(server)
        await fourth.send(encode_command([b"PING"]))
        assert await fourth.read(1) == ["PONG"]
        for conn in (second, fourth):
            await conn.close()
        assert server.counters["rejected_connections"] == 1

    run(body, clients_max=2)


def test_replies_stay_in_order_while_a_batch_waits() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        node.gate = asyncio.Event()
        conn = await Conn.open(server)
        await conn.send(encode_command([b"SET", b"a", b"1"]))
        while not node.batches:
            await asyncio.sleep(0.01)
        # More requests arrive while the first batch waits for its commit.
        await conn.send(encode_commands([[b"PING"], [b"INCR", b"a"], [b"GET", b"a"]]))
        await asyncio.sleep(0.05)
        assert len(node.batches) == 1
        node.gate.set()
        assert await conn.read(4) == ["OK", "PONG", 2, b"2"]
        await conn.close()

    run(body)


def test_info_quit_and_admin_commands() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        info, raft, command, count, config, setname, getname, cluster = await ask(
            server,
            [b"INFO"],
            [b"INFO", b"raft"],
            [b"COMMAND", b"DOCS"],
            [b"COMMAND", b"COUNT"],
            [b"CONFIG", b"GET", b"save"],
            [b"CLIENT", b"SETNAME", b"me"],
            [b"CLIENT", b"GETNAME"],
            [b"CLUSTER", b"MYID"],
        )
        assert isinstance(info, bytes) and b"role:master" in info and b"raft_role:leader" in info
        assert isinstance(raft, bytes) and raft.startswith(b"# Raft\r\nraft_node_id:1\r\n")
        assert command == [] and isinstance(count, int) and count > 10
        assert config == [b"save", b""]
        assert (setname, getname, cluster) == ("OK", b"me", b"1")
        conn = await Conn.open(server)
        await conn.send(encode_commands([[b"QUIT"]]))
        assert await conn.closed()
        assert conn.raw == b"+OK\r\n"

    run(body)


def test_fuzzed_garbage_never_takes_the_server_down() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        rng = random.Random(20261122)
        valid = encode_commands([[b"SET", b"k", b"v"], [b"GET", b"k"], [b"MGET", b"a", b"b"]])
        for _ in range(40):
            if rng.random() < 0.5:
                data = rng.randbytes(rng.randint(1, 300))
            else:
                raw = bytearray(valid)
                for _ in range(rng.randint(1, 4)):
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
                data = bytes(raw)
            conn = await Conn.open(server)
            await conn.send(data + b"\r\n")
            conn.writer.write_eof()
            await conn.closed()  # the server either answers and waits, or closes; never hangs
            await conn.close()
        assert await ask(server, [b"PING"]) == ["PONG"]

    run(body)


def test_nothing_after_quit_is_served() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        conn = await Conn.open(server)
        await conn.send(
            encode_commands([[b"SET", b"a", b"1"], [b"QUIT"], [b"SET", b"b", b"2"], [b"PING"]])
        )
        assert await conn.closed()
        assert conn.raw == b"+OK\r\n+OK\r\n"
        assert node.store.get(b"a") == b"1"
        assert node.store.get(b"b") is None

    run(body)


def test_a_failing_node_costs_the_connection_not_the_server() -> None:
    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        node.fail_with = RuntimeError("planted bug in the node")
        conn = await Conn.open(server)
        await conn.send(encode_command([b"SET", b"a", b"1"]))
        assert await conn.closed()
        assert conn.raw == b""
        node.fail_with = None
        assert await ask(server, [b"SET", b"a", b"2"], [b"GET", b"a"]) == ["OK", b"2"]

    run(body)


KEYS_ST = st.sampled_from([b"a", b"b", b"n"])
COMMAND_ST = st.one_of(
    st.tuples(st.just(b"SET"), KEYS_ST, st.sampled_from([b"1", b"x", b"-3"])).map(list),
    st.tuples(st.just(b"SET"), KEYS_ST, st.just(b"v"), st.sampled_from([b"NX", b"XX", b"GET"])).map(
        list
    ),
    st.tuples(st.just(b"GET"), KEYS_ST).map(list),
    st.tuples(st.just(b"INCR"), KEYS_ST).map(list),
    st.tuples(st.just(b"CAS"), KEYS_ST, st.sampled_from([b"1", b"v"]), st.just(b"2")).map(list),
    st.lists(KEYS_ST, min_size=1, max_size=3).map(lambda ks: [b"DEL", *ks]),
    st.lists(KEYS_ST, min_size=1, max_size=3).map(lambda ks: [b"MGET", *ks]),
    st.lists(KEYS_ST, min_size=1, max_size=3).map(lambda ks: [b"EXISTS", *ks]),
    st.just([b"PING"]),
    st.just([b"NOPE"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(COMMAND_ST, min_size=1, max_size=30))
def test_a_pipeline_answers_as_the_same_requests_sent_one_by_one(
    requests: list[list[bytes]],
) -> None:
    """Grouping into write runs, read runs and in-place replies never changes an answer."""

    async def body(server: RespServer, node: FakeNode, clock: Clock) -> None:
        other_store = KVStore()
        other = RespServer(FakeNode(other_store), other_store, "127.0.0.1:0", wall_clock_ns=clock)
        await other.start()
        try:
            pipelined = await ask(server, *requests)
            one_by_one = []
            conn = await Conn.open(other)
            for request in requests:
                await conn.send(encode_command(request))
                one_by_one += await conn.read(1)
            await conn.close()
            assert pipelined == one_by_one
            assert node.store.snapshot() == other_store.snapshot()
        finally:
            await other.close()

    run(body)
