"""TcpTransport: Raft messages between nodes over TCP, as codec frames, on asyncio or uvloop.

Owns the connections of one node: one listening socket, one outbound connection per peer (for
sending only) and any inbound connections (for receiving only). Built on asyncio Protocols, not
streams: `send()` is a plain function that encodes and writes, and every received chunk is
decoded by one FrameReader per connection and delivered in one callback.

Wire: a connection starts with one handshake frame from the dialing side (layout below), then
carries codec frames (`haperf._native.codec`, docs/codec.md) in one direction only, from the
dialer to the listener. The listener never writes. The chaos proxy relies on that: node A's
messages to B travel only on the connection A dials to `peers[B]`.

Handshake (little-endian, HANDSHAKE_FIXED_BYTES + len(cluster_id) + 4 bytes):
    magic b"HPTX" | version u8 (1) | flags u8 (0) | cluster_id_len u16 | sender_id u64 |
    receiver_id u64 | cluster_id bytes | crc32c u32 of every byte before it

Invariants:
- send() never blocks and never awaits. Messages are grouped by destination, each group is
  encoded into one buffer and handed to its connection with one write. What a peer receives
  from this node is an in-order subsequence of what was sent to it, across calls and
  reconnects: messages may be lost (a broken connection, a drop), never duplicated or
  reordered (a sender writes on one connection at a time, and a receiver closes the sender's
  older connection when a newer one completes its handshake).
- Nothing is unbounded. A peer holds at most peer_queue_bytes_max bytes: frames queued while it
  is not connected, or the connection's write buffer while it is. Messages beyond that are
  DROPPED (counted per peer; Raft retransmits) and on_unreachable(peer) is called. Inbound: at
  most inbound_connections_max connections, a handshake within handshake_timeout_ns and at most
  HANDSHAKE_BYTES_MAX bytes, frames of at most frame_bytes_max bytes.
- A bad connection (garbage, wrong cluster, unknown sender, a receiver id that is not
  this node, a codec error, a frame whose frm is not the handshake's sender or whose to is not
  this node, any byte written to an outbound connection) is a TransportError: logged, counted,
  that connection closed. Every other connection and the node carry on.
- Outbound connections reconnect forever (until remove_peer or close) with exponential backoff
  and jitter between reconnect_delay_min_ns and reconnect_delay_max_ns; each attempt has
  connect_timeout_ns. A peer that completes a handshake on its own connection to us is up, so
  a backoff wait for it ends at once (a restarted peer is redialed without waiting).
- close() cancels every timer and task, closes every connection and the server, waits for their
  connection_lost, and is idempotent.
"""

import asyncio
import logging
import random
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast

from haperf._native.codec import (
    FRAME_SIZE_MAX,
    HEADER_SIZE,
    FrameReader,
    encode,
    encode_many,
)
from haperf._native.raftmsg import Message
from haperf._native.route import group_by_to, misrouted
from haperf.checksum import crc32c
from haperf.errors import CodecError, ConfigError, TransportError
from haperf.runtime.address import format_address, parse_address

log = logging.getLogger("haperf.runtime.transport")

MessageHandler = Callable[[list[Message]], None]
UnreachableHandler = Callable[[int], None]

HANDSHAKE_MAGIC: Final = b"HPTX"
HANDSHAKE_VERSION: Final = 1
_HANDSHAKE = struct.Struct("<4sBBHQQ")
HANDSHAKE_FIXED_BYTES: Final = _HANDSHAKE.size  # 24
CLUSTER_ID_BYTES_MAX: Final = 64
HANDSHAKE_BYTES_MAX: Final = HANDSHAKE_FIXED_BYTES + CLUSTER_ID_BYTES_MAX + 4
_CRC = struct.Struct("<I")

NODE_ID_MAX: Final = (1 << 64) - 1

