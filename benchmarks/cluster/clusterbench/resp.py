"""A minimal RESP (Redis protocol) codec and a pipelining asyncio client connection.

Owns what the benchmark needs to talk to a RESP port itself: encoding a command, an incremental
reply parser, and `RespConnection` (requests are written at once, replies matched to requests in
order, so any number may be in flight). Invariants: the parser consumes only complete replies and
keeps the rest; a reply larger than REPLY_BYTES_MAX or nested deeper than NESTING_MAX is a
protocol error that closes the connection; every waiting request fails when the connection does.
"""

import asyncio
import collections
from typing import Any, cast

from clusterbench.errors import RequestError

REPLY_BYTES_MAX = 64 * 1024 * 1024
NESTING_MAX = 8
IN_FLIGHT_MAX = 1 << 20


class RespError(RequestError):
    """An error reply (`-ERR ...`) from the server; the text is the message."""

    connection_usable = True


class RespProtocolError(RequestError):
    """Bytes that are not RESP: the connection is closed."""


def encode(*parts: bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Incomplete(Exception):
    pass


class RespParser:
    """Incremental parser: `feed(data)` returns every complete reply the bytes so far hold."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        if len(self._buf) > REPLY_BYTES_MAX:
            raise RespProtocolError(f"reply larger than {REPLY_BYTES_MAX} bytes")
        replies: list[Any] = []
        pos = 0
        buf = self._buf
        while pos < len(buf):
            try:
                reply, pos = self._parse(buf, pos, 0)
            except _Incomplete:
                break
            replies.append(reply)
        del buf[:pos]
        return replies

    def _parse(self, buf: bytearray, pos: int, depth: int) -> tuple[Any, int]:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind = buf[pos]
        line = bytes(buf[pos + 1 : end])
        nxt = end + 2
        if kind == 0x2B:  # '+' simple string
            return line, nxt
        if kind == 0x2D:  # '-' error
            return RespError(line.decode("utf-8", "replace")), nxt
        if kind == 0x3A:  # ':' integer
            return int(line), nxt
        if kind == 0x24:  # '$' bulk string
            size = int(line)
            if size < 0:
                return None, nxt
            if len(buf) < nxt + size + 2:
                raise _Incomplete
            return bytes(buf[nxt : nxt + size]), nxt + size + 2
        if kind == 0x2A:  # '*' array
            count = int(line)
            if count < 0:
                return None, nxt
            if depth >= NESTING_MAX:
                raise RespProtocolError(f"replies nested deeper than {NESTING_MAX}")
            items = []
            for _ in range(count):
                item, nxt = self._parse(buf, nxt, depth + 1)
                items.append(item)
            return items, nxt
        raise RespProtocolError(f"unexpected RESP type byte {bytes([kind])!r}")


class RespConnection(asyncio.Protocol):
    """One client connection; `await call(...)` sends a command and returns its reply."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = RespParser()
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._closed_exc: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float = 2.0) -> "RespConnection":
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(cls, host, port), timeout=timeout_s)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except (RespProtocolError, ValueError) as exc:
            self._fail(RespProtocolError(str(exc)))
            return
        for reply in replies:
            if not self._waiting:
                self._fail(RespProtocolError("a reply arrived with no request waiting"))
                return
            fut = self._waiting.popleft()
            if not fut.done():
                if isinstance(reply, RespError):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("connection closed by the server"))

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(str(exc)))
        if self._transport is not None:
            self._transport.close()

    @property
    def is_open(self) -> bool:
        return self._closed_exc is None

    def call_nowait(self, *parts: bytes) -> "asyncio.Future[Any]":
        """Send now; the future gets the reply (or RespError / ConnectionError)."""
        if self._closed_exc is not None or self._transport is None:
            raise ConnectionError(f"connection closed: {self._closed_exc}")
        if len(self._waiting) >= IN_FLIGHT_MAX:
            raise RuntimeError(f"more than {IN_FLIGHT_MAX} requests in flight on one connection")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        self._transport.write(encode(*parts))
        return fut

    async def call(self, *parts: bytes) -> Any:
        return await self.call_nowait(*parts)

    def close(self) -> None:
        self._fail(ConnectionResetError("closed by the client"))
