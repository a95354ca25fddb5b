"""HeartbeatService without sockets: virtual time and fuzzed datagrams.

feed_datagram is what the socket protocol calls; driving it with a fake clock makes detection
and events deterministic, and feeding random or mutated bytes checks it never raises.
"""

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from haperf.detect import ALIVE, FAILED, SUSPECT
from haperf.detect.udp import HEARTBEAT_BYTES, HeartbeatService, encode_heartbeat

KEY = b"0123456789abcdef0123456789abcdef"
MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


def service(clock: FakeClock) -> HeartbeatService:
    s = HeartbeatService(
        1,
        KEY,
        interval_ns=100 * MS,
        detector={"threshold": 3.0, "failed_threshold": 9.0, "min_std_deviation_ns": 10 * MS},
        clock=clock,
    )
    s.add_peer(7, ("127.0.0.1", 9), send=False)
    return s


def test_virtual_time_detection_and_events() -> None:
    clock = FakeClock()
    s = service(clock)
    for seq in range(1, 51):
        s.feed_datagram(encode_heartbeat(KEY, 7, 5, seq, 0))
        assert s.check(clock.now) == 0
        clock.now += 100 * MS
    assert s.stats.accepted == 50
    assert s.phi(7) < 3.0 and s.state(7) == ALIVE
    # silence: check every 10 ms of virtual time until FAILED
    seen = []
    for _ in range(200):
        clock.now += 10 * MS
        s.check(clock.now)
        seen += s.pending_events()
        if seen and seen[-1].new == FAILED:
            break
    assert [(e.peer_id, e.old, e.new) for e in seen] == [(7, ALIVE, SUSPECT), (7, SUSPECT, FAILED)]
    assert s.state(7) == FAILED
    # it comes back: the next heartbeat and check report ALIVE
    s.feed_datagram(encode_heartbeat(KEY, 7, 5, 51, 0))
    s.check(clock.now)
    back = s.pending_events()
    assert [(e.old, e.new) for e in back] == [(FAILED, ALIVE)]


def test_event_queue_is_bounded() -> None:
    clock = FakeClock()
    s = HeartbeatService(1, KEY, interval_ns=100 * MS, events_max=1, clock=clock,
                         detector={"threshold": 1.0, "failed_threshold": 2.0})
    for peer in (2, 3, 4):
        s.add_peer(peer, ("127.0.0.1", 9), send=False)
        s.feed_datagram(encode_heartbeat(KEY, peer, 1, 1, 0))
    clock.now += 10**12
    assert s.check(clock.now) == 3
    assert len(s.pending_events()) == 1 and s.stats.events_dropped == 2


def test_events_iterator_yields_queued_events() -> None:
    clock = FakeClock()
    s = service(clock)
    s.feed_datagram(encode_heartbeat(KEY, 7, 1, 1, 0))
    clock.now += 10**12
    s.check(clock.now)

    async def first() -> object:
        async for event in s.events():
            return event
        return None

    loop = asyncio.new_event_loop()
    try:
        event = loop.run_until_complete(asyncio.wait_for(first(), 5))
    finally:
        loop.close()
    assert getattr(event, "new", None) == FAILED


@given(st.binary(max_size=3 * HEARTBEAT_BYTES))
def test_random_bytes_never_raise_and_are_counted(data: bytes) -> None:
    s = service(FakeClock())
    s.feed_datagram(data)
    assert s.stats.received == 1
    assert s.stats.accepted + s.stats.dropped == 1


@given(
    position=st.integers(0, HEARTBEAT_BYTES - 1),
    xor=st.integers(1, 255),
    cut=st.integers(0, HEARTBEAT_BYTES + 4),
)
def test_mutated_heartbeats_are_dropped(position: int, xor: int, cut: int) -> None:
    s = service(FakeClock())
    good = encode_heartbeat(KEY, 7, 3, 9, 12345)
    flipped = bytearray(good)
    flipped[position] ^= xor
    s.feed_datagram(bytes(flipped))
    s.feed_datagram((good + b"\x00" * 4)[:cut] if cut != HEARTBEAT_BYTES else good[:-1])
    assert s.stats.accepted == 0 and s.stats.dropped == 2
    s.feed_datagram(good)
    assert s.stats.accepted == 1


def test_a_restarted_peer_starts_a_fresh_window() -> None:
    clock = FakeClock()
    s = service(clock)
    for seq in range(1, 30):
        s.feed_datagram(encode_heartbeat(KEY, 7, 5, seq, 0))
        clock.now += 100 * MS
    clock.now += 60_000 * MS  # down for a minute
    s.check(clock.now)
    assert s.state(7) == FAILED
    s.feed_datagram(encode_heartbeat(KEY, 7, 6, 1, 0))  # new incarnation, sequence from 1
    assert s.stats.accepted == 30 and s.stats.restarts == 1
    mean, _, count, last = s.bank.node_stats(s.bank.id_limit - 1)
    assert (count, last) == (2, clock.now)  # only the seeds: the minute-long gap is not in it
    assert mean == 100 * MS
    s.check(clock.now)
    assert [(e.old, e.new) for e in s.pending_events()][-1] == (FAILED, ALIVE)
