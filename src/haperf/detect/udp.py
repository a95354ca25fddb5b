"""Authenticated UDP heartbeats on asyncio (uvloop when installed), feeding a DetectorBank.

Owns HeartbeatService: one local node that sends a heartbeat datagram to each of its peers every
interval_ns, receives theirs, records each accepted arrival in a DetectorBank (one row per peer)
and turns the bank's state changes into MembershipEvents, read with `async for`.

Wire format (big-endian, HEARTBEAT_BYTES = 52 bytes):
    magic b"HB" | version u8 | flags u8 (0) | sender_id u64 | incarnation u64 | sequence u64 |
    send_time_ns i64 | tag: the first TAG_BYTES of HMAC-SHA256(key, the 36 bytes before it)

Invariants:
- A datagram is accepted only if it has the exact size, magic and version, a valid tag under the
  shared key, a sender that is a configured peer, and (incarnation, sequence) strictly greater
  than the last accepted from that sender (so a replayed or reordered copy is dropped). Anything
  else is counted in `stats` and dropped; datagram_received never raises.
- A sender restarts with a larger incarnation (by default the wall-clock ns at start), so its
  sequence may start again from 1; its detector row is reset then (counted in stats.restarts).
- The event queue holds at most events_max events; when full the newest is dropped and counted.
- send_time_ns is the sender's clock, reported for diagnostics only (clocks of different hosts are
  not comparable, so freshness is judged by sequence, never by time).
"""

import asyncio
import hmac
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import cast

from haperf._native.phi import DetectorBank, NodeState
from haperf.errors import ConfigError, UnknownNodeError

MAGIC = b"HB"
VERSION = 1
_HEADER = struct.Struct(">2sBBQQQq")
TAG_BYTES = 16
HEARTBEAT_BYTES = _HEADER.size + TAG_BYTES
KEY_BYTES_MIN = 16
EVENTS_MAX_DEFAULT = 4096
PEERS_MAX = 65536
U64_MAX = (1 << 64) - 1

Address = tuple[str, int]
Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class MembershipEvent:
    """A peer's state changed: old -> new, observed at at_ns (local clock) with this phi."""

    peer_id: int
    old: NodeState
    new: NodeState
    at_ns: int
    phi: float


@dataclass(slots=True)
class HeartbeatStats:
    """Counters of one service; every datagram received lands in exactly one of the drop
    counters or in `accepted`."""

    sent: int = 0
    send_errors: int = 0
    received: int = 0
    accepted: int = 0
    dropped_malformed: int = 0
    dropped_auth: int = 0
    dropped_unknown_sender: int = 0
    dropped_replay: int = 0
    events_dropped: int = 0
    restarts: int = 0

    @property
    def dropped(self) -> int:
        return (
            self.dropped_malformed
            + self.dropped_auth
            + self.dropped_unknown_sender
            + self.dropped_replay
        )


class _Tagger:
    """HMAC-SHA256 with the key schedule done once: each tag copies the keyed state."""

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=sha256)

    def tag(self, header: bytes) -> bytes:
        h = self._keyed.copy()
        h.update(header)
        return h.digest()[:TAG_BYTES]


def encode_heartbeat(
    key: bytes, sender_id: int, incarnation: int, sequence: int, send_time_ns: int
) -> bytes:
    """The datagram for one heartbeat (see the module docstring for the layout)."""
    header = _HEADER.pack(MAGIC, VERSION, 0, sender_id, incarnation, sequence, send_time_ns)
    return header + hmac.digest(key, header, sha256)[:TAG_BYTES]


@dataclass(slots=True)
class _Peer:
    node: int | None  # its bank row, None when it is not watched
    address: Address
    send: bool
    incarnation: int = -1
    sequence: int = -1
    last_send_time_ns: int = 0


