"""Test harness for RaftNode: a virtual-time event loop, an in-process network, a KV machine.

Owns VirtualLoop (asyncio's selector loop whose clock jumps to the next timer when nothing is
runnable: hours of Raft time in milliseconds, and no timing in any assertion), FakeNet (a
transport factory honouring the TcpTransport contract: frames go through the real codec, a
node receives only from senders it knows as peers, links can be cut) and Cluster (N RaftNodes
on one loop, each with a MemoryStorage that survives its restarts, like a disk).
Invariants: everything runs on one thread; every wait is bounded (in virtual time).
"""

import asyncio
import json
import selectors
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from haperf._native.codec import decode, encode
from haperf._native.raftmsg import Message
from haperf.raft.node import NodeConfig, RaftNode
from haperf.raft.storage import MemoryStorage

T = TypeVar("T")
LATENCY_S = 0.0002  # one-way network delay of the fake network (virtual)
WAIT_S_MAX = 30.0  # the longest any helper waits (virtual seconds)


class _VirtualSelector(selectors.BaseSelector):
    """Polls the real selector without blocking; when idle, advances the virtual clock."""

    def __init__(self, loop: "VirtualLoop") -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            return self._real.select(None)  # nothing scheduled: only a real event can come
        self._loop.vnow += max(timeout, 1e-6)  # always progress, whatever float rounding does
        return []

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is virtual: it jumps to the next timer when idle."""

    def __init__(self) -> None:
        self.vnow = 1000.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.vnow


class FakeTransport:
    """In-process transport with TcpTransport's API; frames are encoded and decoded."""

    def __init__(
        self,
        net: "FakeNet",
        node_id: int,
        listen: str,
        peers: dict[int, str],
        on_messages: Callable[[list[Message]], None],
        *,
        cluster_id: bytes = b"haperf",
        on_unreachable: Callable[[int], None] | None = None,
    ) -> None:
        self.net = net
        self.node_id = node_id
        self.address = listen
        self.peers = dict(peers)
        self.on_messages = on_messages
        self.cluster_id = cluster_id
        self.closed = False
        self.sent = 0

    async def start(self) -> None:
        self.net.transports[self.node_id] = self

    def send(self, messages: list[Message]) -> None:
        if self.closed:
            return
        by_peer: dict[int, list[bytes]] = {}
        for m in messages:
            by_peer.setdefault(m.to, []).append(encode(m))
        for to, frames in by_peer.items():
            if to not in self.peers or (self.node_id, to) in self.net.cut:
                continue
            self.sent += len(frames)
            self.net.loop.call_later(LATENCY_S, self.net.deliver, self.node_id, to, frames)

    def set_peer(self, node_id: int, address: str) -> None:
        self.peers[node_id] = address

    def remove_peer(self, node_id: int) -> None:
        self.peers.pop(node_id, None)

    def peer_stats(self) -> dict[int, dict[str, Any]]:
        return {
            i: {"connected": i in self.net.transports and (self.node_id, i) not in self.net.cut}
            for i in self.peers
        }

    async def close(self) -> None:
        self.closed = True
        if self.net.transports.get(self.node_id) is self:
            del self.net.transports[self.node_id]


class FakeNet:
    """The in-process network: transports by node id, cut links, a frame filter."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transports: dict[int, FakeTransport] = {}
        self.cut: set[tuple[int, int]] = set()
        self.drop: Callable[[Message], bool] | None = None

    def factory(self, *args: Any, **kwargs: Any) -> FakeTransport:
        return FakeTransport(self, *args, **kwargs)

    def deliver(self, frm: int, to: int, frames: list[bytes]) -> None:
        dest = self.transports.get(to)
        if dest is None or dest.closed or (frm, to) in self.cut:
            return
        if frm not in dest.peers:
            return  # the handshake names a sender this node does not know: refused
        msgs = [decode(f) for f in frames]
        if self.drop is not None:
            msgs = [m for m in msgs if not self.drop(m)]
        if msgs:
            dest.on_messages(msgs)

    def isolate(self, node_id: int, ids: Iterable[int]) -> None:
        for other in ids:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()


class KV:
    """A state machine: commands "key=value"; apply returns the index; query(key) -> value."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied: list[tuple[int, bytes]] = []

    def apply(self, index: int, data: bytes) -> object:
        self.applied.append((index, data))
        key, _, value = data.decode().partition("=")
        self.data[key] = value
        return index

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.data = json.loads(data) if data else {}
        self.applied = []

    def query(self, key: object) -> object:
        return self.data.get(str(key))


class Cluster:
    """N RaftNodes on one loop over a FakeNet; storages survive restarts (the 'disk')."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int = 3, **options: Any) -> None:
        self.loop = loop
        self.net = FakeNet(loop)
        self.options = options
        self.members = {i: f"node{i}:7000" for i in range(1, n + 1)}
        self.storages: dict[int, MemoryStorage] = {}
        self.machines: dict[int, KV] = {}
        self.nodes: dict[int, RaftNode] = {}

    def config(self, node_id: int, **extra: Any) -> NodeConfig:
        opts = {"seed": node_id * 7919, **self.options, **extra}
        return NodeConfig(node_id, self.members, **opts)

    async def start(self, node_id: int, **extra: Any) -> RaftNode:
        storage = self.storages.setdefault(node_id, MemoryStorage())
        kv = KV()
        self.machines[node_id] = kv
        node = RaftNode(
            self.config(node_id, **extra),
            kv,
            metadata={"resp": f"resp{node_id}:6379"},
            transport_factory=self.net.factory,
            storage=storage,
        )
        await node.start()
        self.nodes[node_id] = node
        return node

    async def start_all(self) -> None:
        for i in self.members:
            await self.start(i)

    async def stop(self, node_id: int) -> None:
        await self.nodes.pop(node_id).stop()

    async def stop_all(self) -> None:
        for i in list(self.nodes):
            await self.stop(i)

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.is_leader]

    async def wait_leader(self, exclude: Iterable[int] = ()) -> int:
        """Wait until exactly one running node leads and every running node knows it."""
        ex = set(exclude)

        def agreed() -> int:
            ls = [i for i in self.leaders() if i not in ex]
            if len(ls) != 1:
                return 0
            if all(n.leader_id == ls[0] for i, n in self.nodes.items() if i not in ex):
                return ls[0]
            return 0

        return await wait_for(agreed)

    async def wait_applied(self, index: int, ids: Iterable[int] | None = None) -> None:
        targets = list(self.nodes) if ids is None else list(ids)
        await wait_for(lambda: all(self.nodes[i].status()["applied"] >= index for i in targets))


async def wait_for(predicate: Callable[[], T], timeout_s: float = WAIT_S_MAX) -> T:
    """Poll `predicate` every millisecond of loop time until truthy (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (loop time)")
        await asyncio.sleep(0.001)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run `coro_fn()` on a fresh VirtualLoop and close it."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), WAIT_S_MAX * 10))
    finally:
        loop.close()


def run_real_time(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run `coro_fn()` on a fresh real-time loop (tests with worker threads) and close it."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), WAIT_S_MAX * 2))
    finally:
        loop.close()
