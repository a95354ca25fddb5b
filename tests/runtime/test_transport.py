"""TcpTransport over real loopback TCP: delivery of every message kind, batching and order,
reconnects, membership changes at run time, bounded queues with counted drops, a slow reader,
and a clean close(). Each test runs on uvloop and on asyncio's own loop.

All sockets are on 127.0.0.1 with ephemeral ports; every wait is bounded (helpers.WAIT_S) and
no test asserts how long anything took.
"""

import asyncio
import os
import socket
from pathlib import Path

import pytest

from haperf._native import raftmsg as rm
from haperf._native.raftmsg import Entry, Message
from haperf.runtime.loop import LoopKind, uvloop_available
from tests.runtime.helpers import (
    Collector,
    every_kind,
    fields,
    free_port,
    heartbeat,
    mesh,
    run_on,
    started,
    until,
)

LOOPS: list[LoopKind] = ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]
pytestmark = pytest.mark.parametrize("kind", LOOPS)


def test_every_message_kind_crosses_both_ways(kind: LoopKind) -> None:
    async def body() -> None:
        (a, b), (got_a, got_b) = await mesh(2)
        try:
            a.send(every_kind(1, 2))
            b.send(every_kind(2, 1))
            await until(lambda: len(got_b.messages) == 15 and len(got_a.messages) == 15)
            assert [fields(m) for m in got_b.messages] == [fields(m) for m in every_kind(1, 2)]
            assert [fields(m) for m in got_a.messages] == [fields(m) for m in every_kind(2, 1)]
            stats_a, stats_b = a.peer_stats()[2], b.peer_stats()[1]
            assert stats_a["frames_sent"] == 15 and stats_a["frames_received"] == 15
            assert stats_b["frames_sent"] == 15 and stats_b["frames_received"] == 15
            assert stats_a["dropped"] == stats_b["dropped"] == 0
            assert stats_a["connected"] and stats_b["connected"]
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


def test_three_nodes_every_kind_each_pair_gets_only_its_messages(kind: LoopKind) -> None:
    async def body() -> None:
        nodes, got = await mesh(3)
        try:
            # One send per node carries messages for both other nodes, interleaved: every
            # message kind, then ten heartbeats.
            for node in nodes:
                others = [n.node_id for n in nodes if n is not node]
                kinds = [every_kind(node.node_id, to) for to in others]
                batch = [m for pair in zip(*kinds, strict=True) for m in pair]
                batch += [heartbeat(node.node_id, to, i) for i in range(10) for to in others]
                node.send(batch)
            await until(lambda: all(len(c.messages) == 50 for c in got), "50 messages each")
            for node, collector in zip(nodes, got, strict=True):
                for sender in (n.node_id for n in nodes if n is not node):
                    from_sender = [m for m in collector.messages if m.frm == sender]
                    want = every_kind(sender, node.node_id)
                    assert [fields(m) for m in from_sender[:15]] == [fields(m) for m in want]
                    assert [m.commit for m in from_sender[15:]] == list(range(10))
                    assert all(m.to == node.node_id for m in from_sender)
        finally:
            for node in nodes:
                await node.close()

    run_on(kind, body)


def test_many_messages_in_one_send_arrive_in_order_in_batches(kind: LoopKind) -> None:
    async def body() -> None:
        (a, b), (_, got_b) = await mesh(2)
        try:
            total = 0
            for round_ in range(5):
                msgs = [heartbeat(1, 2, round_ * 1000 + i) for i in range(1000)]
                msgs.append(
                    Message(
                        rm.MSG_APP,
                        to=2,
                        frm=1,
                        term=1,
                        index=round_,
                        entries=[Entry(1, i + 1, b"v" * 100) for i in range(100)],
                    )
                )
                a.send(msgs)
                total += len(msgs)
            await until(lambda: len(got_b.messages) == total, "every message")
            beats = [m.commit for m in got_b.messages if m.type == rm.MSG_HEARTBEAT]
            assert beats == [r * 1000 + i for r in range(5) for i in range(1000)]
            apps = [m for m in got_b.messages if m.type == rm.MSG_APP]
            assert [m.index for m in apps] == list(range(5))
            assert all(len(m.entries) == 100 for m in apps)
            # Delivery is per received chunk, never one callback per frame.
            assert len(got_b.batches) < total
            assert max(len(batch) for batch in got_b.batches) > 1
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


