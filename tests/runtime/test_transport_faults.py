"""TcpTransport against hostile or broken peers: garbage, a wrong cluster, an unknown sender, a
wrong receiver, a bad checksum, a silent connection, a codec error, an oversized frame, a
spoofed `frm` or `to`, bytes written back on a send-only connection, too many connections, and
bad configuration. Each bad connection must be closed and counted while the node keeps serving
its legitimate peer. Runs on uvloop and on asyncio's own loop; 127.0.0.1 only, bounded waits.
"""

import asyncio
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from haperf._native import codec
from haperf._native import raftmsg as rm
from haperf._native.raftmsg import Message
from haperf.checksum import crc32c
from haperf.errors import ConfigError, TransportError
from haperf.runtime.address import parse_address
from haperf.runtime.loop import LoopKind, uvloop_available
from haperf.runtime.transport import TcpTransport, encode_handshake
from tests.runtime.helpers import Collector, heartbeat, mesh, run_on, started, until

LOOPS: list[LoopKind] = ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]
CLUSTER = b"haperf"
FRAME_MAX = 64 * 1024


def _oversized_header() -> bytes:
    # A valid-looking codec header announcing a frame far above frame_bytes_max.
    return b"HR" + bytes([1, rm.MSG_HEARTBEAT]) + struct.pack("<II", FRAME_MAX * 4, 0)


def _resealed(handshake: bytes) -> bytes:
    body = handshake[:-4]
    return body + struct.pack("<I", crc32c(body))


# name -> (bytes the intruder writes, counter on node 2 that must grow, per-peer counter or None)
CASES: dict[str, tuple[bytes, str, str | None]] = {
    "garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "handshake_failures", None),
    "wrong_cluster": (encode_handshake(b"other", 1, 2), "handshake_failures", "handshake_failures"),
    "unknown_sender": (encode_handshake(CLUSTER, 7, 2), "handshake_failures", None),
    "wrong_receiver": (encode_handshake(CLUSTER, 1, 3), "handshake_failures", "handshake_failures"),
    "bad_checksum": (encode_handshake(CLUSTER, 1, 2)[:-1] + b"\x00", "handshake_failures", None),
    "bad_version": (
        _resealed(
            encode_handshake(CLUSTER, 1, 2)[:4] + b"\x09" + encode_handshake(CLUSTER, 1, 2)[5:]
        ),
        "handshake_failures",
        None,
    ),
    "garbage_frame": (
        encode_handshake(CLUSTER, 1, 2) + b"\x00" * 64,
        "protocol_errors",
        "protocol_errors",
    ),
    "corrupt_frame": (
        encode_handshake(CLUSTER, 1, 2) + codec.encode(heartbeat(1, 2))[:-1] + b"\xff",
        "protocol_errors",
        "protocol_errors",
    ),
    "oversized_frame": (
        encode_handshake(CLUSTER, 1, 2) + _oversized_header(),
        "protocol_errors",
        "protocol_errors",
    ),
    "spoofed_frm": (
        encode_handshake(CLUSTER, 1, 2) + codec.encode(heartbeat(3, 2)),
        "protocol_errors",
        "protocol_errors",
    ),
    "wrong_to": (
        encode_handshake(CLUSTER, 1, 2) + codec.encode(heartbeat(1, 3)),
        "protocol_errors",
        "protocol_errors",
    ),
}


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1) == b""
    except ConnectionError:
        return True


