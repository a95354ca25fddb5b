"""TcpTransport benchmarks: the CPU cost of send(), and real loopback TCP through two transports.

Owns the transport group.
- send_100 / send_append_100: `send()` of 100 heartbeats, or of one AppendEntries of 100 x 100 B,
  to a connected peer whose socket is replaced by a sink that accepts every write, so the row is
  the transport's own work (grouping, bounds, encoding, one write) without the kernel. Floors:
  `codec.encode_many` of the same messages (encode_many_100, encode_append_100): the encoding
  any TCP transport of codec frames must do; 1.0x of it means the transport adds nothing.
- send_ready: a leader's typical Ready (one AppendEntries of 1 entry to each of two followers),
  per call, against floor.py_call.
- loopback_100: 100 heartbeats from node 1 to node 2 over real 127.0.0.1 TCP, timed until node
  2's on_messages has all of them (encode, write, kernel, read, decode, deliver), per message.
  Floor raw_loopback_100: the same bytes, pre-encoded, written by a bare asyncio Protocol and
  counted (not decoded) by another: the cost of the loop and the kernel alone.
- loopback_append: the same for one AppendEntries of 100 x 100 B (12,166 B; GB/s shown),
  floor raw_loopback_append.
- rtt: one heartbeat 1 -> 2 and node 2's reply 2 -> 1 (each node sends on the connection it
  dialed), until node 1's on_messages sees the reply; extra figures: p50/p99 in us. Floor
  raw_rtt: a bare Protocol ping-pong of the same 46-byte frame over one connection.
All async rows run on the bench loop (uvloop when installed); setup connects, cleanup closes.
"""

import asyncio
import socket
import statistics
from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.bench.registry import Benchmark, Op, register_all
from haperf.bench.timing import bench_loop
from haperf.runtime.transport import TcpTransport, _Outbound

BATCH = 100
ENTRY_BYTES = 100
CONNECT_WAIT_S = 10.0
LATENCY_SAMPLES_MAX = 100_000


def heartbeats(n: int, frm: int = 1, to: int = 2) -> list[m.Message]:
    return [m.Message(m.MSG_HEARTBEAT, to=to, frm=frm, term=7, commit=1000 + i) for i in range(n)]


def append(n: int, to: int = 2) -> m.Message:
    entries = [m.Entry(7, 1000 + i, bytes([i & 0xFF]) * ENTRY_BYTES) for i in range(n)]
    return m.Message(
        m.MSG_APP, to=to, frm=1, term=7, log_term=7, index=999, commit=999, entries=entries
    )


class _Sink:
    """Stands in for a connected socket transport: accepts and forgets every write."""

    def write(self, data: bytes) -> None:
        return None

    def writelines(self, data: list[bytes]) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def _sunk_transport(peer_ids: tuple[int, ...]) -> TcpTransport:
    """A transport (never started) whose peers look connected to a sink."""
    t = TcpTransport(1, "127.0.0.1:0", {p: f"127.0.0.1:{p}" for p in peer_ids}, lambda ms: None)
    for peer in t._peers.values():
        proto = _Outbound(peer)
        proto.transport = _Sink()  # type: ignore[assignment]
        peer.proto = proto
    return t


def _send_100() -> Op:
    return Op(_sunk_transport((2,)).send, (heartbeats(BATCH),), ops_per_call=BATCH)


def _encode_many_100() -> Op:
    return Op(codec.encode_many, (heartbeats(BATCH),), ops_per_call=BATCH)


def _send_append_100() -> Op:
    return Op(_sunk_transport((2,)).send, ([append(BATCH)],))


def _encode_append_100() -> Op:
    return Op(codec.encode, (append(BATCH),))


def _send_ready() -> Op:
    return Op(_sunk_transport((2, 3)).send, ([append(1, 2), append(1, 3)],))