PEER_QUEUE_BYTES_MAX_DEFAULT: Final = 32 << 20
# One entry of the codec's largest size (16 MiB) in an AppendEntries, plus room for the rest.
FRAME_BYTES_MAX_DEFAULT: Final = (16 << 20) + (1 << 20)
RECONNECT_DELAY_MIN_NS_DEFAULT: Final = 20_000_000
RECONNECT_DELAY_MAX_NS_DEFAULT: Final = 500_000_000
CONNECT_TIMEOUT_NS_DEFAULT: Final = 1_000_000_000
HANDSHAKE_TIMEOUT_NS_DEFAULT: Final = 2_000_000_000
TCP_USER_TIMEOUT_NS_DEFAULT: Final = 30_000_000_000
INBOUND_CONNECTIONS_MAX_DEFAULT: Final = 256
# Repeated warnings about the same peer or sender are logged once per interval.
WARN_INTERVAL_S: Final = 10.0
WARN_KEYS_MAX: Final = 1024
# Delay bounds accepted at construction: 1 us .. 1 hour.
DELAY_NS_MIN: Final = 1_000
DELAY_NS_MAX: Final = 3_600_000_000_000


def encode_handshake(cluster_id: bytes, sender_id: int, receiver_id: int) -> bytes:
    """The first bytes an outbound connection writes (layout in the module docstring)."""
    head = _HANDSHAKE.pack(
        HANDSHAKE_MAGIC, HANDSHAKE_VERSION, 0, len(cluster_id), sender_id, receiver_id
    )
    body = head + cluster_id
    return body + _CRC.pack(crc32c(body))


def _check_node_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= NODE_ID_MAX:
        raise ConfigError(f"{what} must be an int in 1..2**64-1, got {value!r}")
    return value


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{what} must be an int in {low}..{high}, got {value!r}")
    return value