@pytest.mark.parametrize("kind", LOOPS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_connection_is_closed_counted_and_node_keeps_serving(kind: LoopKind, case: str) -> None:
    payload, counter, peer_counter = CASES[case]

    async def body() -> None:
        (a, b, c), (_, got_b, _) = await mesh(3, frame_bytes_max=FRAME_MAX)
        try:
            a.send([heartbeat(1, 2, 1)])
            await until(lambda: len(got_b.messages) == 1)
            host, port = parse_address(b.address)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            async with asyncio.timeout(10):
                assert await _closed_by_peer(reader), "node 2 kept the bad connection open"
            writer.close()
            assert b.stats()[counter] == 1
            if peer_counter is not None:
                assert b.peer_stats()[1][peer_counter] == 1
            # Nothing the intruder sent was delivered; node 1's own connection is untouched
            # unless the intruder claimed to be node 1 (then node 1's older one was replaced
            # and node 1 reconnects by itself).
            assert [m.commit for m in got_b.messages] == [1]
            a.send([heartbeat(1, 2, 2)])
            c.send([heartbeat(3, 2, 3)])
            await until(
                lambda: (
                    sorted(m.commit for m in got_b.messages) == [1, 2, 3]
                    or a.peer_stats()[2]["disconnects"] > 0
                )
            )
            await until(lambda: a.connected(2))
            a.send([heartbeat(1, 2, 4)])
            await until(lambda: 4 in [m.commit for m in got_b.messages], "node 2 still serves")
        finally:
            for node in (a, b, c):
                await node.close()

    run_on(kind, body)


@pytest.mark.parametrize("kind", LOOPS)
def test_silent_connection_times_out_in_the_handshake(kind: LoopKind) -> None:
    async def body() -> None:
        b = await started(2, {1: "127.0.0.1:1"}, Collector(), handshake_timeout_ns=20_000_000)
        try:
            host, port = parse_address(b.address)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(encode_handshake(CLUSTER, 1, 2)[:10])  # half a handshake, then silence
            async with asyncio.timeout(10):
                assert await _closed_by_peer(reader)
            writer.close()
            assert b.stats()["handshake_failures"] == 1
            assert b.stats()["inbound_connections"] == 0
        finally:
            await b.close()

    run_on(kind, body)


@pytest.mark.parametrize("kind", LOOPS)
def test_inbound_connections_are_bounded(kind: LoopKind) -> None:
    async def body() -> None:
        b = await started(2, {}, Collector(), inbound_connections_max=2)
        host, port = parse_address(b.address)
        conns = [await asyncio.open_connection(host, port) for _ in range(3)]
        try:
            await until(lambda: b.stats()["inbound_refused"] == 1, "one refused")
            assert b.stats()["inbound_connections"] == 2
        finally:
            for _, writer in conns:
                writer.close()
            await b.close()

    run_on(kind, body)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_peer_that_writes_back_on_a_send_only_connection_is_dropped(kind: LoopKind) -> None:
    async def body() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            writer.write(b"hello")

        server = await asyncio.start_server(chatty, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        unreachable: list[int] = []
        a = await started(1, {2: f"{host}:{port}"}, Collector(), on_unreachable=unreachable.append)
        try:
            await until(lambda: a.peer_stats()[2]["protocol_errors"] >= 1)
            await until(lambda: a.peer_stats()[2]["disconnects"] >= 1)
            assert 2 in unreachable
        finally:
            await a.close()
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()

    run_on(kind, body)


@pytest.mark.parametrize("kind", LOOPS)
def test_unencodable_message_is_dropped_and_the_rest_still_go(kind: LoopKind) -> None:
    async def body() -> None:
        (a, b), (_, got_b) = await mesh(2, frame_bytes_max=FRAME_MAX)
        try:
            too_big = Message(rm.MSG_APP, to=2, frm=1, entries=[rm.Entry(1, 1, b"x" * FRAME_MAX)])
            bad_type = Message(99, to=2, frm=1)
            a.send([heartbeat(1, 2, 1), too_big, bad_type, heartbeat(1, 2, 2)])
            await until(lambda: [m.commit for m in got_b.messages] == [1, 2])
            assert a.stats()["encode_errors"] == 2
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


def test_start_on_a_busy_address_raises_transport_error() -> None:
    async def body() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            host, port = s.getsockname()
            t = TcpTransport(1, f"{host}:{port}", {}, Collector())
            with pytest.raises(TransportError, match="cannot listen"):
                await t.start()
            await t.close()

    run_on("asyncio", body)


BAD_OPTIONS: list[tuple[str, Any]] = [
    ("cluster_id", b""),
    ("cluster_id", "haperf"),
    ("cluster_id", b"x" * 65),
    ("peer_queue_bytes_max", 100),
    ("peer_queue_bytes_max", True),
    ("frame_bytes_max", 5),
    ("frame_bytes_max", codec.FRAME_SIZE_MAX + 1),
    ("reconnect_delay_min_ns", 0),
    ("reconnect_delay_max_ns", 1_000),  # below the default minimum
    ("connect_timeout_ns", -1),
    ("handshake_timeout_ns", 1.5),
    ("inbound_connections_max", 0),
    ("on_unreachable", 3),
    ("tcp_user_timeout_ns", 999_999),
    ("tcp_user_timeout_ns", -1),
]


@pytest.mark.parametrize(("name", "value"), BAD_OPTIONS)
def test_bad_options_raise_config_error(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=name):
        TcpTransport(1, "127.0.0.1:0", {}, Collector(), **{name: value})


@pytest.mark.parametrize(
    ("node_id", "listen", "peers", "on_messages"),
    [
        (0, "127.0.0.1:0", {}, Collector()),
        (True, "127.0.0.1:0", {}, Collector()),
        (1, "127.0.0.1", {}, Collector()),
        (1, "127.0.0.1:70000", {}, Collector()),
        (1, "127.0.0.1:0", {0: "127.0.0.1:1"}, Collector()),
        (1, "127.0.0.1:0", {2: "nowhere"}, Collector()),
        (1, "127.0.0.1:0", {}, None),
    ],
)
def test_bad_arguments_raise_config_error(
    node_id: Any, listen: Any, peers: Any, on_messages: Callable[..., None]
) -> None:
    with pytest.raises(ConfigError):
        TcpTransport(node_id, listen, peers, on_messages)


def test_parse_address_forms() -> None:
    assert parse_address("127.0.0.1:7001") == ("127.0.0.1", 7001)
    assert parse_address("[::1]:7001") == ("::1", 7001)
    assert parse_address("localhost:0") == ("localhost", 0)
    for bad in ("", ":1", "host:", "host:x", "host:-1"):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_set_peer_rejects_bad_ids_and_addresses_and_ignores_self() -> None:
    t = TcpTransport(1, "127.0.0.1:0", {1: "127.0.0.1:9", 2: "127.0.0.1:10"}, Collector())
    assert t.peers == {2: "127.0.0.1:10"}
    t.set_peer(1, "127.0.0.1:11")
    assert t.peers == {2: "127.0.0.1:10"}
    with pytest.raises(ConfigError):
        t.set_peer(0, "127.0.0.1:1")
    with pytest.raises(ConfigError):
        t.set_peer(3, "no-port")
    with pytest.raises(TransportError, match="not started"):
        _ = t.address
    assert repr(t) == "<TcpTransport node=1 new address=127.0.0.1:0 peers=1 connected=0>"


def test_backoff_doubles_within_bounds_with_jitter() -> None:
    low, high = 10_000_000, 80_000_000
    delays: dict[int, set[float]] = {}
    for seed in range(20):
        t = TcpTransport(
            1,
            "127.0.0.1:0",
            {2: "127.0.0.1:9"},
            Collector(),
            rng=random.Random(seed),
            reconnect_delay_min_ns=low,
            reconnect_delay_max_ns=high,
        )
        peer = t._peers[2]
        for attempt in range(12):
            peer.attempt = attempt
            delay_ns = peer.backoff_s() * 1e9
            cap = min(high, low << attempt)
            assert max(low, cap // 2) - 1 <= delay_ns <= cap + 1, (attempt, delay_ns)
            delays.setdefault(attempt, set()).add(round(delay_ns))
    assert delays[0] == {low}
    assert len(delays[3]) > 1 and len(delays[11]) > 1  # jittered, also at the cap
    assert max(delays[11]) <= high


@pytest.mark.parametrize("kind", LOOPS)
def test_a_peer_that_keeps_refusing_us_is_redialed_with_growing_backoff(kind: LoopKind) -> None:
    async def body() -> None:
        b = await started(2, {1: "127.0.0.1:1"}, Collector(), cluster_id=b"other")
        a = await started(
            1,
            {2: b.address},
            Collector(),
            reconnect_delay_min_ns=1_000_000,
            reconnect_delay_max_ns=1_000_000_000,
        )
        try:
            await until(lambda: b.stats()["handshake_failures"] >= 4, "four refusals")
            await until(lambda: a.peer_stats()[2]["disconnects"] >= 4)
            # Every connection died young: the backoff was never reset.
            assert a._peers[2].attempt >= 3
            assert b.peer_stats()[1]["handshake_failures"] >= 4
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


@pytest.mark.parametrize("kind", LOOPS)
def test_outbound_socket_options(kind: LoopKind) -> None:
    option = getattr(socket, "TCP_USER_TIMEOUT", None)

    async def body() -> None:
        (a, b), _ = await mesh(2, tcp_user_timeout_ns=7_000_000_000)
        try:
            await until(lambda: a.connected(2))
            proto = a._peers[2].proto
            assert proto is not None
            sock = proto.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            if option is not None:
                assert sock.getsockopt(socket.IPPROTO_TCP, option) == 7000
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


class _FullBacklog:
    """A listener whose accept queue is full, so the kernel drops new SYNs: a connect to it
    hangs until the dialer gives up (how an unreachable host looks, on 127.0.0.1)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        host, port = self.listener.getsockname()
        self.address = f"{host}:{port}"
        self.fillers: list[socket.socket] = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            # A non-blocking connect completes in the background (the kernel queues it).
            s.connect_ex((host, port))
            self.fillers.append(s)

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.listener.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_a_hanging_connect_times_out_and_close_cancels_one_in_flight(kind: LoopKind) -> None:
    async def body() -> None:
        backlog = _FullBacklog()
        await asyncio.sleep(0.05)  # let the kernel queue the fillers
        tasks_before = asyncio.all_tasks()
        a = await started(1, {2: backlog.address}, Collector(), connect_timeout_ns=20_000_000)
        slow = await started(3, {2: backlog.address}, Collector(), connect_timeout_ns=10**12)
        try:
            await until(lambda: a.peer_stats()[2]["connect_failures"] >= 2, "two timeouts")
            assert not a.connected(2)
            assert slow.peer_stats()[2]["connect_failures"] == 0  # still dialing
            assert slow._peers[2].connecting is not None
        finally:
            await a.close()
            await slow.close()
            backlog.close()
        assert asyncio.all_tasks() == tasks_before

    run_on(kind, body)


def test_set_peer_after_close_is_ignored() -> None:
    async def body() -> None:
        t = await started(1, {}, Collector())
        await t.close()
        t.set_peer(2, "127.0.0.1:9")
        t.remove_peer(2)
        assert t.peers == {}
        with pytest.raises(ConfigError):
            t.set_peer(2, "bad")
        with pytest.raises(TransportError, match="closed"):
            await t.start()

    run_on("asyncio", body)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_raising_on_messages_costs_only_that_connection(kind: LoopKind) -> None:
    async def body() -> None:
        seen: list[int] = []

        def fragile(msgs: list[Message]) -> None:
            for m in msgs:
                if m.commit == 13:
                    raise RuntimeError("planted handler bug")
                seen.append(m.commit)

        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        b = await started(2, {}, fragile)
        a = await started(1, {2: b.address}, Collector())
        b.set_peer(1, a.address)
        try:
            await until(lambda: a.connected(2))
            a.send([heartbeat(1, 2, 12), heartbeat(1, 2, 13)])
            await until(lambda: a.peer_stats()[2]["disconnects"] >= 1, "the connection closed")
            assert reported and isinstance(reported[0].get("exception"), RuntimeError)
            await until(lambda: a.connected(2), "redialed")
            a.send([heartbeat(1, 2, 14)])
            await until(lambda: 14 in seen, "delivered after the reconnect")
            assert seen[0] == 12 and 13 not in seen
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)
