"""Shared helpers for the runtime tests: one realistic message of each Raft kind, a message
collector, bounded waiting, and a runner that executes a test coroutine on a chosen loop.

Every wait is bounded (WAIT_S) so a broken transport fails a test instead of hanging it; no
test asserts how long anything took.
"""

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from haperf._native import raftmsg as rm
from haperf._native.raftmsg import ConfState, Entry, Message, SnapshotMeta
from haperf.runtime.loop import LoopKind, new_event_loop
from haperf.runtime.transport import TcpTransport

T = TypeVar("T")
WAIT_S = 15.0
TEST_TIMEOUT_S = 40.0
FAST = {"reconnect_delay_min_ns": 2_000_000, "reconnect_delay_max_ns": 50_000_000}


def run_on(kind: LoopKind, coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run coro_fn() on a new loop of `kind`, bounded by TEST_TIMEOUT_S, then close the loop."""
    loop = new_event_loop(kind)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), timeout=TEST_TIMEOUT_S))
    finally:
        loop.close()


async def until(pred: Callable[[], bool], what: str = "condition") -> None:
    """Poll pred on the loop until it holds (bounded by WAIT_S: then the test fails)."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not pred():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for: {what}") from None


class Collector:
    """on_messages target: keeps every delivered batch."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    def __call__(self, msgs: list[Message]) -> None:
        assert isinstance(msgs, list) and msgs
        self.batches.append(msgs)

    @property
    def messages(self) -> list[Message]:
        return [m for batch in self.batches for m in batch]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def every_kind(frm: int, to: int) -> list[Message]:
    """One message of each of the 14 Raft message types, with the fields that type carries."""
    conf = ConfState(voters=(1, 2, 3), learners=(4,))
    big = bytes(range(256)) * 8  # 2 KiB: decoded as a memoryview (above COPY_SIZE_MAX)
    entries = [Entry(5, 10, b"set x=1"), Entry(5, 11, big), Entry(5, 12, b"\x01", type=1)]
    return [
        Message(rm.MSG_PROP, to=to, frm=frm, entries=[Entry(0, 0, b"cmd")]),
        Message(rm.MSG_APP, to=to, frm=frm, term=5, log_term=4, index=9, commit=8, entries=entries),
        Message(rm.MSG_APP_RESP, to=to, frm=frm, term=5, index=12),
        Message(
            rm.MSG_APP_RESP,
            to=to,
            frm=frm,
            term=5,
            index=9,
            reject=True,
            reject_hint=7,
            hint_term=3,
        ),
        Message(rm.MSG_VOTE, to=to, frm=frm, term=6, log_term=5, index=12),
        Message(rm.MSG_VOTE_RESP, to=to, frm=frm, term=6),
        Message(rm.MSG_PREVOTE, to=to, frm=frm, term=7, log_term=5, index=12),
        Message(rm.MSG_PREVOTE_RESP, to=to, frm=frm, term=7, reject=True),
        Message(
            rm.MSG_HEARTBEAT, to=to, frm=frm, term=5, commit=12, context=(3).to_bytes(8, "big")
        ),
        Message(rm.MSG_HEARTBEAT_RESP, to=to, frm=frm, term=5, context=(3).to_bytes(8, "big")),
        Message(
            rm.MSG_SNAP,
            to=to,
            frm=frm,
            term=5,
            snapshot=SnapshotMeta(100, 5, conf),
            snap_offset=0,
            snap_data=big,
            snap_done=True,
        ),
        Message(rm.MSG_SNAP_RESP, to=to, frm=frm, term=5, index=100, snap_offset=2048),
        Message(rm.MSG_TIMEOUT_NOW, to=to, frm=frm, term=5),
        Message(rm.MSG_READ_INDEX, to=to, frm=frm, entries=[Entry(0, 0, b"ctx-1")]),
        Message(
            rm.MSG_READ_INDEX_RESP,
            to=to,
            frm=frm,
            term=5,
            index=12,
            entries=[Entry(0, 0, b"ctx-1")],
        ),
    ]


def heartbeat(frm: int, to: int, n: int = 0) -> Message:
    return Message(rm.MSG_HEARTBEAT, to=to, frm=frm, term=1, commit=n)


def fields(m: Message) -> tuple[Any, ...]:
    """Every field of a message as plain values (payload buffers as bytes)."""
    snap = m.snapshot
    return (
        m.type,
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        m.commit,
        m.reject,
        m.reject_hint,
        m.hint_term,
        [(e.term, e.index, e.type, bytes(e.data)) for e in m.entries],
        bytes(m.context),
        None
        if snap is None
        else (
            snap.index,
            snap.term,
            snap.conf.voters,
            snap.conf.learners,
            snap.conf.voters_outgoing,
            snap.conf.auto_leave,
        ),
        m.snap_offset,
        bytes(m.snap_data),
        m.snap_done,
    )


async def started(
    node_id: int,
    peers: dict[int, str],
    on_messages: Callable[[list[Message]], None],
    listen: str = "127.0.0.1:0",
    **options: Any,
) -> TcpTransport:
    t = TcpTransport(node_id, listen, peers, on_messages, **{**FAST, **options})
    await t.start()
    return t


async def mesh(n: int, **options: Any) -> tuple[list[TcpTransport], list[Collector]]:
    """n started transports (ids 1..n) that all know each other's addresses."""
    collectors = [Collector() for _ in range(n)]
    nodes = [await started(i + 1, {}, collectors[i], **options) for i in range(n)]
    for a in nodes:
        for b in nodes:
            if a is not b:
                a.set_peer(b.node_id, b.address)
    return nodes, collectors