def _set_nodelay(transport: asyncio.BaseTransport, user_timeout_ns: int = 0) -> None:
    """TCP_NODELAY on (frames go out when written), and on an outbound connection
    TCP_USER_TIMEOUT where the platform has it (Linux): the kernel drops a connection whose
    written bytes stay unacknowledged that long (a peer host gone without a FIN or RST), so
    the transport notices and redials instead of waiting for the kernel's ~15 min default."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if user_timeout_ns and option is not None:
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, user_timeout_ns // 1_000_000))


def _peername(transport: asyncio.BaseTransport) -> str:
    name = transport.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return format_address(str(name[0]), int(name[1]))
    return repr(name)


class _Peer:
    """One remote node: where to dial it, its outbound connection or queue, and its counters."""

    __slots__ = (
        "address",
        "attempt",
        "bytes_received",
        "bytes_sent",
        "connect_failures",
        "connected_at",
        "connecting",
        "connects",
        "disconnects",
        "dropped",
        "dropped_bytes",
        "frames_received",
        "frames_sent",
        "handshake_failures",
        "host",
        "id",
        "inbound",
        "owner",
        "port",
        "proto",
        "protocol_errors",
        "queue",
        "queue_frames",
        "queued_bytes",
        "stopped",
        "timer",
    )

    def __init__(self, owner: "TcpTransport", peer_id: int, address: str) -> None:
        self.owner = owner
        self.id = peer_id
        self.address = address
        self.host, self.port = parse_address(address, what=f"address of peer {peer_id}")
        self.proto: _Outbound | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.queue: list[bytes] = []
        self.queue_frames = 0
        self.queued_bytes = 0
        self.attempt = 0
        self.connected_at = 0.0
        self.stopped = False
        self.inbound: set[_Inbound] = set()
        self.frames_sent = self.bytes_sent = 0
        self.frames_received = self.bytes_received = 0
        self.dropped = self.dropped_bytes = 0
        self.connects = self.connect_failures = self.disconnects = 0
        self.handshake_failures = self.protocol_errors = 0

    # -- sending ---------------------------------------------------------------------------

    def send(self, msgs: list[Message]) -> bool:
        """Encode and write (or queue) msgs; False when they were dropped."""
        n = len(msgs)
        proto = self.proto
        if proto is not None:
            if proto.paused:
                return self._drop(n, 0)
            transport: asyncio.Transport | None = proto.transport
            if transport.is_closing():  # type: ignore[union-attr]
                # Lost but not yet reported: queue, the next connection flushes the queue.
                transport = None
        else:
            transport = None
        owner = self.owner
        data: bytes | None
        try:
            data = encode(msgs[0]) if n == 1 else encode_many(msgs)
        except (CodecError, TypeError):
            data = owner._encode_slow(msgs, self.id)
        else:
            if len(data) > owner.frame_bytes_max:
                data = owner._encode_slow(msgs, self.id)
        if data is None:
            return True
        size = len(data)
        if transport is not None:
            if transport.get_write_buffer_size() + size > owner.peer_queue_bytes_max:
                return self._drop(n, size)
            transport.write(data)
            self.frames_sent += n
            self.bytes_sent += size
            return True
        if self.stopped or self.queued_bytes + size > owner.peer_queue_bytes_max:
            return self._drop(n, size)
        self.queue.append(data)
        self.queue_frames += n
        self.queued_bytes += size
        return True

    def _drop(self, frames: int, size: int) -> bool:
        self.dropped += frames
        self.dropped_bytes += size
        return False

    # -- connecting ------------------------------------------------------------------------

    def connect_soon(self, delay_s: float) -> None:
        if self.stopped or self.proto is not None or self.connecting is not None:
            return
        if self.timer is not None:
            self.timer.cancel()
        loop = self.owner._loop
        assert loop is not None
        if delay_s <= 0:
            self.timer = None
            task = self.connecting = loop.create_task(self._connect())
            tasks = self.owner._tasks
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            self.timer = loop.call_later(delay_s, self._timer_fired)

    def _timer_fired(self) -> None:
        self.timer = None
        self.connect_soon(0)

    async def _connect(self) -> None:
        owner = self.owner
        loop = owner._loop
        assert loop is not None
        try:
            async with asyncio.timeout(owner.connect_timeout_ns / 1e9):
                await loop.create_connection(lambda: _Outbound(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            self.connecting = None
            self.connect_failures += 1
            log.debug(
                "node %d: connect to peer %d at %s failed: %r",
                owner.node_id,
                self.id,
                self.address,
                exc,
            )
            owner._unreachable(self.id)
            self.schedule_reconnect()

    def backoff_s(self) -> float:
        """Exponential backoff with jitter: in [max(min, cap/2), cap], cap = min * 2**attempt."""
        owner = self.owner
        low = owner.reconnect_delay_min_ns
        cap = min(owner.reconnect_delay_max_ns, low << min(self.attempt, 40))
        delay_ns = max(low, cap // 2 + int(owner._rng.random() * (cap - cap // 2)))
        return delay_ns / 1e9

    def schedule_reconnect(self) -> None:
        if self.stopped or self.owner._closed:
            return
        delay = self.backoff_s()
        self.attempt += 1
        self.connect_soon(delay)

    def on_connected(self, proto: "_Outbound") -> None:
        owner = self.owner
        self.proto = proto
        self.connecting = None  # the task ends by itself; a loss may now schedule a new one
        self.connects += 1
        loop = owner._loop
        assert loop is not None
        self.connected_at = loop.time()
        chunks = [encode_handshake(owner.cluster_id, owner.node_id, self.id)]
        if self.queue:
            chunks.extend(self.queue)
            self.frames_sent += self.queue_frames
            self.bytes_sent += self.queued_bytes
            self.queue = []
            self.queue_frames = 0
            self.queued_bytes = 0
        proto.transport.writelines(chunks)
        # While backing off (a peer that keeps dropping us), connection churn logs at debug.
        level = logging.INFO if self.attempt == 0 else logging.DEBUG
        log.log(level, "node %d: connected to peer %d at %s", owner.node_id, self.id, self.address)

    def on_lost(self, exc: Exception | None) -> None:
        owner = self.owner
        loop = owner._loop
        assert loop is not None
        self.proto = None
        self.disconnects += 1
        if self.stopped or owner._closed:
            return
        # A connection that lived long was healthy: retry at once, then back off again. One
        # that died young (a peer refusing our handshake) keeps backing off.
        healthy = loop.time() - self.connected_at >= owner.reconnect_delay_max_ns / 1e9
        log.log(
            logging.INFO if healthy or self.attempt == 0 else logging.DEBUG,
            "node %d: connection to peer %d at %s lost (%s)",
            owner.node_id,
            self.id,
            self.address,
            exc or "closed by peer",
        )
        if healthy:
            self.attempt = 0
            owner._unreachable(self.id)
            self.connect_soon(0)
        else:
            owner._unreachable(self.id)
            self.schedule_reconnect()

    def kick(self) -> None:
        """The peer has just completed a handshake on a connection it dialed to us, so it is up
        (a restarted node binds before it dials): end a backoff wait and dial it now."""
        if self.stopped or self.owner._closed or self.proto is not None:
            return
        if self.timer is not None and self.connecting is None:
            self.timer.cancel()
            self.timer = None
            self.attempt = 0
            self.connect_soon(0)

    def stop(self) -> None:
        """Stop dialing and close the outbound connection (remove_peer, set_peer, close)."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.connecting is not None:
            self.connecting.cancel()
        proto = self.proto
        if proto is not None:
            self.proto = None
            proto.close()

    def close_inbound(self) -> None:
        for conn in list(self.inbound):
            conn.close()
        self.inbound.clear()

    def stats(self) -> dict[str, Any]:
        proto = self.proto
        buffered = proto.transport.get_write_buffer_size() if proto is not None else 0
        return {
            "address": self.address,
            "connected": proto is not None,
            "paused": proto is not None and proto.paused,
            "queued_bytes": self.queued_bytes + buffered,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "frames_received": self.frames_received,
            "bytes_received": self.bytes_received,
            "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "handshake_failures": self.handshake_failures,
            "protocol_errors": self.protocol_errors,
            "inbound_connections": len(self.inbound),
        }


