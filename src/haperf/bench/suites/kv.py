"""kv benchmarks: the state machine's apply, the command encoding, and the RESP wire path.

Owns the kv group:
- kv.apply_set_100B / kv.apply_incr: KVStore.apply of one encoded command (the per-write cost
  on every replica's apply path);
- kv.encode_set_100B: building a SET command's log bytes;
- kv.resp_parse_set_100: the native RequestParser reading a pipeline of 100 `SET key <100 B>`
  requests (ns per request); peers: haperf's pure-Python twin (PyRequestParser, same results:
  the row that shows what the native module buys), hiredis.Reader (C; a reply parser, fed the
  same bytes: a request is a valid RESP array, so the work is the same) and redis-py's own
  pure-Python parser (_AsyncRESP2Parser over an asyncio.StreamReader, as its asyncio client
  reads a socket; awaited, so the row includes its awaits);
- kv.resp_encode_replies_100: 100 `+OK` replies into one buffer; peer: the pure-Python twin;
- kv.resp_encode_commands_100: 100 SET requests (the client side); peer: redis-py's
  Connection.pack_commands (its pure-Python serializer);
- kv.server_pipeline_set_100: KVClient.pipeline of 100 SETs through a RespServer on loopback,
  ns per SET end to end (client encode, TCP, server parse, encode, apply, reply, client parse).
  The node under it applies directly (no Raft): this row is the RESP path alone; the Raft cost
  is in the raft group and the cluster benchmarks.
"""

import asyncio
import functools
from typing import Any

from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.bench.timing import bench_loop
from haperf.kv import commands as c
from haperf.kv.client import KVClient
from haperf.kv.resp import (
    PyRequestParser,
    RequestParser,
    encode_commands,
    encode_replies,
    py_encode_replies,
)
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore

VALUE = b"x" * 100
KEY = b"key:000000000001"
NOW_NS = 1_700_000_000_000_000_000
BATCH = 100


def _set_requests() -> list[list[bytes]]:
    return [[b"SET", b"key:%012d" % i, VALUE] for i in range(BATCH)]


def _apply_set() -> Op:
    store = KVStore()
    return Op(store.apply, (1, c.encode_set(KEY, VALUE, NOW_NS)))


def _apply_incr() -> Op:
    store = KVStore()
    return Op(store.apply, (1, c.encode_incrby(b"counter", 1, NOW_NS)))


def _encode_set() -> Op:
    return Op(functools.partial(c.encode_set, KEY, VALUE), (NOW_NS,))


def _parse(parser_type: Any) -> Op:
    parser = parser_type()
    data = encode_commands(_set_requests())
    assert len(parser.feed(data)) == BATCH
    return Op(parser.feed, (data,), ops_per_call=BATCH)


def _hiredis() -> Op:
    import hiredis  # type: ignore[import-not-found,unused-ignore]

    reader = hiredis.Reader()
    data = encode_commands(_set_requests())

    def feed(data: bytes) -> list[object]:
        reader.feed(data)
        out = []
        gets = reader.gets
        while (item := gets()) is not False:
            out.append(item)
        return out

    assert len(feed(data)) == BATCH
    return Op(feed, (data,), ops_per_call=BATCH)


def _redis_py_parser() -> Op:
    """redis-py's own pure-Python RESP2 parser (the one its asyncio client uses), reading the
    batch from an asyncio.StreamReader as it reads a socket."""
    try:
        from redis._parsers import _AsyncRESP2Parser  # type: ignore[import-not-found,unused-ignore]
        from redis._parsers.encoders import Encoder  # type: ignore[import-not-found,unused-ignore]
    except ImportError as err:
        raise ImportError(f"redis-py's parser is not importable: {err}", name="redis") from err
    data = encode_commands(_set_requests())
    parser = _AsyncRESP2Parser(socket_read_size=65536)
    parser.encoder = Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call,unused-ignore]

    async def feed(data: bytes) -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        parser._stream = reader
        parser._connected = True
        return [await parser.read_response() for _ in range(BATCH)]

    check = bench_loop().run_until_complete(feed(data))
    if len(check) != BATCH or check[0] != [b"SET", b"key:000000000000", VALUE]:
        raise ImportError("this redis-py parses differently; peer skipped", name="redis")
    return Op(feed, (data,), is_async=True, ops_per_call=BATCH)


