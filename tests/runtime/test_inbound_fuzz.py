"""The inbound side of TcpTransport fed directly (no sockets): a valid handshake and frames cut
at any points are delivered whole and in order; random bytes, and valid streams with bytes
flipped, cut or inserted, never raise out of data_received: the connection is either closed
and counted, or still waiting for more bytes, and whatever was delivered came from the
handshake's sender to this node. Hypothesis drives the inputs (profiles in tests/conftest.py).
"""

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from haperf._native import codec
from haperf.runtime.transport import HANDSHAKE_MAGIC, TcpTransport, _Inbound, encode_handshake
from tests.runtime.helpers import Collector, every_kind, fields, heartbeat

FRAME_MAX = 1 << 16


class FakeSocketTransport:
    """What _Inbound needs from a socket transport; records whether it was closed."""

    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


@contextlib.contextmanager
def make_node() -> Iterator[tuple[TcpTransport, Collector]]:
    """A fresh node 2 (peers 1 and 3) per example, with a loop that is never run."""
    got = Collector()
    t = TcpTransport(
        2, "127.0.0.1:0", {1: "127.0.0.1:1", 3: "127.0.0.1:3"}, got, frame_bytes_max=FRAME_MAX
    )
    t._loop = loop = asyncio.new_event_loop()  # handshake timers are scheduled, never run
    try:
        yield t, got
    finally:
        loop.close()


def connect(t: TcpTransport) -> tuple[_Inbound, FakeSocketTransport]:
    conn = _Inbound(t)
    fake = FakeSocketTransport()
    conn.connection_made(fake)  # type: ignore[arg-type]
    return conn, fake


def feed(conn: _Inbound, data: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            conn.data_received(data[start:point])
            start = point


VALID = encode_handshake(b"haperf", 1, 2) + codec.encode_many(
    [*every_kind(1, 2), heartbeat(1, 2, 7)]
)
cuts = st.lists(st.integers(0, 1 << 16), max_size=12)


@given(cuts)
def test_valid_stream_cut_anywhere_is_delivered_whole(points: list[int]) -> None:
    with make_node() as (t, got):
        check_valid(t, got, points)


def check_valid(t: TcpTransport, got: Collector, points: list[int]) -> None:
    conn, fake = connect(t)
    feed(conn, VALID, points)
    assert not fake.aborted
    want = [*every_kind(1, 2), heartbeat(1, 2, 7)]
    assert [fields(m) for m in got.messages] == [fields(m) for m in want]
    assert conn.reader is not None and conn.reader.pending_bytes == 0
    conn.connection_lost(None)


@given(st.binary(max_size=300), cuts)
def test_random_bytes_close_or_wait_never_raise(data: bytes, points: list[int]) -> None:
    with make_node() as (t, got):
        check_random(t, got, data, points)


def check_random(t: TcpTransport, got: Collector, data: bytes, points: list[int]) -> None:
    failures = t.stats()["handshake_failures"] + t.stats()["protocol_errors"]
    conn, fake = connect(t)
    feed(conn, data, points)
    assert got.messages == []
    after = t.stats()["handshake_failures"] + t.stats()["protocol_errors"]
    assert fake.aborted == (after == failures + 1)
    if not fake.aborted:  # still waiting: only a prefix of a possible handshake arrived
        assert HANDSHAKE_MAGIC.startswith(data[:4])
        assert len(data) < len(VALID)
    conn.connection_lost(None)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert"]),
            st.integers(0, len(VALID) - 1),
            st.integers(1, 255),
        ),
        min_size=1,
        max_size=4,
    ),
    cuts,
)
def test_mutated_streams_close_or_deliver_only_well_routed_messages(
    edits: list[tuple[str, int, int]], points: list[int]
) -> None:
    with make_node() as (t, got):
        check_mutated(t, got, edits, points)


def check_mutated(
    t: TcpTransport, got: Collector, edits: list[tuple[str, int, int]], points: list[int]
) -> None:
    data = bytearray(VALID)
    for op, where, value in edits:
        pos = where % (len(data) or 1)
        if op == "flip":
            data[pos] ^= value
        elif op == "cut":
            del data[pos:]
        else:
            data[pos:pos] = bytes([value])
        if not data:
            break
    conn, fake = connect(t)
    feed(conn, bytes(data), points)
    assert all(m.frm == 1 and m.to == 2 for m in got.messages)
    if fake.aborted:
        assert t.stats()["handshake_failures"] + t.stats()["protocol_errors"] >= 1
    conn.connection_lost(None)
