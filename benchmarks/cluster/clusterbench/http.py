"""A lean asyncio HTTP/1.1 keep-alive client for etcd's JSON gateway (POST, JSON bodies).

Owns `HttpConnection`: one TCP connection, requests written as prebuilt bytes, responses parsed
just enough (status line, Content-Length or chunked body) and matched to requests in order. The
benchmark opens many of them to keep many requests in flight, since etcd's gateway answers the
requests of one connection one at a time. Invariants: a response larger than RESPONSE_BYTES_MAX
or a malformed one closes the connection and fails every waiting request; a non-2xx status
raises HttpStatusError with the body.
"""

import asyncio
import base64
import collections
from typing import Any, cast

import orjson

from clusterbench.errors import RequestError

RESPONSE_BYTES_MAX = 16 * 1024 * 1024
IN_FLIGHT_MAX = 1 << 16


class HttpStatusError(RequestError):
    """The server answered with a non-2xx status."""

    connection_usable = True

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body[:200]!r}")


class HttpProtocolError(RequestError):
    """The bytes received are not an HTTP/1.1 response this client understands."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def post_request(host: str, path: str, body: dict[str, Any]) -> bytes:
    """A complete HTTP/1.1 POST with a JSON body, ready to write (and to write again)."""
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode("ascii")
    return head + payload


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; `await request(raw)` returns the response body."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._closed_exc: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float = 2.0) -> "HttpConnection":
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(cls, host, port), timeout=timeout_s)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("connection closed by the server"))

    @property
    def is_open(self) -> bool:
        return self._closed_exc is None

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(str(exc)))
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        self._fail(ConnectionResetError("closed by the client"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > RESPONSE_BYTES_MAX:
            self._fail(HttpProtocolError(f"response larger than {RESPONSE_BYTES_MAX} bytes"))
            return
        try:
            while self._buf:
                parsed = self._parse_one()
                if parsed is None:
                    break
                status, body = parsed
                if not self._waiting:
                    raise HttpProtocolError("a response arrived with no request waiting")
                fut = self._waiting.popleft()
                if fut.done():
                    continue
                if 200 <= status < 300:
                    fut.set_result(body)
                else:
                    fut.set_exception(HttpStatusError(status, body))
        except (HttpProtocolError, ValueError) as exc:
            self._fail(HttpProtocolError(str(exc)))

    def _parse_one(self) -> tuple[int, bytes] | None:
        buf = self._buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        lines = bytes(buf[:head_end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpProtocolError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        start = head_end + 4
        if chunked:
            return self._parse_chunked(status, start)
        if length is None:
            raise HttpProtocolError("a response with neither Content-Length nor chunked body")
        if len(buf) < start + length:
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        return status, body

    def _parse_chunked(self, status: int, pos: int) -> tuple[int, bytes] | None:
        buf = self._buf
        chunks: list[bytes] = []
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            data_start = line_end + 2
            if size == 0:
                # No trailers are expected: the terminating chunk is followed by one CRLF.
                if len(buf) < data_start + 2:
                    return None
                del buf[: data_start + 2]
                return status, b"".join(chunks)
            if len(buf) < data_start + size + 2:
                return None
            chunks.append(bytes(buf[data_start : data_start + size]))
            pos = data_start + size + 2

    def request_nowait(self, raw: bytes) -> "asyncio.Future[bytes]":
        """Write one prebuilt request; the future gets the response body."""
        if self._closed_exc is not None or self._transport is None:
            raise ConnectionError(f"connection closed: {self._closed_exc}")
        if len(self._waiting) >= IN_FLIGHT_MAX:
            raise RuntimeError(f"more than {IN_FLIGHT_MAX} requests in flight on one connection")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        self._transport.write(raw)
        return fut

    async def request(self, raw: bytes) -> bytes:
        return await self.request_nowait(raw)

    async def post_json(self, host: str, path: str, body: dict[str, Any]) -> Any:
        return orjson.loads(await self.request(post_request(host, path, body)))