def _encode_replies(fn: Any) -> Op:
    return Op(fn, (["OK"] * BATCH,), ops_per_call=BATCH)


def _encode_commands() -> Op:
    return Op(encode_commands, (_set_requests(),), ops_per_call=BATCH)


def _redis_py_pack() -> Op:
    from redis.connection import Connection  # type: ignore[import-not-found,unused-ignore]

    conn = Connection()  # type: ignore[no-untyped-call,unused-ignore]
    return Op(conn.pack_commands, (_set_requests(),), ops_per_call=BATCH)


class _DirectNode:
    """Applies proposals at once on the store: a leader with no followers and no log."""

    id = 1
    is_leader = True
    leader_id = 1

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.index = 0

    async def propose_many(self, commands: list[bytes]) -> list[object]:
        out = []
        for command in commands:
            self.index += 1
            out.append(self.store.apply(self.index, command))
        return out

    async def barrier(self) -> int:
        return self.index

    def member_metadata(self, node_id: int) -> dict[str, str]:
        return {}

    def status(self) -> dict[str, Any]:
        return {"role": "leader", "commit": self.index, "applied": self.index}


def _server_pipeline() -> Op:
    loop = bench_loop()
    store = KVStore()
    server = RespServer(_DirectNode(store), store, "127.0.0.1:0")
    loop.run_until_complete(server.start())
    client = KVClient(server.address)
    requests = _set_requests()

    async def round_() -> None:
        replies = await client.pipeline(requests)
        if len(replies) != BATCH:
            raise AssertionError("short pipeline reply")

    async def close() -> None:
        await client.close()
        await server.close()
        await asyncio.sleep(0)

    return Op(
        round_,
        is_async=True,
        ops_per_call=BATCH,
        cleanup=lambda: loop.run_until_complete(close()),
    )


register_all(
    [
        Benchmark("kv.apply_set_100B", "kv", "KVStore.apply(SET key, 100 B value)", _apply_set),
        Benchmark("kv.apply_incr", "kv", "KVStore.apply(INCRBY counter 1)", _apply_incr),
        Benchmark("kv.encode_set_100B", "kv", "commands.encode_set(key, 100 B, now)", _encode_set),
        Benchmark(
            "kv.resp_parse_set_100",
            "kv",
            "RequestParser.feed(pipeline of 100 SET key <100 B>), per request",
            functools.partial(_parse, RequestParser),
            bytes_per_op=len(encode_commands(_set_requests())) // BATCH,
            peers=(
                Peer(
                    "haperf.PyRequestParser",
                    functools.partial(_parse, PyRequestParser),
                    note="the pure-Python twin (same results)",
                ),
                Peer("hiredis.Reader", _hiredis, note="C reply parser fed the same bytes"),
                Peer(
                    "redis-py _AsyncRESP2Parser",
                    _redis_py_parser,
                    note="redis-py's pure-Python parser over a StreamReader (async)",
                ),
            ),
        ),
        Benchmark(
            "kv.resp_encode_replies_100",
            "kv",
            "encode_replies(100 x +OK), per reply",
            functools.partial(_encode_replies, encode_replies),
            peers=(
                Peer(
                    "haperf.py_encode_replies",
                    functools.partial(_encode_replies, py_encode_replies),
                    note="the pure-Python twin",
                ),
            ),
        ),
        Benchmark(
            "kv.resp_encode_commands_100",
            "kv",
            "encode_commands(100 SET key <100 B>), per request",
            _encode_commands,
            peers=(
                Peer(
                    "redis.Connection.pack_commands",
                    _redis_py_pack,
                    note="redis-py's pure-Python serializer",
                ),
            ),
        ),
        Benchmark(
            "kv.server_pipeline_set_100",
            "kv",
            "KVClient.pipeline(100 SET) through RespServer on loopback (no Raft), per SET",
            _server_pipeline,
            floor="floor.await_call",
        ),
    ]
)
