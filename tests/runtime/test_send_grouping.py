"""TcpTransport.send without a network: each peer's connection is a recorder, so any mix of
messages (hypothesis) can be checked frame by frame: every message reaches exactly its `to`
peer, in order, in one write per peer per call; unknown destinations are counted, never sent;
the byte bounds hold for the connecting queue and for the socket buffer.
"""

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import codec
from haperf._native import raftmsg as rm
from haperf._native.raftmsg import Entry, Message
from haperf.runtime.transport import TcpTransport, _Outbound
from tests.runtime.helpers import Collector, fields

PEERS = (2, 3, 4)


class Recorder:
    """Stands in for a connected socket transport; `buffered` plays the kernel's backlog."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes.append(b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False


def connected(t: TcpTransport, peer_id: int) -> Recorder:
    peer = t._peers[peer_id]
    proto = _Outbound(peer)
    recorder = Recorder()
    proto.transport = recorder  # type: ignore[assignment]
    peer.proto = proto
    return recorder


def transport(**options: Any) -> TcpTransport:
    return TcpTransport(
        1, "127.0.0.1:0", {p: f"127.0.0.1:{p}" for p in PEERS}, Collector(), **options
    )


def decoded(writes: list[bytes]) -> list[Message]:
    reader = codec.FrameReader()
    return [m for chunk in writes for m in reader.feed(chunk)]


messages = st.lists(
    st.builds(
        lambda to, n, size: Message(
            rm.MSG_APP,
            to=to,
            frm=1,
            term=1,
            index=n,
            entries=[Entry(1, n + 1, b"p" * size)] if size else None,
        ),
        st.sampled_from((*PEERS, 5)),  # 5 is not a peer
        st.integers(0, 1 << 40),
        st.integers(0, 700),
    ),
    max_size=60,
)


@given(st.lists(messages, min_size=1, max_size=4))
def test_every_message_reaches_its_peer_in_order_one_write_per_call(
    calls: list[list[Message]],
) -> None:
    t = transport()
    recorders = {p: connected(t, p) for p in PEERS}
    for call in calls:
        t.send(call)
    for p in PEERS:
        expected = [fields(m) for call in calls for m in call if m.to == p]
        assert [fields(m) for m in decoded(recorders[p].writes)] == expected
        calls_with_p = sum(1 for call in calls if any(m.to == p for m in call))
        assert len(recorders[p].writes) == calls_with_p
        assert t.peer_stats()[p]["frames_sent"] == len(expected)
    unknown = sum(1 for call in calls for m in call if m.to == 5)
    assert t.stats()["dropped_unknown_peer"] == unknown


@given(st.lists(st.integers(1, 2000), min_size=1, max_size=40))
def test_connecting_queue_never_exceeds_its_bound(sizes: list[int]) -> None:
    bound = 8192
    reported: list[int] = []
    t = transport(peer_queue_bytes_max=bound, frame_bytes_max=bound, on_unreachable=reported.append)
    kept: list[Message] = []
    for n, size in enumerate(sizes):
        m = Message(rm.MSG_APP, to=2, frm=1, index=n, entries=[Entry(1, n, b"q" * size)])
        before = t.peer_stats()[2]
        t.send([m])
        after = t.peer_stats()[2]
        assert after["queued_bytes"] <= bound
        if after["dropped"] == before["dropped"]:
            kept.append(m)
    stats = t.peer_stats()[2]
    assert stats["dropped"] == len(sizes) - len(kept) == len(reported)
    assert set(reported) <= {2}
    # When the connection comes up, the queue goes out first, in order, after the handshake.
    recorder = Recorder()
    t._loop = loop = asyncio.new_event_loop()  # on_connected reads the loop's clock
    try:
        t._peers[2].on_connected(_fresh(t, recorder))
    finally:
        loop.close()
    (flushed,) = recorder.writes
    hs_len = len(t.cluster_id) + 28
    assert [fields(m) for m in decoded([flushed[hs_len:]])] == [fields(m) for m in kept]
    assert t.peer_stats()[2]["queued_bytes"] == 0


def _fresh(t: TcpTransport, recorder: Recorder) -> _Outbound:
    proto = _Outbound(t._peers[2])
    proto.transport = recorder  # type: ignore[assignment]
    return proto


@pytest.mark.parametrize("buffered", [0, 1000, 4000])
def test_socket_buffer_bound_drops_what_does_not_fit(buffered: int) -> None:
    bound = 4096
    reported: list[int] = []
    t = transport(peer_queue_bytes_max=bound, frame_bytes_max=bound, on_unreachable=reported.append)
    recorder = connected(t, 2)
    recorder.buffered = buffered
    m = Message(rm.MSG_APP, to=2, frm=1, entries=[Entry(1, 1, b"z" * 1000)])
    size = len(codec.encode(m))
    t.send([m, Message(rm.MSG_HEARTBEAT, to=3, frm=1)])
    fits = buffered + size <= bound
    assert len(recorder.writes) == (1 if fits else 0)
    assert t.peer_stats()[2]["dropped"] == (0 if fits else 1)
    assert reported == ([] if fits else [2])
    assert t.peer_stats()[3]["queued_bytes"] > 0  # peer 3 is not connected: queued


def test_paused_connection_drops_without_encoding() -> None:
    t = transport()
    recorder = connected(t, 2)
    proto = t._peers[2].proto
    assert proto is not None
    proto.pause_writing()
    t.send([Message(rm.MSG_HEARTBEAT, to=2, frm=1)])
    assert recorder.writes == [] and t.peer_stats()[2]["dropped"] == 1
    assert t.peer_stats()[2]["paused"]
    proto.resume_writing()
    t.send(iter([Message(rm.MSG_HEARTBEAT, to=2, frm=1)]))  # any iterable is accepted
    assert len(recorder.writes) == 1
