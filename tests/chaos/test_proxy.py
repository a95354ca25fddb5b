"""FaultProxy with plain sockets on 127.0.0.1: forwarding, partitions, delay, drop, bounds.

Each test starts its own sink servers (one per node id, standing in for a node's raft port),
a proxy in front of them, and talks through the proxy with asyncio streams. Everything is
bounded by `asyncio.wait_for`; no test asserts how fast anything is, only what arrives, in
what order, and (for delay) that nothing arrives before the delay has passed.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from haperf.chaos.proxy import FaultProxy
from haperf.errors import ConfigError

WAIT_S = 10.0


class Sink:
    """A node stand-in: records every byte received per connection and echoes it back."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.server: asyncio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        self.received.append(buf)
        try:
            while data := await reader.read(65536):
                buf.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def total(self) -> bytes:
        return b"".join(bytes(b) for b in self.received)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def cluster(n: int = 3, **kwargs: Any) -> AsyncIterator[tuple[FaultProxy, dict[int, Sink]]]:
    sinks = {i: Sink() for i in range(1, n + 1)}
    for sink in sinks.values():
        await sink.start()
    proxy = FaultProxy(sinks, {i: s.address for i, s in sinks.items()}, **kwargs)
    await proxy.start()
    try:
        yield proxy, sinks
    finally:
        await proxy.close()
        for sink in sinks.values():
            await sink.close()


async def dial(proxy: FaultProxy, a: int, b: int) -> tuple[asyncio.StreamReader, Any]:
    host, _, port = proxy.address(a, b).rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def is_dead(reader: asyncio.StreamReader, writer: Any) -> bool:
    """True when the connection is reset/closed by the proxy (a probe byte gets nothing back)."""
    try:
        writer.write(b"?")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(1), WAIT_S)
    except (ConnectionError, OSError):
        return True
    return data == b""


async def roundtrip(proxy: FaultProxy, a: int, b: int, payload: bytes) -> bytes:
    reader, writer = await dial(proxy, a, b)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), WAIT_S)
    finally:
        writer.close()


async def until(cond: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def test_every_directed_link_has_its_own_port_and_forwards_both_ways() -> None:
    async def body() -> None:
        async with cluster(3) as (proxy, sinks):
            addresses = {proxy.address(a, b) for a, b in proxy.links}
            assert len(proxy.links) == 6 and len(addresses) == 6
            assert proxy.dial_map(1) == {2: proxy.address(1, 2), 3: proxy.address(1, 3)}
            for a, b in proxy.links:
                payload = f"from {a} to {b}".encode() * 1000
                assert await roundtrip(proxy, a, b, payload) == payload
                await until(lambda b=b, p=payload: p in sinks[b].total(), "delivery")
            stats = proxy.stats()
            assert stats["1->2"]["forwarded_bytes"] == len(b"from 1 to 2") * 1000

    run(body)


def test_one_way_partition_cuts_live_connections_and_refuses_new_ones_until_healed() -> None:
    async def body() -> None:
        async with cluster(3) as (proxy, sinks):
            reader, writer = await dial(proxy, 1, 2)
            writer.write(b"before")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(6), WAIT_S) == b"before"
            proxy.partition(1, 2)
            assert await is_dead(reader, writer)
            writer.close()
            reader, writer = await dial(proxy, 1, 2)
            assert await is_dead(reader, writer)
            writer.close()
            # The reverse direction and the other links still carry traffic.
            assert await roundtrip(proxy, 2, 1, b"reverse") == b"reverse"
            assert await roundtrip(proxy, 1, 3, b"other") == b"other"
            assert b"before" in sinks[2].total() and b"?" not in sinks[2].total()
            assert proxy.faults() == {
                "1->2": {"blocked": True, "delay_ns": 0, "jitter_ns": 0, "drop_p": 0.0}
            }
            assert proxy.stats()["1->2"]["cut"] == 1
            assert proxy.stats()["1->2"]["refused"] >= 1
            proxy.heal()
            assert proxy.faults() == {}
            assert await roundtrip(proxy, 1, 2, b"after") == b"after"

    run(body)


def test_two_way_partition_isolate_and_sides() -> None:
    async def body() -> None:
        async with cluster(3) as (proxy, _):
            proxy.partition_nodes(1, 2)
            assert set(proxy.faults()) == {"1->2", "2->1"}
            proxy.heal()
            proxy.isolate(3)
            assert set(proxy.faults()) == {"1->3", "2->3", "3->1", "3->2"}
            for a, b in [(1, 3), (3, 2)]:
                reader, writer = await dial(proxy, a, b)
                assert await is_dead(reader, writer)
                writer.close()
            assert await roundtrip(proxy, 1, 2, b"majority") == b"majority"
            proxy.heal([(1, 3), (3, 1)])
            assert set(proxy.faults()) == {"2->3", "3->2"}
            assert await roundtrip(proxy, 3, 1, b"healed") == b"healed"
            proxy.heal()
            proxy.partition_sides([1], [2, 3])
            assert set(proxy.faults()) == {"1->2", "2->1", "1->3", "3->1"}

    run(body)


