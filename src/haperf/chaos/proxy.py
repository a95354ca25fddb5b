"""A fault-injecting TCP proxy for loopback clusters: one listener per directed link.

Owns `FaultProxy`. For every directed link (from, to) it listens on its own 127.0.0.1 port and
forwards each accepted connection to `to`'s raft address. The cluster is configured so that node
`from` dials that port to reach `to` (LocalCluster's `dial` hook); because haperf's transport
sends A's messages to B only over the connection A dials (NODE_API.md section 1), a link carries
exactly the traffic from `from` to `to`, and faults on it are one-way by construction.

Faults (all per link, all undone by `heal()`):

- partition (one-way): the link's live connections are cut (RST, buffered bytes discarded) and
  new connections are accepted and reset at once, so nothing from `from` reaches `to`;
  `partition_nodes(a, b)` does both directions, `isolate(id)` every link to and from a node;
- delay: every chunk read from the sender is held until `arrival + delay + U(0, jitter)`,
  never released before an earlier chunk (the byte stream stays ordered); a connection holds at
  most `link_buffer_bytes_max` per direction, beyond which the proxy stops reading and the
  sender's own TCP window and transport queue take the backpressure;
- drop: TCP cannot lose a byte in mid-stream without corrupting the frames behind it, so "drop
  with probability p" means: each accepted connection is reset with probability p, and each
  chunk read from the sender cuts the connection with probability p, discarding that chunk and
  every byte still buffered. Only whole connections are lost; the receiver sees a (possibly
  truncated) stream end, which the transport treats as a dead connection, and the sender
  reconnects and Raft retransmits. The stream is never corrupted.

Invariants: a link's faults apply to connections already open (a new partition or drop cuts
them; a new delay applies to bytes read from then on); every connection, buffer and delay is
bounded (`connections_per_link_max`; per connection direction `link_buffer_bytes_max` in the
delay line plus the stream reader's own 64 KiB window; `DELAY_NS_MAX`); randomness comes
from one seeded `random.Random`, so a seed fixes the sequence of drop decisions (not which
connection they hit: that depends on timing); `close()` cancels every task it started.
"""

import asyncio
import contextlib
import functools
import random
import socket
import struct
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from haperf.errors import ConfigError
from haperf.runtime.address import parse_address

CHUNK_BYTES = 65_536
LINK_BUFFER_BYTES_DEFAULT = 1 << 20
LINK_BUFFER_BYTES_MAX = 64 << 20
CONNECTIONS_PER_LINK_DEFAULT = 8
CONNECTIONS_PER_LINK_MAX = 1_024
DELAY_NS_MAX = 10_000_000_000
CONNECT_TIMEOUT_S = 2.0
LINKS_MAX = 64 * 63
NODE_ID_MAX = (1 << 63) - 1

Link = tuple[int, int]


@dataclass(slots=True)
class LinkStats:
    """Counters of one directed link (monotonic except `open`)."""

    accepted: int = 0
    refused: int = 0
    cut: int = 0
    dropped_bytes: int = 0
    forwarded_bytes: int = 0
    open: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "refused": self.refused,
            "cut": self.cut,
            "dropped_bytes": self.dropped_bytes,
            "forwarded_bytes": self.forwarded_bytes,
            "open": self.open,
        }


