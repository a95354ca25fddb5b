"""haperf.kv.client: KVClient, an asyncio RESP client for haperf's kv service (any Redis too).

Owns the client side: one TCP connection at a time (requests are pipelined on it, replies are
matched in order), redirect following, and the mapping of haperf's error replies to typed errors:

    -MOVED 0 host:port  -> reconnect there and resend (at most redirects_max hops), else
                           RedirectError (a NotLeaderError with .address)
    -TRYAGAIN ...       -> wait and resend (same bound), else RedirectError with address ""
    -UNKNOWN ...        -> CommitUnknownError (the write may or may not have been applied)
    -DROPPED ...        -> ProposalDroppedError (definitely not applied)
    -ERR ... and others -> KVReplyError

Invariants: a redirected or TRYAGAIN request was not applied, so resending it is safe; a write
whose reply is lost (timeout or connection loss after it was sent) raises CommitUnknownError and
is never resent; after a timeout the connection is dropped (a late reply must not be matched to
the next request). Pure asyncio: no haperf node, no threads.
"""

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    KVReplyError,
    ProposalDroppedError,
    ProtocolError,
    RedirectError,
)
from haperf.kv.resp import ErrorReply, ReplyParser, encode_command, encode_commands
from haperf.runtime.address import parse_address

REDIRECTS_MAX = 5
TRYAGAIN_DELAY_NS = 50_000_000
TIMEOUT_NS = 5_000_000_000
# Most requests one pipeline() call may send.
PIPELINE_MAX = 65536

Arg = bytes | str | int
_WRITES = frozenset({b"SET", b"DEL", b"UNLINK", b"INCR", b"INCRBY", b"DECR", b"DECRBY", b"CAS",
                     b"SETNX"})


def _b(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return b"%d" % value


class _Waiter:
    """The future of `count` replies in a row (one request, or a whole pipeline)."""

    __slots__ = ("count", "future", "replies")

    def __init__(self, future: "asyncio.Future[Any]", count: int) -> None:
        self.future = future
        self.count = count
        self.replies: list[object] = []


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = ReplyParser()
        self.waiting: collections.deque[_Waiter] = collections.deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except ProtocolError as err:
            self._fail(err)
            if self.transport is not None:
                self.transport.abort()
            return
        waiting = self.waiting
        for reply in replies:
            if not waiting:
                self._fail(ProtocolError("the server sent a reply nobody asked for"))
                if self.transport is not None:
                    self.transport.abort()
                return
            head = waiting[0]
            if head.count == 1:
                waiting.popleft()
                if not head.future.done():
                    head.future.set_result(reply)
                continue
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                if not head.future.done():
                    head.future.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the kv server closed the connection"))

    def _fail(self, err: BaseException) -> None:
        self.lost = err
        while self.waiting:
            fut = self.waiting.popleft().future
            if not fut.done():
                fut.set_exception(err)

    def send(self, payload: bytes, count: int) -> "asyncio.Future[Any]":
        """Write a request (count 1: the future gives its reply) or a pipeline (the list)."""
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the kv connection is closed")
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiter(future, count))
        self.transport.write(payload)
        return future