class _Outbound(asyncio.Protocol):
    """The connection this node dials to one peer: send-only (the peer never writes)."""

    __slots__ = ("paused", "peer", "transport")

    def __init__(self, peer: _Peer) -> None:
        self.peer = peer
        self.paused = False
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self.peer
        owner = peer.owner
        owner._live.add(self)
        if peer.stopped or owner._closed or peer.proto is not None:
            self.transport.abort()
            return
        _set_nodelay(transport, owner.tcp_user_timeout_ns)
        limit = owner.peer_queue_bytes_max
        self.transport.set_write_buffer_limits(high=limit, low=limit // 2)
        peer.on_connected(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        peer.protocol_errors += 1
        peer.owner._protocol_errors += 1
        exc = TransportError(
            f"peer {peer.id} at {peer.address} wrote {len(data)} bytes on the send-only "
            "connection this node dialed; is that address really a haperf node of this "
            "cluster? closing the connection"
        )
        peer.owner._warn(("outbound", peer.id), f"node {peer.owner.node_id}: {exc}")
        self.transport.abort()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def close(self) -> None:
        transport = self.transport
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        owner = peer.owner
        if peer.proto is self:
            peer.on_lost(exc)
        owner._lost(self)


class _Inbound(asyncio.Protocol):
    """A connection a peer dialed to us: receive-only. Handshake first, then codec frames."""

    __slots__ = ("closed", "handshake", "owner", "peer", "reader", "sender", "timer", "transport")

    def __init__(self, owner: "TcpTransport") -> None:
        self.owner = owner
        self.transport: asyncio.Transport
        self.handshake: bytearray | None = bytearray()
        self.reader: FrameReader | None = None
        self.sender = 0
        self.peer: _Peer | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        owner = self.owner
        owner._live.add(self)
        owner._inbound.add(self)
        if owner._closed:
            self.close()
            return
        if len(owner._inbound) > owner.inbound_connections_max:
            owner._inbound_refused += 1
            owner._warn(
                ("refused",),
                f"node {owner.node_id}: refusing an inbound connection from "
                f"{_peername(transport)}: already {owner.inbound_connections_max} inbound "
                "connections (inbound_connections_max)",
            )
            self.close()
            return
        _set_nodelay(transport)
        loop = owner._loop
        assert loop is not None
        self.timer = loop.call_later(owner.handshake_timeout_ns / 1e9, self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        self.timer = None
        if self.reader is None and not self.closed:
            self._fail(
                f"no complete handshake within {self.owner.handshake_timeout_ns / 1e9:g} s",
                handshake=True,
            )

    def _fail(self, reason: str, *, handshake: bool) -> None:
        owner = self.owner
        peer = self.peer
        if handshake:
            owner._handshake_failures += 1
            if peer is not None:
                peer.handshake_failures += 1
        else:
            owner._protocol_errors += 1
            if peer is not None:
                peer.protocol_errors += 1
        who = f"peer {self.sender}" if self.sender else "an unidentified peer"
        exc = TransportError(
            f"node {owner.node_id}: inbound connection from {_peername(self.transport)} "
            f"({who}): {reason}; connection closed (check the peer's cluster id, node id and "
            "address configuration)"
        )
        owner._warn(
            ("inbound", self.sender or _peername(self.transport).rpartition(":")[0]), str(exc)
        )
        self.close()

    def _read_handshake(self, data: bytes) -> bytes | None:
        """Consume handshake bytes; return what follows it (None: incomplete or failed)."""
        owner = self.owner
        buf = self.handshake
        assert buf is not None
        buf += data
        n = len(buf)
        if buf[: min(n, 4)] != HANDSHAKE_MAGIC[: min(n, 4)]:
            self._fail(
                f"does not start with the handshake magic {HANDSHAKE_MAGIC!r}", handshake=True
            )
            return None
        if n < HANDSHAKE_FIXED_BYTES:
            return None
        _, version, flags, cluster_len, sender, receiver = _HANDSHAKE.unpack_from(buf)
        if version != HANDSHAKE_VERSION or flags != 0:
            self._fail(
                f"handshake version {version} flags {flags}, expected version "
                f"{HANDSHAKE_VERSION} flags 0",
                handshake=True,
            )
            return None
        if cluster_len > CLUSTER_ID_BYTES_MAX:
            self._fail(
                f"cluster id of {cluster_len} bytes (max {CLUSTER_ID_BYTES_MAX})", handshake=True
            )
            return None
        total = HANDSHAKE_FIXED_BYTES + cluster_len + 4
        if n < total:
            return None
        (crc,) = _CRC.unpack_from(buf, total - 4)
        if crc != crc32c(memoryview(buf)[: total - 4]):
            self._fail("handshake checksum mismatch", handshake=True)
            return None
        cluster_id = bytes(buf[HANDSHAKE_FIXED_BYTES : total - 4])
        peer = owner._peers.get(sender)
        if peer is not None:
            self.peer = peer
            self.sender = sender
        if cluster_id != owner.cluster_id:
            self._fail(
                f"cluster id {cluster_id!r}, this node is in cluster {owner.cluster_id!r}",
                handshake=True,
            )
            return None
        if receiver != owner.node_id:
            self._fail(
                f"the peer dialed node {receiver} but this is node {owner.node_id}", handshake=True
            )
            return None
        if peer is None:
            self.sender = sender
            self._fail(f"sender id {sender} is not a peer of node {owner.node_id}", handshake=True)
            return None
        self.handshake = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        # The sender writes on one connection at a time: an older inbound connection from it
        # is dead on its side (it restarted or reconnected), so close ours too.
        for old in list(peer.inbound):
            old.close()
        peer.inbound.add(self)
        peer.kick()
        self.reader = FrameReader(owner.frame_bytes_max)
        peer.bytes_received += total
        return bytes(buf[total:])

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        reader = self.reader
        if reader is None:
            rest = self._read_handshake(data)
            if not rest:
                return
            data = rest
            reader = self.reader
            assert reader is not None
        try:
            msgs = reader.feed(data)
        except CodecError as exc:
            self._fail(f"bad frame: {exc}", handshake=False)
            return
        peer = self.peer
        assert peer is not None
        peer.bytes_received += len(data)
        if not msgs:
            return
        bad = misrouted(msgs, self.sender, self.owner.node_id)
        if bad >= 0:
            m = msgs[bad]
            self._fail(
                f"a frame from {m.frm} to {m.to} on the connection of peer {self.sender} to "
                f"node {self.owner.node_id}",
                handshake=False,
            )
            return
        peer.frames_received += len(msgs)
        self.owner.on_messages(msgs)

    def eof_received(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.peer is not None:
            self.peer.inbound.discard(self)
        owner = self.owner
        owner._inbound.discard(self)
        owner._lost(self)


class TcpTransport:
    """Raft messages over TCP for node `node_id` (see the module docstring for the rules).

    `peers` maps peer id -> the "host:port" this node dials to reach it (its listen address, or
    a proxy in front of it); an entry for `node_id` itself is ignored, so a cluster's member
    table can be passed as is. `on_messages(list)` receives decoded messages, one call per
    received chunk, on the loop; it must not raise. `on_unreachable(peer)` is called when
    messages to `peer` were dropped, a connect attempt failed or its connection was lost; the
    node should `report_unreachable(peer)`. It is called synchronously at the end of send(), or
    from a loop callback.
    """

    def __init__(
        self,
        node_id: int,
        listen: str,
        peers: Mapping[int, str],
        on_messages: MessageHandler,
        *,
        cluster_id: bytes = b"haperf",
        peer_queue_bytes_max: int = PEER_QUEUE_BYTES_MAX_DEFAULT,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
        reconnect_delay_min_ns: int = RECONNECT_DELAY_MIN_NS_DEFAULT,
        reconnect_delay_max_ns: int = RECONNECT_DELAY_MAX_NS_DEFAULT,
        connect_timeout_ns: int = CONNECT_TIMEOUT_NS_DEFAULT,
        handshake_timeout_ns: int = HANDSHAKE_TIMEOUT_NS_DEFAULT,
        inbound_connections_max: int = INBOUND_CONNECTIONS_MAX_DEFAULT,
        tcp_user_timeout_ns: int = TCP_USER_TIMEOUT_NS_DEFAULT,
        on_unreachable: UnreachableHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = _check_node_id(node_id, "node_id")
        self.listen = listen
        self._listen_host, self._listen_port = parse_address(listen, what="listen")
        if not callable(on_messages):
            raise ConfigError(f"on_messages must be callable, got {on_messages!r}")
        if on_unreachable is not None and not callable(on_unreachable):
            raise ConfigError(f"on_unreachable must be callable or None, got {on_unreachable!r}")
        if not isinstance(cluster_id, bytes) or not 1 <= len(cluster_id) <= CLUSTER_ID_BYTES_MAX:
            raise ConfigError(
                f"cluster_id must be 1..{CLUSTER_ID_BYTES_MAX} bytes, got {cluster_id!r}"
            )
        self.cluster_id = cluster_id
        self.frame_bytes_max = _check_int(
            frame_bytes_max, "frame_bytes_max", HEADER_SIZE + 2, FRAME_SIZE_MAX
        )
        self.peer_queue_bytes_max = _check_int(
            peer_queue_bytes_max, "peer_queue_bytes_max", frame_bytes_max, 1 << 40
        )
        self.reconnect_delay_min_ns = _check_int(
            reconnect_delay_min_ns, "reconnect_delay_min_ns", DELAY_NS_MIN, DELAY_NS_MAX
        )
        self.reconnect_delay_max_ns = _check_int(
            reconnect_delay_max_ns, "reconnect_delay_max_ns", reconnect_delay_min_ns, DELAY_NS_MAX
        )
        self.connect_timeout_ns = _check_int(
            connect_timeout_ns, "connect_timeout_ns", DELAY_NS_MIN, DELAY_NS_MAX
        )
        self.handshake_timeout_ns = _check_int(
            handshake_timeout_ns, "handshake_timeout_ns", DELAY_NS_MIN, DELAY_NS_MAX
        )
        self.inbound_connections_max = _check_int(
            inbound_connections_max, "inbound_connections_max", 1, 1 << 20
        )
        self.tcp_user_timeout_ns = _check_int(
            tcp_user_timeout_ns, "tcp_user_timeout_ns", 0, DELAY_NS_MAX
        )
        if 0 < tcp_user_timeout_ns < 1_000_000:
            raise ConfigError(
                f"tcp_user_timeout_ns must be 0 (the kernel's default) or >= 1 ms, "
                f"got {tcp_user_timeout_ns}"
            )
        self.on_messages = on_messages
        self.on_unreachable = on_unreachable
        self._rng = rng if rng is not None else random.Random()
        self._peers: dict[int, _Peer] = {}
        for peer_id, address in dict(peers).items():
            _check_node_id(peer_id, "peer id")
            if peer_id != self.node_id:
                self._peers[peer_id] = _Peer(self, peer_id, address)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._address = ""
        self._closed = False
        self._started = False
        self._live: set[asyncio.BaseProtocol] = set()
        self._inbound: set[_Inbound] = set()
        self._all_lost: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned: dict[tuple[object, ...], float] = {}
        self._dropped_unknown = 0
        self._dropped_closed = 0
        self._encode_errors = 0
        self._handshake_failures = 0
        self._protocol_errors = 0
        self._inbound_refused = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on `listen` (port 0: any free port, see `address`) and dial every peer."""
        if self._closed:
            raise TransportError("this TcpTransport was closed; create a new one")
        if self._started:
            raise TransportError("TcpTransport.start() was already called")
        self._started = True
        loop = self._loop = asyncio.get_running_loop()
        try:
            # reuse_address is left to asyncio: SO_REUSEADDR on POSIX (a restarted node can
            # bind its port while old connections sit in TIME_WAIT), never on Windows, where
            # it would let another process take the port.
            self._server = await loop.create_server(
                lambda: _Inbound(self), self._listen_host, self._listen_port
            )
        except OSError as exc:
            raise TransportError(
                f"node {self.node_id} cannot listen on {self.listen}: {exc}; pick a free "
                "address or stop whatever holds it"
            ) from exc
        sockname = self._server.sockets[0].getsockname()
        self._address = format_address(str(sockname[0]), int(sockname[1]))
        log.info("node %d: listening on %s", self.node_id, self._address)
        for peer in self._peers.values():
            peer.connect_soon(0)

    @property
    def address(self) -> str:
        """The bound "host:port" (after start(); the real port when `listen` asked for 0)."""
        if not self._address:
            raise TransportError("the transport is not started: await start() first")
        return self._address

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close everything: timers, connect attempts, connections, the server. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for peer in self._peers.values():
            peer.stop()
        for conn in list(self._inbound):
            conn.close()
        server = self._server
        if server is not None:
            server.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._live and self._loop is not None:
            self._all_lost = self._loop.create_future()
            try:
                async with asyncio.timeout(1.0):
                    await self._all_lost
            except TimeoutError:
                log.warning(
                    "node %d: %d connections did not report closing within 1 s",
                    self.node_id,
                    len(self._live),
                )
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> "TcpTransport":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _lost(self, proto: asyncio.BaseProtocol) -> None:
        self._live.discard(proto)
        done = self._all_lost
        if not self._live and done is not None and not done.done():
            done.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("started" if self._started else "new")
        connected = sum(1 for p in self._peers.values() if p.proto is not None)
        return (
            f"<TcpTransport node={self.node_id} {state} address={self._address or self.listen} "
            f"peers={len(self._peers)} connected={connected}>"
        )

    # -- membership ------------------------------------------------------------------------

    def set_peer(self, peer_id: int, address: str) -> None:
        """Add a peer, or change where this node dials it (counters are kept); dials at once
        when started. An id equal to this node's is ignored, and so is any call after close()
        (a membership change applied while the node stops)."""
        _check_node_id(peer_id, "peer id")
        old = self._peers.get(peer_id)
        if old is not None and old.address == address:
            return
        new = _Peer(self, peer_id, address)  # validates the address
        if self._closed or peer_id == self.node_id:
            return
        if old is not None:
            for name in _Peer.__slots__:
                if name in (
                    "address",
                    "host",
                    "port",
                    "proto",
                    "connecting",
                    "timer",
                    "stopped",
                    "attempt",
                    "connected_at",
                ):
                    continue
                setattr(new, name, getattr(old, name))
            for conn in new.inbound:
                conn.peer = new
            old.queue = []
            old.stop()
        self._peers[peer_id] = new
        if self._started:
            new.connect_soon(0)

    def remove_peer(self, peer_id: int) -> None:
        """Forget a peer: stop dialing it, drop its queue, close its connections both ways."""
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        peer.queue = []
        peer.queued_bytes = peer.queue_frames = 0
        peer.stop()
        peer.close_inbound()

    @property
    def peers(self) -> dict[int, str]:
        """Peer id -> dial address (a copy)."""
        return {pid: p.address for pid, p in self._peers.items()}

    def connected(self, peer_id: int) -> bool:
        """True when the outbound connection to peer_id is established (handshake written)."""
        peer = self._peers.get(peer_id)
        return peer is not None and peer.proto is not None

    # -- sending -----------------------------------------------------------------------------

    def send(self, messages: Iterable[Message]) -> None:
        """Send messages to their `to` peers; never blocks, never awaits, never raises for a
        peer's state (dropped messages are counted and reported through on_unreachable)."""
        if type(messages) is not list:
            messages = list(messages)
        if self._closed:
            self._dropped_closed += len(messages)
            return
        peers = self._peers
        if len(messages) == 1:  # a single response or heartbeat: no grouping
            to = messages[0].to
            peer = peers.get(to)
            if peer is None:
                self._dropped_unknown += 1
            elif not peer.send(messages) and self.on_unreachable is not None:
                self.on_unreachable(to)
            return
        unreachable: list[int] | None = None
        for to, msgs in group_by_to(messages):
            peer = peers.get(to)
            if peer is None:
                self._dropped_unknown += len(msgs)
                continue
            if not peer.send(msgs):
                if unreachable is None:
                    unreachable = [to]
                else:
                    unreachable.append(to)
        if unreachable is not None and self.on_unreachable is not None:
            for to in unreachable:
                self.on_unreachable(to)

    def _encode_slow(self, msgs: list[Message], peer_id: int) -> bytes | None:
        """The frames of msgs one by one: one that cannot be encoded, or whose frame is larger
        than frame_bytes_max, is dropped and logged, the rest still go (None: nothing left).
        Only taken when the one-call encoding failed or came out above frame_bytes_max."""
        good: list[bytes] = []
        for m in msgs:
            try:
                frame = encode(m)
                if len(frame) > self.frame_bytes_max:
                    raise TransportError(
                        f"a frame of {len(frame)} bytes is larger than frame_bytes_max "
                        f"({self.frame_bytes_max})"
                    )
            except (CodecError, TypeError, TransportError) as exc:
                self._encode_errors += 1
                self._warn(
                    ("encode", peer_id),
                    f"node {self.node_id}: dropped a message to peer {peer_id} that cannot be "
                    f"sent: {exc}",
                    logging.ERROR,
                )
                continue
            good.append(frame)
        return b"".join(good) if good else None

    def _warn(self, key: tuple[object, ...], text: str, level: int = logging.WARNING) -> None:
        """Log `text` at `level`, but at most once per WARN_INTERVAL_S per key (one sender,
        one peer...); repeats within the interval go to debug, so a misconfigured node that
        redials every backoff cannot flood the log. The key table is bounded."""
        now = self._loop.time() if self._loop is not None else 0.0
        last = self._warned.get(key)
        if last is not None and now - last < WARN_INTERVAL_S:
            log.debug("%s", text)
            return
        if len(self._warned) >= WARN_KEYS_MAX:
            self._warned.clear()
        self._warned[key] = now
        log.log(level, "%s", text)

    def _unreachable(self, peer_id: int) -> None:
        if self.on_unreachable is not None and not self._closed:
            self.on_unreachable(peer_id)

    # -- introspection -----------------------------------------------------------------------

    def peer_stats(self) -> dict[int, dict[str, Any]]:
        """Per peer: address, connected, paused, queued_bytes, frames/bytes sent and received,
        dropped (frames), dropped_bytes, connects, reconnects, connect_failures, disconnects,
        handshake_failures, protocol_errors, inbound_connections."""
        return {pid: peer.stats() for pid, peer in self._peers.items()}

    def stats(self) -> dict[str, int]:
        """Transport-wide counters (failures not attributable to a known peer included)."""
        return {
            "peers": len(self._peers),
            "connected": sum(1 for p in self._peers.values() if p.proto is not None),
            "inbound_connections": len(self._inbound),
            "dropped_unknown_peer": self._dropped_unknown,
            "dropped_closed": self._dropped_closed,
            "encode_errors": self._encode_errors,
            "handshake_failures": self._handshake_failures,
            "protocol_errors": self._protocol_errors,
            "inbound_refused": self._inbound_refused,
        }