@dataclass(slots=True)
class _LinkFaults:
    blocked: bool = False
    delay_ns: int = 0
    jitter_ns: int = 0
    drop_p: float = 0.0

    def clear(self) -> None:
        self.blocked = False
        self.delay_ns = 0
        self.jitter_ns = 0
        self.drop_p = 0.0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees the connection die, not a clean EOF."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # An OSError means the socket is already gone: aborting below is all there is to do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Pipe:
    """One direction of one proxied connection: a bounded delay line from reader to writer."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    faulty: bool  # the from->to direction (faults apply); the reverse direction only forwards
    chunks: deque[tuple[float, bytes]] = field(default_factory=deque)
    buffered: int = 0
    last_release: float = 0.0
    eof: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection:
    """An accepted connection and its upstream: two pipes, cut or closed as one."""

    def __init__(
        self,
        proxy: "FaultProxy",
        link: Link,
        *,
        down_r: asyncio.StreamReader,
        down_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.link = link
        self.down_w = down_w
        self.up_w = up_w
        self.forward = _Pipe(down_r, up_w, faulty=True)
        self.backward = _Pipe(up_r, down_w, faulty=False)
        self.tasks: list[asyncio.Task[None]] = []
        self.done = False

    def start(self) -> None:
        for pipe in (self.forward, self.backward):
            for coro in (self._read(pipe), self._write(pipe)):
                task = asyncio.ensure_future(coro)
                self.tasks.append(task)
                self.proxy._tasks.add(task)
                task.add_done_callback(self.proxy._tasks.discard)

    def cut(self) -> None:
        """Reset both sides and discard everything buffered (a lost connection)."""
        if self.done:
            return
        stats = self.proxy._stats[self.link]
        stats.cut += 1
        stats.dropped_bytes += self.forward.buffered
        self._finish(reset=True)

    def close(self) -> None:
        self._finish(reset=False)

    def _finish(self, *, reset: bool) -> None:
        if self.done:
            return
        self.done = True
        self.proxy._stats[self.link].open -= 1
        self.proxy._connections[self.link].discard(self)
        for writer in (self.down_w, self.up_w):
            if reset:
                _reset(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def _read(self, pipe: _Pipe) -> None:
        proxy = self.proxy
        faults = proxy._faults[self.link]
        loop = asyncio.get_running_loop()
        try:
            while True:
                while pipe.buffered >= proxy.link_buffer_bytes_max:
                    pipe.space.clear()
                    await pipe.space.wait()
                room = proxy.link_buffer_bytes_max - pipe.buffered
                data = await pipe.reader.read(min(CHUNK_BYTES, room))
                if not data:
                    pipe.eof = True
                    pipe.ready.set()
                    return
                if pipe.faulty:
                    if faults.blocked:
                        proxy._stats[self.link].dropped_bytes += len(data)
                        self.cut()
                        return
                    if faults.drop_p > 0.0 and proxy._rng.random() < faults.drop_p:
                        proxy._stats[self.link].dropped_bytes += len(data)
                        self.cut()
                        return
                    hold_s = proxy._hold_s(faults)
                else:
                    hold_s = 0.0
                release = max(pipe.last_release, loop.time() + hold_s)
                pipe.last_release = release
                pipe.chunks.append((release, data))
                pipe.buffered += len(data)
                pipe.ready.set()
        except (ConnectionError, OSError):
            self.cut()

    async def _write(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        stats = self.proxy._stats[self.link]
        try:
            while True:
                if not pipe.chunks:
                    if pipe.eof:
                        self.close()
                        return
                    pipe.ready.clear()
                    await pipe.ready.wait()
                    continue
                release, data = pipe.chunks[0]
                wait_s = release - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                pipe.chunks.popleft()
                pipe.buffered -= len(data)
                pipe.space.set()
                pipe.writer.write(data)
                if pipe.faulty:
                    stats.forwarded_bytes += len(data)
                await pipe.writer.drain()
        except (ConnectionError, OSError):
            self.cut()


class FaultProxy:
    """Forwards every directed link of a cluster through its own loopback port, with faults.

    `targets` maps node id -> that node's raft "host:port" (settable later with `set_target`,
    so listeners can be bound before the cluster's ports are known). `links` defaults to every
    ordered pair of distinct ids in `node_ids`. Use `await start()`, then `address(from, to)`
    (what node `from` dials to reach `to`), the fault methods, `heal()`, `await close()`.
    """

    def __init__(
        self,
        node_ids: Iterable[int],
        targets: Mapping[int, str] | None = None,
        *,
        links: Iterable[Link] | None = None,
        host: str = "127.0.0.1",
        seed: int = 0,
        link_buffer_bytes_max: int = LINK_BUFFER_BYTES_DEFAULT,
        connections_per_link_max: int = CONNECTIONS_PER_LINK_DEFAULT,
    ) -> None:
        ids = sorted(set(node_ids))
        if not ids or any(not 0 < i <= NODE_ID_MAX for i in ids):
            raise ConfigError(f"node ids must be positive integers, got {ids}")
        self.node_ids = tuple(ids)
        all_links = [(a, b) for a in ids for b in ids if a != b]
        chosen = sorted(set(links)) if links is not None else all_links
        for link in chosen:
            if link[0] == link[1] or link[0] not in ids or link[1] not in ids:
                raise ConfigError(f"link {link} must join two distinct ids of {ids}")
        if len(chosen) > LINKS_MAX:
            raise ConfigError(f"{len(chosen)} links is more than LINKS_MAX={LINKS_MAX}")
        if not 0 < link_buffer_bytes_max <= LINK_BUFFER_BYTES_MAX:
            raise ConfigError(
                f"link_buffer_bytes_max must be in 1..{LINK_BUFFER_BYTES_MAX}, "
                f"got {link_buffer_bytes_max}"
            )
        if not 0 < connections_per_link_max <= CONNECTIONS_PER_LINK_MAX:
            raise ConfigError(
                f"connections_per_link_max must be in 1..{CONNECTIONS_PER_LINK_MAX}, "
                f"got {connections_per_link_max}"
            )
        self.links: tuple[Link, ...] = tuple(chosen)
        self.host = host
        self.link_buffer_bytes_max = link_buffer_bytes_max
        self.connections_per_link_max = connections_per_link_max
        self._targets: dict[int, str] = {}
        for node_id, address in (targets or {}).items():
            self.set_target(node_id, address)
        self._rng = random.Random(seed)
        self._faults = {link: _LinkFaults() for link in self.links}
        self._stats = {link: LinkStats() for link in self.links}
        self._connections: dict[Link, set[_Connection]] = {link: set() for link in self.links}
        self._servers: dict[Link, asyncio.Server] = {}
        self._addresses: dict[Link, str] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind one listener per link on `host`, port 0 (idempotent)."""
        if self._servers:
            return
        self._closing = False
        for link in self.links:
            server = await asyncio.start_server(functools.partial(self._accept, link), self.host, 0)
            port = server.sockets[0].getsockname()[1]
            self._servers[link] = server
            self._addresses[link] = f"{self.host}:{port}"

    async def close(self) -> None:
        """Stop listening, reset every proxied connection, cancel every task (idempotent)."""
        self._closing = True
        for server in self._servers.values():
            server.close()
        pending = [*self._tasks, *self._handshakes]
        for link in self.links:
            for conn in list(self._connections[link]):
                conn.cut()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for server in self._servers.values():
            await server.wait_closed()

    async def __aenter__(self) -> "FaultProxy":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def set_target(self, node_id: int, address: str) -> None:
        """Where connections to `node_id` are forwarded (its raft "host:port")."""
        if node_id not in self.node_ids:
            raise ConfigError(f"node {node_id} is not one of the proxy's nodes {self.node_ids}")
        parse_address(address, what=f"target of node {node_id}")
        self._targets[node_id] = address

    def address(self, from_id: int, to_id: int) -> str:
        """The "host:port" node `from_id` must dial to reach `to_id` through the proxy."""
        self._link((from_id, to_id))
        if not self._addresses:
            raise RuntimeError("FaultProxy.address() before start(): await proxy.start() first")
        return self._addresses[(from_id, to_id)]

    def dial_map(self, from_id: int) -> dict[int, str]:
        """Every peer -> proxy address for node `from_id` (its config's `dial` section)."""
        return {b: self.address(a, b) for (a, b) in self.links if a == from_id}

    # -- faults --------------------------------------------------------------------------------

    def partition(self, from_id: int, to_id: int) -> None:
        """One-way partition: nothing from `from_id` reaches `to_id` until healed."""
        link = self._link((from_id, to_id))
        self._faults[link].blocked = True
        for conn in list(self._connections[link]):
            conn.cut()

    def partition_nodes(self, a: int, b: int) -> None:
        """Two-way partition between `a` and `b`."""
        self.partition(a, b)
        self.partition(b, a)

    def partition_sides(self, side: Iterable[int], other: Iterable[int]) -> None:
        """Two-way partition between every node of `side` and every node of `other`."""
        others = list(other)
        for a in side:
            for b in others:
                self.partition_nodes(a, b)

    def isolate(self, node_id: int) -> None:
        """Cut every link to and from `node_id`."""
        if node_id not in self.node_ids:
            raise ConfigError(f"node {node_id} is not one of {self.node_ids}")
        for a, b in self.links:
            if node_id in (a, b):
                self.partition(a, b)

    def delay(self, from_id: int, to_id: int, delay_ns: int, jitter_ns: int = 0) -> None:
        """Hold bytes from `from_id` to `to_id` for delay_ns + U(0, jitter_ns) (order kept)."""
        link = self._link((from_id, to_id))
        if not 0 <= delay_ns <= DELAY_NS_MAX or not 0 <= jitter_ns <= DELAY_NS_MAX:
            raise ConfigError(
                f"delay_ns and jitter_ns must be in 0..{DELAY_NS_MAX}, got {delay_ns}, {jitter_ns}"
            )
        self._faults[link].delay_ns = delay_ns
        self._faults[link].jitter_ns = jitter_ns

    def drop(self, from_id: int, to_id: int, probability: float) -> None:
        """Lose whole connections on the link: each accept and each chunk cuts with p."""
        link = self._link((from_id, to_id))
        if not 0.0 <= probability <= 1.0:
            raise ConfigError(f"drop probability must be in [0, 1], got {probability}")
        self._faults[link].drop_p = probability

    def heal(self, links: Iterable[Link] | None = None) -> None:
        """Undo every fault (on `links`, default all). Open connections keep running."""
        for link in self.links if links is None else [self._link(x) for x in links]:
            self._faults[link].clear()

    def faults(self) -> dict[str, dict[str, object]]:
        """The active faults, "from->to" -> {blocked, delay_ns, jitter_ns, drop_p}."""
        out: dict[str, dict[str, object]] = {}
        for (a, b), f in self._faults.items():
            if f.blocked or f.delay_ns or f.jitter_ns or f.drop_p:
                out[f"{a}->{b}"] = {
                    "blocked": f.blocked,
                    "delay_ns": f.delay_ns,
                    "jitter_ns": f.jitter_ns,
                    "drop_p": f.drop_p,
                }
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-link counters, "from->to" -> LinkStats.as_dict()."""
        return {f"{a}->{b}": s.as_dict() for (a, b), s in self._stats.items()}

    # -- internals -----------------------------------------------------------------------------

    def _link(self, link: Link) -> Link:
        if link not in self._faults:
            raise ConfigError(f"no proxied link {link[0]}->{link[1]}; links are {self.links}")
        return link

    def _hold_s(self, faults: _LinkFaults) -> float:
        hold_ns = faults.delay_ns
        if faults.jitter_ns:
            hold_ns += self._rng.randint(0, faults.jitter_ns)
        return hold_ns / 1e9

    def _accept(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stats = self._stats[link]
        faults = self._faults[link]
        target = self._targets.get(link[1])
        refuse = (
            self._closing
            or faults.blocked
            or target is None
            or len(self._connections[link]) + len(self._handshakes) >= self.connections_per_link_max
            or (faults.drop_p > 0.0 and self._rng.random() < faults.drop_p)
        )
        if refuse or target is None:
            stats.refused += 1
            _reset(writer)
            return
        task = asyncio.ensure_future(self._connect(link, target, reader, writer))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _connect(
        self,
        link: Link,
        target: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        host, _, port = target.rpartition(":")
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            self._stats[link].refused += 1
            _reset(writer)
            return
        except asyncio.CancelledError:
            _reset(writer)
            raise
        if self._faults[link].blocked or self._closing:
            # Partitioned (or closed) while we were connecting: the link is down.
            self._stats[link].refused += 1
            _reset(writer)
            _reset(up_w)
            return
        conn = _Connection(self, link, down_r=reader, down_w=writer, up_r=up_r, up_w=up_w)
        self._connections[link].add(conn)
        stats = self._stats[link]
        stats.accepted += 1
        stats.open += 1
        conn.start()