class KVClient:
    """Async client (see the module docstring); `async with KVClient("127.0.0.1:6379") as c:`."""

    def __init__(
        self,
        address: str,
        *,
        follow_redirects: bool = True,
        timeout_ns: int = TIMEOUT_NS,
        redirects_max: int = REDIRECTS_MAX,
        tryagain_delay_ns: int = TRYAGAIN_DELAY_NS,
    ) -> None:
        parse_address(address)
        if timeout_ns <= 0 or redirects_max < 0 or tryagain_delay_ns < 0:
            raise ConfigError(
                f"timeout_ns must be > 0, redirects_max and tryagain_delay_ns >= 0 (got "
                f"{timeout_ns}, {redirects_max}, {tryagain_delay_ns})"
            )
        self.address = address
        self.follow_redirects = follow_redirects
        self.timeout_ns = timeout_ns
        self.redirects_max = redirects_max
        self.tryagain_delay_ns = tryagain_delay_ns
        self._proto: _Protocol | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> "KVClient":
        await self._connection()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        async with self._lock:
            proto = self._proto
            if proto is not None and proto.lost is None:
                return proto
            host, port = parse_address(self.address)
            loop = asyncio.get_running_loop()
            _, fresh = await asyncio.wait_for(
                loop.create_connection(_Protocol, host, port), self.timeout_ns / 1e9
            )
            self._proto = fresh
            return fresh

    def _drop(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None
        if proto.transport is not None:
            proto.transport.abort()

    async def execute(self, *args: Arg) -> object:
        """Send one request; return its reply, following redirects (see the module docstring)."""
        if not args:
            raise ConfigError("execute needs a command name")
        payload = encode_command([_b(a) for a in args])
        is_write = _b(args[0]).upper() in _WRITES
        hops = 0
        while True:
            proto = await self._connection()
            try:
                fut = proto.send(payload, 1)
            except ConnectionResetError:
                # Not sent: the connection died since the last request. Reconnect (bounded).
                self._drop(proto)
                if hops >= self.redirects_max:
                    raise
                hops += 1
                continue
            try:
                reply = await asyncio.wait_for(fut, self.timeout_ns / 1e9)
            except (TimeoutError, OSError, ProtocolError) as err:
                self._drop(proto)
                if is_write:
                    raise CommitUnknownError(
                        f"no reply to {_b(args[0]).decode(errors='replace')} from "
                        f"{self.address} ({type(err).__name__}: {err}); it may have been "
                        "applied: read the key to find out"
                    ) from err
                raise
            if type(reply) is not ErrorReply:
                return reply
            message = reply.message
            code = message.split(" ", 1)[0]
            if code == "MOVED":
                address = message.rsplit(" ", 1)[-1]
                if not self.follow_redirects or hops >= self.redirects_max:
                    raise RedirectError(address)
                hops += 1
                if address != self.address:
                    await self.close()
                    self.address = address
                continue
            if code == "TRYAGAIN":
                if not self.follow_redirects or hops >= self.redirects_max:
                    raise RedirectError("")
                await asyncio.sleep(self.tryagain_delay_ns * (1 << hops) / 1e9)
                hops += 1
                continue
            if code == "UNKNOWN":
                raise CommitUnknownError(message)
            if code == "DROPPED":
                raise ProposalDroppedError(message)
            raise KVReplyError(message)

    async def pipeline(self, requests: Sequence[Sequence[Arg]]) -> list[object]:
        """Send many requests in one write; return the raw replies (ErrorReply for errors).

        No redirects are followed (benchmarks and bulk loads); a lost connection raises the
        transport's error for every request.
        """
        if len(requests) > PIPELINE_MAX:
            raise ConfigError(f"a pipeline holds at most {PIPELINE_MAX} requests")
        if not requests:
            return []
        proto = await self._connection()
        count = len(requests)
        future = proto.send(encode_commands(requests), count)
        try:
            replies = await asyncio.wait_for(future, self.timeout_ns / 1e9)
        except TimeoutError:
            self._drop(proto)
            raise
        return [replies] if count == 1 else list(replies)

    # ------------------------------------------------------------------ typed commands

    async def get(self, key: Arg) -> bytes | None:
        reply = await self.execute(b"GET", key)
        assert reply is None or isinstance(reply, bytes)
        return reply

    async def set(
        self,
        key: Arg,
        value: Arg,
        *,
        nx: bool = False,
        xx: bool = False,
        ttl_ns: int | None = None,
        keep_ttl: bool = False,
    ) -> bool:
        """SET; True when written, False when NX/XX prevented it. ttl_ns rounds up to ms."""
        args: list[Arg] = [b"SET", key, value]
        if nx:
            args.append(b"NX")
        if xx:
            args.append(b"XX")
        if ttl_ns is not None:
            args += [b"PX", max(1, -(-ttl_ns // 1_000_000))]
        if keep_ttl:
            args.append(b"KEEPTTL")
        return await self.execute(*args) == "OK"

    async def delete(self, *keys: Arg) -> int:
        return _int_reply(await self.execute(b"DEL", *keys))

    async def cas(self, key: Arg, expected: Arg, new: Arg) -> bool:
        """Compare-and-set: write `new` only if the value is `expected`; True if it did."""
        return _int_reply(await self.execute(b"CAS", key, expected, new)) == 1

    async def incr(self, key: Arg, delta: int = 1) -> int:
        return _int_reply(await self.execute(b"INCRBY", key, delta))

    async def exists(self, *keys: Arg) -> int:
        return _int_reply(await self.execute(b"EXISTS", *keys))

    async def mget(self, *keys: Arg) -> list[bytes | None]:
        reply = await self.execute(b"MGET", *keys)
        assert isinstance(reply, list)
        return reply

    async def ping(self) -> bool:
        return await self.execute(b"PING") == "PONG"

    async def leader(self) -> tuple[int, str | None]:
        """(leader id, its RESP address) as the server knows them (0, None when unknown)."""
        reply = await self.execute(b"LEADER")
        assert isinstance(reply, list)
        address = reply[1].decode() if isinstance(reply[1], bytes) else None
        return int(reply[0]), address

    async def info(self, section: str | None = None) -> dict[str, str]:
        reply = await self.execute(b"INFO", *([section] if section else []))
        assert isinstance(reply, bytes)
        out: dict[str, str] = {}
        for line in reply.decode().splitlines():
            if line and not line.startswith("#") and ":" in line:
                name, _, value = line.partition(":")
                out[name] = value
        return out


def _int_reply(reply: Any) -> int:
    if not isinstance(reply, int):
        raise ProtocolError(f"expected an integer reply, got {reply!r}")
    return reply
