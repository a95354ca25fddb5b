"""HeartbeatService over real UDP sockets on 127.0.0.1: detection, events, bad datagrams.

Each test runs its own event loop (uvloop when installed) for a bounded time, closes every
socket it opened, and uses 20 ms heartbeats so failure shows up within about a second.
"""

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from haperf.cli.main import main
from haperf.detect import ALIVE, FAILED, SUSPECT
from haperf.detect.load import measure_udp_load
from haperf.detect.udp import (
    HEARTBEAT_BYTES,
    HeartbeatService,
    MembershipEvent,
    encode_heartbeat,
)
from haperf.errors import ConfigError, UnknownNodeError

KEY = b"k" * 32
INTERVAL_NS = 20_000_000
T = TypeVar("T")


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), timeout=20))
    finally:
        loop.close()


def detector() -> dict[str, object]:
    # A 200 ms acceptable pause keeps a loaded test machine's scheduling hiccups from looking
    # like failures; a stopped peer is still declared failed within about half a second.
    return {
        "threshold": 4.0,
        "failed_threshold": 8.0,
        "min_std_deviation_ns": 5_000_000,
        "acceptable_heartbeat_pause_ns": 200_000_000,
    }


async def pair() -> tuple[HeartbeatService, HeartbeatService]:
    a = HeartbeatService(1, KEY, interval_ns=INTERVAL_NS, detector=detector())
    b = HeartbeatService(2, KEY, interval_ns=INTERVAL_NS, detector=detector())
    await a.start()
    await b.start()
    a.add_peer(2, b.address)
    b.add_peer(1, a.address)
    return a, b


async def wait_for(pred: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_peers_stay_alive_then_a_stopped_peer_is_detected() -> None:
    async def body() -> list[MembershipEvent]:
        a, b = await pair()
        try:
            await wait_for(lambda: a.stats.accepted >= 20 and b.stats.accepted >= 20)
            assert a.pending_events() == []  # steady heartbeats: nobody suspected
            assert a.state(2) == ALIVE
            b.close()  # crash b
            events: list[MembershipEvent] = []

            async def collect() -> None:
                async for event in a.events():
                    events.append(event)
                    if event.new == FAILED:
                        return

            await asyncio.wait_for(collect(), timeout=5)
            assert a.stats.dropped == 0
            return events
        finally:
            a.close()
            b.close()

    events = run(body)
    # Usually ALIVE -> SUSPECT -> FAILED; a check that runs late on a loaded machine may see
    # phi jump past both thresholds at once and report ALIVE -> FAILED. Either way the events
    # chain (each starts where the last ended), start ALIVE, end FAILED, and carry their phi.
    transitions = [(e.peer_id, e.old, e.new) for e in events]
    assert transitions in (
        [(2, ALIVE, SUSPECT), (2, SUSPECT, FAILED)],
        [(2, ALIVE, FAILED)],
    )
    for event in events:
        assert event.phi >= (4.0 if event.new == SUSPECT else 8.0)
    assert [e.at_ns for e in events] == sorted(e.at_ns for e in events)


def test_forged_malformed_replayed_and_unknown_datagrams_are_dropped_and_counted() -> None:
    async def body() -> None:
        a, b = await pair()
        b.close()  # only our hand-made datagrams reach a from now on
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            await asyncio.sleep(0.05)
            before = a.stats.accepted
            good = encode_heartbeat(KEY, 2, b.incarnation, 10_000, 0)
            forged = encode_heartbeat(b"x" * 32, 2, b.incarnation, 10_001, 0)
            tampered = bytearray(encode_heartbeat(KEY, 2, b.incarnation, 10_002, 0))
            tampered[20] ^= 1
            unknown = encode_heartbeat(KEY, 99, 1, 1, 0)
            malformed = [b"", b"HB", b"\x00" * HEARTBEAT_BYTES, good[:-1], good + b"\x00",
                         b"XX" + good[2:], good[:2] + b"\x07" + good[3:]]
            for datagram in [good, good, forged, bytes(tampered), unknown, *malformed]:
                sock.sendto(datagram, a.address)
            older = encode_heartbeat(KEY, 2, b.incarnation - 1, 99_999, 0)  # old incarnation
            sock.sendto(older, a.address)
            restarted = encode_heartbeat(KEY, 2, b.incarnation + 1, 1, 0)  # new incarnation
            sock.sendto(restarted, a.address)
            await wait_for(lambda: a.stats.received >= 14 + before)
            s = a.stats
            assert s.accepted - before == 2  # good once, restarted once
            assert s.dropped_replay == 2  # the second good, the old incarnation
            assert s.dropped_auth == 2  # wrong key, flipped bit
            assert s.dropped_unknown_sender == 1
            assert s.dropped_malformed == len(malformed)
            assert s.received == s.accepted + s.dropped
        finally:
            sock.close()
            a.close()

    run(body)


def test_service_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        HeartbeatService(1, b"short")
    with pytest.raises(ConfigError):
        HeartbeatService(1, KEY, interval_ns=10)
    with pytest.raises(ConfigError):
        HeartbeatService(1, KEY, peers={1: ("127.0.0.1", 9)})  # itself
    s = HeartbeatService(1, KEY, peers={2: ("127.0.0.1", 9)})
    with pytest.raises(ConfigError):
        s.add_peer(2, ("127.0.0.1", 10))
    with pytest.raises(ConfigError):
        _ = s.address  # not started
    s.remove_peer(2)
    assert s.peers == {}


def test_send_only_and_watch_only_peers() -> None:
    async def body() -> None:
        a = HeartbeatService(1, KEY, interval_ns=INTERVAL_NS, detector=detector())
        b = HeartbeatService(2, KEY, interval_ns=INTERVAL_NS, detector=detector())
        await a.start()
        await b.start()
        try:
            a.add_peer(2, b.address, watch=False)  # a only sends to b
            b.add_peer(1, a.address, send=False)  # b only watches a
            await wait_for(lambda: b.stats.accepted >= 5)
            assert a.stats.received == 0 and b.stats.sent == 0
            assert b.phi(1) < 4.0
            with pytest.raises(UnknownNodeError):
                a.phi(2)
            with pytest.raises(ConfigError):
                a.add_peer(3, b.address, send=False, watch=False)
        finally:
            a.close()
            b.close()

    run(body)


def test_udp_load_measurement_runs_a_small_ring(capsys: pytest.CaptureFixture[str]) -> None:
    result = measure_udp_load(4, interval_ns=INTERVAL_NS, seconds=0.3, warmup_s=0.1)
    assert result.nodes == 4 and result.accepted > 0 and result.dropped == 0
    assert result.cpu_seconds >= 0 and result.seconds > 0
    code = main(["detect", "udp-load", "--nodes", "3", "--hz", "50", "--seconds", "0.2",
                 "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"] == 3 and data["sent"] > 0
    with pytest.raises(ConfigError):
        measure_udp_load(1)


@pytest.mark.parametrize(("nodes", "fanout"), [(2, 1), (4, 2), (3, 2)])
def test_udp_load_short_ring_wires_each_pair_once(nodes: int, fanout: int) -> None:
    """When 2 * fanout >= nodes a pair both sends and watches each way; it used to be added
    twice and fail with 'peer already configured'."""
    result = measure_udp_load(nodes, fanout=fanout, interval_ns=INTERVAL_NS, seconds=0.2,
                              warmup_s=0.1)
    assert result.accepted > 0 and result.dropped == 0