class _Protocol(asyncio.DatagramProtocol):
    """Hands every datagram to the service; owns nothing else."""

    def __init__(self, service: "HeartbeatService") -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport; it has sendto().
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.service.feed_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a peer's port is closed) surface here; the peer simply goes quiet.
        self.service.stats.send_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class HeartbeatService:
    """Send heartbeats to peers over UDP, detect their failures, emit membership events.

    node_id: this node's id (u64) in its heartbeats. key: the shared HMAC key (>= 16 bytes).
    peers: {peer_id: (host, port)}. interval_ns: time between heartbeats to each peer.
    check_interval_ns: how often the bank is polled for state changes (default interval_ns / 2).
    detector: keyword arguments for the DetectorBank (threshold, distribution, ...); by default
    first_heartbeat_estimate_ns = interval_ns and min_std_deviation_ns = interval_ns / 10.
    clock: int ns, monotonic (default time.monotonic_ns); incarnation defaults to time.time_ns().
    """

    def __init__(
        self,
        node_id: int,
        key: bytes,
        *,
        peers: Mapping[int, Address] | None = None,
        interval_ns: int = 100_000_000,
        check_interval_ns: int | None = None,
        bind: Address = ("127.0.0.1", 0),
        detector: Mapping[str, object] | None = None,
        events_max: int = EVENTS_MAX_DEFAULT,
        incarnation: int | None = None,
        clock: Clock = time.monotonic_ns,
    ) -> None:
        if not 0 <= node_id <= U64_MAX:
            raise ConfigError(f"node_id must be a u64, got {node_id!r}")
        if not isinstance(key, bytes) or len(key) < KEY_BYTES_MIN:
            raise ConfigError(f"key must be bytes of at least {KEY_BYTES_MIN} bytes")
        if not 1_000_000 <= interval_ns <= 3_600_000_000_000:
            raise ConfigError(f"interval_ns must be in 1 ms..1 h, got {interval_ns}")
        check = interval_ns // 2 if check_interval_ns is None else check_interval_ns
        if not 1_000_000 <= check <= 3_600_000_000_000:
            raise ConfigError(f"check_interval_ns must be in 1 ms..1 h, got {check}")
        if not 1 <= events_max <= 1 << 20:
            raise ConfigError(f"events_max must be in 1..2**20, got {events_max}")
        inc = time.time_ns() if incarnation is None else incarnation
        if not 0 <= inc <= U64_MAX:
            raise ConfigError(f"incarnation must be a u64, got {incarnation!r}")
        params: dict[str, object] = {
            "first_heartbeat_estimate_ns": interval_ns,
            "min_std_deviation_ns": max(1, interval_ns // 10),
        }
        params.update(detector or {})
        self.node_id = node_id
        self.incarnation = inc
        self.interval_ns = interval_ns
        self.check_interval_ns = check
        self.bind = bind
        self.stats = HeartbeatStats()
        self._tagger = _Tagger(key)
        self._clock = clock
        self._bank = DetectorBank(capacity=16, **params)  # type: ignore[arg-type]
        self._peers: dict[int, _Peer] = {}
        self._by_node: dict[int, int] = {}
        self._sequence = 0
        self._events: asyncio.Queue[MembershipEvent] = asyncio.Queue(maxsize=events_max)
        self._protocol: _Protocol | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._check_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        for peer_id, address in (peers or {}).items():
            self.add_peer(peer_id, address)

    # -- membership -------------------------------------------------------------------------

    def add_peer(
        self, peer_id: int, address: Address, *, send: bool = True, watch: bool = True
    ) -> None:
        """Start sending to (send) and watching (watch) `peer_id` at `address`.

        A watched peer is ALIVE until heard from (as in Akka). Heartbeats from a peer that is
        not watched are dropped as from an unknown sender.
        """
        if not 0 <= peer_id <= U64_MAX or peer_id == self.node_id:
            raise ConfigError(f"peer_id must be a u64 other than this node's id, got {peer_id!r}")
        if peer_id in self._peers:
            raise ConfigError(f"peer {peer_id} is already configured; remove_peer() it first")
        if len(self._peers) >= PEERS_MAX:
            raise ConfigError(f"a HeartbeatService watches at most {PEERS_MAX} peers")
        if not (send or watch):
            raise ConfigError(f"peer {peer_id}: send and watch are both False; nothing to do")
        node = self._bank.add_node() if watch else None
        self._peers[peer_id] = _Peer(node=node, address=(address[0], int(address[1])), send=send)
        if node is not None:
            self._by_node[node] = peer_id

    def remove_peer(self, peer_id: int) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            raise UnknownNodeError(f"peer {peer_id} is not configured")
        if peer.node is not None:
            del self._by_node[peer.node]
            self._bank.remove_node(peer.node)

    @property
    def peers(self) -> dict[int, Address]:
        return {pid: p.address for pid, p in self._peers.items()}

    @property
    def bank(self) -> DetectorBank:
        """The bank watching the peers (read-only use: phi_all, suspects, failed)."""
        return self._bank

    def _watched(self, peer_id: int) -> int:
        peer = self._peers.get(peer_id)
        if peer is None or peer.node is None:
            raise UnknownNodeError(f"peer {peer_id} is not configured as watched")
        return peer.node

    def phi(self, peer_id: int) -> float:
        return self._bank.phi(self._watched(peer_id), self._clock())

    def state(self, peer_id: int) -> NodeState:
        """The state last reported for the peer (by the periodic check)."""
        return NodeState(int(self._bank.states()[self._watched(peer_id)]))

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The bound (host, port); valid after start()."""
        if self._protocol is None or self._protocol.transport is None:
            raise ConfigError("the service is not started; await start() first")
        host, port = self._protocol.transport.get_extra_info("sockname")[:2]
        return (host, port)

    async def start(self) -> None:
        """Bind the socket and start sending and checking."""
        if self._protocol is not None or self._closed:
            raise ConfigError("a HeartbeatService starts once; make a new one to restart")
        loop = asyncio.get_running_loop()
        self._loop = loop
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self.bind
        )
        self._protocol = protocol
        self._send_round()
        self._check_round()

    def close(self) -> None:
        """Stop timers and close the socket (idempotent)."""
        self._closed = True
        for timer in (self._send_timer, self._check_timer):
            if timer is not None:
                timer.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    async def __aenter__(self) -> "HeartbeatService":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- events -------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[MembershipEvent]:
        """Membership events in the order they were observed; runs until cancelled."""
        while True:
            yield await self._events.get()

    def pending_events(self) -> list[MembershipEvent]:
        """Take every queued event without waiting."""
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    # -- timers -------------------------------------------------------------------------------

    def _send_round(self) -> None:
        if self._closed or self._protocol is None or self._protocol.transport is None:
            return
        self._sequence += 1
        header = _HEADER.pack(
            MAGIC, VERSION, 0, self.node_id, self.incarnation, self._sequence, self._clock()
        )
        packet = header + self._tagger.tag(header)
        transport = self._protocol.transport
        for peer in self._peers.values():
            if not peer.send:
                continue
            try:
                transport.sendto(packet, peer.address)
                self.stats.sent += 1
            except OSError:
                self.stats.send_errors += 1
        assert self._loop is not None
        self._send_timer = self._loop.call_later(self.interval_ns / 1e9, self._send_round)

    def _check_round(self) -> None:
        if self._closed:
            return
        self.check(self._clock())
        assert self._loop is not None
        self._check_timer = self._loop.call_later(self.check_interval_ns / 1e9, self._check_round)

    def check(self, now_ns: int) -> int:
        """Poll the bank at now_ns and queue an event per state change; returns how many."""
        ids, olds, news = self._bank.poll(now_ns)
        if len(ids) == 0:
            return 0
        phis = self._bank.phi_many(ids, ids * 0 + now_ns)
        for node, old, new, phi in zip(ids.tolist(), olds.tolist(), news.tolist(), phis.tolist(),
                                       strict=True):
            event = MembershipEvent(
                self._by_node[node], NodeState(old), NodeState(new), now_ns, phi
            )
            try:
                self._events.put_nowait(event)
            except asyncio.QueueFull:
                self.stats.events_dropped += 1
        return len(ids)

    # -- receive ------------------------------------------------------------------------------

    def feed_datagram(self, data: bytes) -> None:
        """Process one received datagram (the socket calls this; simulations and tests may).

        Never raises: a datagram that is not accepted is counted in stats and dropped.
        """
        stats = self.stats
        stats.received += 1
        if len(data) != HEARTBEAT_BYTES or data[:2] != MAGIC or data[2] != VERSION:
            stats.dropped_malformed += 1
            return
        header = data[: _HEADER.size]
        if not hmac.compare_digest(self._tagger.tag(header), data[_HEADER.size :]):
            stats.dropped_auth += 1
            return
        _, _, flags, sender, incarnation, sequence, send_time_ns = _HEADER.unpack(header)
        if flags != 0:
            stats.dropped_malformed += 1
            return
        peer = self._peers.get(sender)
        if peer is None or peer.node is None:
            stats.dropped_unknown_sender += 1
            return
        if (incarnation, sequence) <= (peer.incarnation, peer.sequence):
            stats.dropped_replay += 1
            return
        if incarnation > peer.incarnation >= 0:
            # The peer restarted: its old heartbeat history and the restart gap say nothing
            # about the new process, so the window starts again from the seeds.
            self._bank.reset_node(peer.node)
            stats.restarts += 1
        peer.incarnation = incarnation
        peer.sequence = sequence
        peer.last_send_time_ns = send_time_ns
        self._bank.heartbeat(peer.node, self._clock())
        stats.accepted += 1