class _Pair:
    """Two started transports on the bench loop, connected both ways."""

    def __init__(
        self, on_a: Callable[[list[m.Message]], None], on_b: Callable[[list[m.Message]], None]
    ) -> None:
        self.on_a = on_a
        self.on_b = on_b
        self.a: TcpTransport
        self.b: TcpTransport

    async def start(self) -> None:
        self.b = TcpTransport(2, "127.0.0.1:0", {}, self.on_b)
        await self.b.start()
        self.a = TcpTransport(1, "127.0.0.1:0", {2: self.b.address}, self.on_a)
        await self.a.start()
        self.b.set_peer(1, self.a.address)
        async with asyncio.timeout(CONNECT_WAIT_S):
            while not (self.a.connected(2) and self.b.connected(1)):
                await asyncio.sleep(0.001)

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


class _Counter:
    """Resolves `future` once `count` reaches `target`."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.future: asyncio.Future[None] | None = None

    def add(self, n: int) -> None:
        self.count += n
        future = self.future
        if future is not None and self.count >= self.target and not future.done():
            future.set_result(None)

    async def wait_for(self, more: int) -> None:
        self.target = self.count + more
        if self.count >= self.target:
            return
        self.future = asyncio.get_running_loop().create_future()
        await self.future


def _loopback(msgs: list[m.Message], ops_per_call: int) -> Op:
    loop = bench_loop()
    counter = _Counter()
    pair = _Pair(lambda ms: None, lambda ms: counter.add(len(ms)))
    loop.run_until_complete(pair.start())

    async def once() -> None:
        pair.a.send(msgs)
        await counter.wait_for(len(msgs))

    return Op(
        once,
        is_async=True,
        ops_per_call=ops_per_call,
        cleanup=lambda: loop.run_until_complete(pair.close()),
    )


def _loopback_100() -> Op:
    return _loopback(heartbeats(BATCH), BATCH)


def _loopback_append() -> Op:
    return _loopback([append(BATCH)], 1)


class _Latencies:
    """The last LATENCY_SAMPLES_MAX round trips, for the p50/p99 extra figures."""

    def __init__(self) -> None:
        self.samples: deque[int] = deque(maxlen=LATENCY_SAMPLES_MAX)

    def extra(self) -> dict[str, float]:
        if len(self.samples) < 2:
            return {}
        cuts = statistics.quantiles(self.samples, n=100)
        return {"p50_us": cuts[49] / 1e3, "p99_us": cuts[98] / 1e3}


def _rtt() -> Op:
    loop = bench_loop()
    replies = _Counter()
    reply = [m.Message(m.MSG_HEARTBEAT_RESP, to=1, frm=2, term=7)]
    holder: dict[str, _Pair] = {}

    def on_b(ms: list[m.Message]) -> None:
        holder["pair"].b.send(reply)

    pair = holder["pair"] = _Pair(lambda ms: replies.add(len(ms)), on_b)
    loop.run_until_complete(pair.start())
    ping = heartbeats(1)
    latencies = _Latencies()
    samples = latencies.samples

    async def once() -> None:
        start = perf_counter_ns()
        pair.a.send(ping)
        await replies.wait_for(1)
        samples.append(perf_counter_ns() - start)

    return Op(
        once,
        is_async=True,
        extra=latencies.extra,
        cleanup=lambda: loop.run_until_complete(pair.close()),
    )


class _RawServer(asyncio.Protocol):
    """Floor peer: counts received bytes, or echoes them (ping-pong)."""

    def __init__(self, counter: _Counter, echo: bool) -> None:
        self.counter = counter
        self.echo = echo
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)
        else:
            self.counter.add(len(data))


class _RawClient(asyncio.Protocol):
    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    def data_received(self, data: bytes) -> None:
        self.counter.add(len(data))


async def _raw_pair(counter: _Counter, echo: bool) -> tuple[asyncio.Server, asyncio.Transport]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _RawServer(counter, echo), "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    transport, _ = await loop.create_connection(lambda: _RawClient(counter), host, port)
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return server, transport


def _raw_cleanup(server: asyncio.Server, transport: asyncio.Transport) -> Callable[[], None]:
    async def close() -> None:
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)

    return lambda: bench_loop().run_until_complete(close())


def _raw_loopback(wire: bytes, ops_per_call: int) -> Op:
    loop = bench_loop()
    counter = _Counter()
    server, transport = loop.run_until_complete(_raw_pair(counter, echo=False))

    async def once() -> None:
        transport.write(wire)
        await counter.wait_for(len(wire))

    return Op(
        once, is_async=True, ops_per_call=ops_per_call, cleanup=_raw_cleanup(server, transport)
    )


def _raw_loopback_100() -> Op:
    return _raw_loopback(codec.encode_many(heartbeats(BATCH)), BATCH)


def _raw_loopback_append() -> Op:
    return _raw_loopback(codec.encode(append(BATCH)), 1)


APPEND_FRAME_BYTES = len(codec.encode(append(BATCH)))


def _raw_rtt() -> Op:
    loop = bench_loop()
    counter = _Counter()
    server, transport = loop.run_until_complete(_raw_pair(counter, echo=True))
    frame = codec.encode(heartbeats(1)[0])
    latencies = _Latencies()
    samples = latencies.samples

    async def once() -> None:
        start = perf_counter_ns()
        transport.write(frame)
        await counter.wait_for(len(frame))
        samples.append(perf_counter_ns() - start)

    return Op(once, is_async=True, extra=latencies.extra, cleanup=_raw_cleanup(server, transport))


def _floor(name: str, op: str, setup: Callable[[], Op], **kw: Any) -> Benchmark:
    return Benchmark(name, "transport", op, setup, floor=None, is_floor=True, **kw)


register_all(
    [
        _floor(
            "transport.encode_many_100",
            "codec.encode_many(100 heartbeats), per message",
            _encode_many_100,
        ),
        _floor(
            "transport.encode_append_100",
            "codec.encode(AppendEntries 100 x 100 B)",
            _encode_append_100,
        ),
        _floor(
            "transport.raw_loopback_100",
            "bare asyncio Protocol: 100 pre-encoded heartbeat frames over loopback TCP, "
            "counted on arrival, per message",
            _raw_loopback_100,
        ),
        _floor(
            "transport.raw_loopback_append",
            "bare asyncio Protocol: one AppendEntries 100 x 100 B frame over loopback TCP",
            _raw_loopback_append,
            bytes_per_op=APPEND_FRAME_BYTES,
        ),
        _floor("transport.raw_rtt", "bare asyncio Protocol ping-pong of one 46 B frame", _raw_rtt),
        Benchmark(
            "transport.send_100",
            "transport",
            "send(100 heartbeats) to one connected peer (socket replaced by a sink), per message",
            _send_100,
            floor="transport.encode_many_100",
        ),
        Benchmark(
            "transport.send_append_100",
            "transport",
            "send([AppendEntries 100 x 100 B]) to one connected peer (sink)",
            _send_append_100,
            floor="transport.encode_append_100",
        ),
        Benchmark(
            "transport.send_ready",
            "transport",
            "send([AppendEntries(1 entry) to 2, same to 3]): a leader's Ready (sinks)",
            _send_ready,
        ),
        Benchmark(
            "transport.loopback_100",
            "transport",
            "100 heartbeats node 1 -> node 2 over loopback TCP until delivered, per message",
            _loopback_100,
            floor="transport.raw_loopback_100",
        ),
        Benchmark(
            "transport.loopback_append",
            "transport",
            "AppendEntries 100 x 100 B node 1 -> node 2 over loopback TCP until delivered",
            _loopback_append,
            floor="transport.raw_loopback_append",
            bytes_per_op=APPEND_FRAME_BYTES,
        ),
        Benchmark(
            "transport.rtt",
            "transport",
            "heartbeat 1 -> 2, reply 2 -> 1, over two transports on loopback TCP",
            _rtt,
            floor="transport.raw_rtt",
        ),
    ]
)