def test_reconnects_to_a_peer_restarted_on_the_same_port(kind: LoopKind) -> None:
    async def body() -> None:
        got_b = Collector()
        b = await started(2, {}, got_b)
        port_b = b.address
        unreachable: list[int] = []
        a = await started(1, {2: port_b}, Collector(), on_unreachable=unreachable.append)
        b.set_peer(1, a.address)
        try:
            a.send([heartbeat(1, 2, 1)])
            await until(lambda: len(got_b.messages) == 1)
            await b.close()
            await until(lambda: not a.connected(2), "a notices b is gone")
            assert 2 in unreachable
            # Sent while b is down: queued (within the bound), delivered after the restart.
            a.send([heartbeat(1, 2, 2), heartbeat(1, 2, 3)])
            assert a.peer_stats()[2]["queued_bytes"] > 0
            got_b2 = Collector()
            b = await started(2, {1: a.address}, got_b2, listen=port_b)
            await until(lambda: [m.commit for m in got_b2.messages] == [2, 3], "queued ones")
            a.send([heartbeat(1, 2, 4)])
            await until(lambda: [m.commit for m in got_b2.messages] == [2, 3, 4])
            stats = a.peer_stats()[2]
            assert stats["reconnects"] >= 1 and stats["connected"]
            assert stats["queued_bytes"] == 0
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)


def test_peer_down_bounded_queue_then_counted_drops_and_unreachable(kind: LoopKind) -> None:
    async def body() -> None:
        unreachable: list[int] = []
        queue_max = 4096
        a = await started(
            1,
            {2: f"127.0.0.1:{free_port()}"},
            Collector(),
            peer_queue_bytes_max=queue_max,
            frame_bytes_max=queue_max,
            on_unreachable=unreachable.append,
        )
        try:
            await until(lambda: a.peer_stats()[2]["connect_failures"] >= 1, "a refused dial")
            assert unreachable and set(unreachable) == {2}
            unreachable.clear()
            sent = 0
            while a.peer_stats()[2]["dropped"] == 0:
                a.send([heartbeat(1, 2, sent)])
                sent += 1
                assert a.peer_stats()[2]["queued_bytes"] <= queue_max
                assert sent < 10_000, "never dropped"
            stats = a.peer_stats()[2]
            assert stats["dropped"] == 1 and stats["dropped_bytes"] > 0
            assert stats["queued_bytes"] + stats["dropped_bytes"] > queue_max
            assert unreachable == [2]
            a.send([heartbeat(1, 2, n) for n in range(10)])  # one call: one more report
            assert a.peer_stats()[2]["dropped"] == 11 and unreachable == [2, 2]
            assert not stats["connected"]
        finally:
            await a.close()

    run_on(kind, body)


def test_slow_reader_bounded_memory_and_drops(kind: LoopKind) -> None:
    async def body() -> None:
        # A "peer" whose kernel completes connections but that never accepts nor reads.
        with socket.socket() as sink:
            sink.bind(("127.0.0.1", 0))
            sink.listen(4)
            host, port = sink.getsockname()
            unreachable: list[int] = []
            queue_max = 1 << 20
            a = await started(
                1,
                {2: f"{host}:{port}"},
                Collector(),
                peer_queue_bytes_max=queue_max,
                frame_bytes_max=queue_max,
                on_unreachable=unreachable.append,
            )
            try:
                await until(lambda: a.connected(2), "a connected to the sink")
                app = Message(
                    rm.MSG_APP, to=2, frm=1, term=1, index=1, entries=[Entry(1, 2, b"x" * 65536)]
                )
                for _ in range(5000):
                    a.send([app])
                    stats = a.peer_stats()[2]
                    assert stats["queued_bytes"] <= queue_max
                    if stats["dropped"]:
                        break
                    await asyncio.sleep(0)
                stats = a.peer_stats()[2]
                assert stats["dropped"] >= 1 and unreachable == [2] * len(unreachable)
                assert unreachable
                assert stats["queued_bytes"] <= queue_max and stats["connected"]
            finally:
                await a.close()

    run_on(kind, body)