def test_delay_holds_bytes_at_least_the_delay_and_keeps_order_under_jitter() -> None:
    async def body() -> None:
        async with cluster(2) as (proxy, sinks):
            delay_ns = 200_000_000
            proxy.delay(1, 2, delay_ns, jitter_ns=100_000_000)
            loop = asyncio.get_running_loop()
            reader, writer = await dial(proxy, 1, 2)
            sent_at = loop.time()
            pieces = [b"%05d;" % i for i in range(200)]
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)
            echoed = await asyncio.wait_for(reader.readexactly(len(b"".join(pieces))), WAIT_S)
            # Nothing can arrive before the delay (a lower bound only: never flaky when slow).
            assert loop.time() - sent_at >= delay_ns / 1e9
            assert echoed == b"".join(pieces)
            assert sinks[2].total() == b"".join(pieces)
            writer.close()
            assert proxy.faults()["1->2"]["delay_ns"] == delay_ns
            proxy.heal()
            assert await roundtrip(proxy, 1, 2, b"undelayed") == b"undelayed"

    run(body)


def test_drop_cuts_whole_connections_never_corrupting_the_stream() -> None:
    async def body() -> None:
        async with cluster(2, seed=7) as (proxy, sinks):
            proxy.drop(1, 2, 1.0)
            reader, writer = await dial(proxy, 1, 2)
            assert await is_dead(reader, writer)
            writer.close()
            proxy.drop(1, 2, 0.3)
            delivered: list[bytes] = []
            for i in range(40):
                try:
                    got = await roundtrip(proxy, 1, 2, b"<message %03d>" % i)
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    continue
                delivered.append(got)
            stats = proxy.stats()["1->2"]
            # Some connections were lost, some got through, and what got through is intact.
            assert stats["refused"] + stats["cut"] > 1
            assert delivered
            assert all(d.startswith(b"<message ") and d.endswith(b">") for d in delivered)
            for buf in sinks[2].received:
                text = bytes(buf)
                assert text == b"" or (text.startswith(b"<message ") and len(text) <= 13)

    run(body)


def test_delay_buffer_is_bounded_and_backpressures_the_sender() -> None:
    async def body() -> None:
        bound = 32 * 1024
        async with cluster(2, link_buffer_bytes_max=bound) as (proxy, sinks):
            proxy.delay(1, 2, 10_000_000_000)
            _, writer = await dial(proxy, 1, 2)
            blob = b"x" * (16 << 20)
            writer.write(blob)
            # The sender cannot get 16 MiB out: the proxy stopped reading at its bound.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
            (conn,) = proxy._connections[(1, 2)]
            assert 0 < conn.forward.buffered <= bound
            assert sinks[2].total() == b""
            proxy.partition(1, 2)
            assert proxy.stats()["1->2"]["dropped_bytes"] >= conn.forward.buffered
            writer.transport.abort()

    run(body)


def test_connections_per_link_are_bounded() -> None:
    async def body() -> None:
        async with cluster(2, connections_per_link_max=2) as (proxy, _):
            kept = [await dial(proxy, 1, 2) for _ in range(2)]
            for reader, writer in kept:
                writer.write(b"k")
                assert await asyncio.wait_for(reader.readexactly(1), WAIT_S) == b"k"
            reader, writer = await dial(proxy, 1, 2)
            assert await is_dead(reader, writer)
            assert proxy.stats()["1->2"]["open"] == 2
            for _, w in [*kept, (reader, writer)]:
                w.close()

    run(body)


def test_unreachable_target_refuses_the_connection() -> None:
    async def body() -> None:
        proxy = FaultProxy([1, 2], {1: "127.0.0.1:1"})
        async with proxy:
            reader, writer = await dial(proxy, 2, 1)
            assert await is_dead(reader, writer)
            reader, writer = await dial(proxy, 1, 2)  # no target set for node 2 at all
            assert await is_dead(reader, writer)
            assert proxy.stats()["1->2"]["refused"] == 1

    run(body)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([],), {}),
        (([0, 1],), {}),
        (([1, 2],), {"links": [(1, 1)]}),
        (([1, 2],), {"links": [(1, 3)]}),
        (([1, 2],), {"link_buffer_bytes_max": 0}),
        (([1, 2],), {"connections_per_link_max": 0}),
        (([1, 2], {1: "nohost"}), {}),
        (([1, 2], {3: "127.0.0.1:5"}), {}),
    ],
)
def test_bad_configuration_raises_config_error(args: tuple[Any, ...], kwargs: Any) -> None:
    with pytest.raises(ConfigError):
        FaultProxy(*args, **kwargs)


def test_bad_fault_arguments_raise_config_error() -> None:
    proxy = FaultProxy([1, 2])
    for call in (
        lambda: proxy.partition(1, 3),
        lambda: proxy.isolate(9),
        lambda: proxy.delay(1, 2, -1),
        lambda: proxy.delay(1, 2, 0, 10**12),
        lambda: proxy.drop(1, 2, 1.5),
    ):
        with pytest.raises(ConfigError):
            call()
    with pytest.raises(RuntimeError):
        proxy.address(1, 2)