def test_membership_changes_at_run_time_and_dial_address_differs(kind: LoopKind) -> None:
    async def body() -> None:
        (a, b), (_, got_b) = await mesh(2)
        got_c = Collector()
        c = await started(3, {}, got_c)
        relay = await _Relay.start(c.address)
        try:
            a.send([heartbeat(1, 3, 1)])  # not a peer yet: dropped, counted
            assert a.stats()["dropped_unknown_peer"] == 1
            c.set_peer(1, a.address)
            a.set_peer(3, relay.address)  # a reaches c through the relay
            a.send([heartbeat(1, 3, 2)])
            await until(lambda: [m.commit for m in got_c.messages] == [2])
            assert relay.connections >= 1
            # Moving the dial address: the relay is bypassed from now on, counters are kept.
            a.set_peer(3, c.address)
            await until(lambda: a.connected(3))
            a.send([heartbeat(1, 3, 3)])
            await until(lambda: [m.commit for m in got_c.messages] == [2, 3])
            assert a.peer_stats()[3]["frames_sent"] == 2
            a.remove_peer(2)
            b_stats_before = b.peer_stats()[1]["frames_received"]
            a.send([heartbeat(1, 2, 9)])
            assert 2 not in a.peer_stats()
            await until(lambda: b.peer_stats()[1]["inbound_connections"] == 0, "b sees a leave")
            assert b.peer_stats()[1]["frames_received"] == b_stats_before
            assert len(got_b.messages) == b_stats_before
            # A node that removed a peer refuses its connections.
            c.remove_peer(1)
            await until(lambda: not a.connected(3) or a.peer_stats()[3]["disconnects"] > 0)
        finally:
            await relay.close()
            for node in (a, b, c):
                await node.close()

    run_on(kind, body)


def _socket_count() -> int:
    """Open socket fds of this process (uvloop also opens /dev/null once per loop: not ours)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the fd of the listdir itself is gone by now
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts fds through /proc")
def test_close_leaves_no_tasks_or_sockets_and_is_idempotent(kind: LoopKind) -> None:
    async def body() -> None:
        tasks_before = asyncio.all_tasks()
        sockets_before = _socket_count()
        dead = f"127.0.0.1:{free_port()}"
        nodes, got = await mesh(3)
        for node in nodes:
            node.set_peer(9, dead)  # a peer that refuses: backoff timers and connect tasks
        for node in nodes:
            node.send([heartbeat(node.node_id, to, 0) for to in (1, 2, 3, 9) if to != node.node_id])
        await until(lambda: all(len(c.messages) == 2 for c in got))
        await until(lambda: all(n.peer_stats()[9]["connect_failures"] for n in nodes))
        for node in nodes:
            await node.close()
            await node.close()
            assert node.closed
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == tasks_before
        assert _socket_count() == sockets_before
        nodes[0].send([heartbeat(1, 2)])  # after close: counted, not raised
        assert nodes[0].stats()["dropped_closed"] == 1

    run_on(kind, body)


class _Relay:
    """A plain TCP forwarder (one direction is all the transport uses): a stand-in for a proxy
    sitting between a node and the peer it dials."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    @classmethod
    async def start(cls, target: str) -> "_Relay":
        relay = cls(target)
        relay.server = await asyncio.start_server(relay._serve, "127.0.0.1", 0)
        return relay

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        host, port = self.target.rsplit(":", 1)
        _up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.writers += [writer, up_writer]
        try:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
        except ConnectionError:
            pass
        finally:
            up_writer.close()
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


def test_a_restarted_peer_that_dials_us_ends_our_backoff_at_once(kind: LoopKind) -> None:
    async def body() -> None:
        hour = 3_600_000_000_000
        got_b = Collector()
        b = await started(2, {}, got_b)
        b_address = b.address
        # With an hour of backoff, a would never redial b by itself within this test.
        a = await started(
            1, {2: b_address}, Collector(), reconnect_delay_min_ns=hour, reconnect_delay_max_ns=hour
        )
        b.set_peer(1, a.address)
        try:
            await until(lambda: a.connected(2))
            await b.close()
            await until(lambda: not a.connected(2) and a._peers[2].timer is not None, "backoff")
            b = await started(2, {1: a.address}, got_b, listen=b_address)
            await until(lambda: a.connected(2), "a redials b as soon as b dials a")
            a.send([heartbeat(1, 2, 5)])
            await until(lambda: 5 in [m.commit for m in got_b.messages])
        finally:
            await a.close()
            await b.close()

    run_on(kind, body)
