"""haperf.kv.resp: RESP2 wire format for the kv server and client.

Owns the public RESP names: the native RequestParser / ReplyParser / encode_replies /
encode_commands / ErrorReply (haperf._native.resp, used by the server and the client), and
pure-Python twins with the same behaviour (PyRequestParser, PyReplyParser, py_encode_replies):
the reference the native code is tested against, and the baseline of its benchmark rows.

Invariants: both request parsers accept exactly the same byte streams and give the same requests
and the same errors at the same point; both reply parsers bound every length and nesting depth
and give up the stream (a ProtocolError) on anything that is not RESP2 (or RESP3's null).
"""

from haperf._native.resp import (
    ARGS_MAX,
    BULK_BYTES_MAX,
    INLINE_BYTES_MAX,
    REPLY_DEPTH_MAX,
    REQUEST_BYTES_MAX,
    ErrorReply,
    ReplyParser,
    RequestParser,
    encode_command,
    encode_commands,
    encode_replies,
    encode_reply,
)
from haperf.errors import ProtocolError

__all__ = [
    "ARGS_MAX",
    "BULK_BYTES_MAX",
    "INLINE_BYTES_MAX",
    "REPLY_DEPTH_MAX",
    "REQUEST_BYTES_MAX",
    "ErrorReply",
    "PyReplyParser",
    "PyRequestParser",
    "ReplyParser",
    "RequestParser",
    "encode_command",
    "encode_commands",
    "encode_replies",
    "encode_reply",
    "py_encode_replies",
]

NUMBER_DIGITS_MAX = 18
NUMBER_LINE_MAX = 20


def _number(line: bytes) -> int | None:
    digits = line[1:] if line[:1] == b"-" else line
    if not digits or len(digits) > NUMBER_DIGITS_MAX or not digits.isdigit():
        return None
    return int(line)


class _Incomplete(Exception):
    """Internal: the request is not complete yet; `need` bytes from its start at least."""

    def __init__(self, need: int) -> None:
        self.need = need


class PyRequestParser:
    """Pure-Python twin of haperf._native.resp.RequestParser (same bounds, same results)."""

    def __init__(
        self,
        args_max: int = ARGS_MAX,
        bulk_bytes_max: int = BULK_BYTES_MAX,
        request_bytes_max: int = REQUEST_BYTES_MAX,
        inline_bytes_max: int = INLINE_BYTES_MAX,
    ) -> None:
        if args_max < 1 or bulk_bytes_max < 0 or request_bytes_max < 16 or inline_bytes_max < 16:
            raise ValueError("RequestParser bounds must be positive")
        self.args_max = args_max
        self.bulk_bytes_max = bulk_bytes_max
        self.request_bytes_max = request_bytes_max
        self.inline_bytes_max = inline_bytes_max
        self.error: ProtocolError | None = None
        self._buf = b""
        self._need = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def _line(self, buf: bytes, start: int, origin: int, what: str) -> int:
        """Index of the CRLF ending a count/length line starting at `start`."""
        window = buf[start : start + NUMBER_LINE_MAX + 2]
        cr = window.find(b"\r")
        if cr == -1 or cr + 1 >= len(window):
            if len(buf) - start >= NUMBER_LINE_MAX + 2:
                raise ProtocolError(f"Protocol error: invalid {what} length (no CRLF after it)")
            raise _Incomplete(len(buf) - origin + 1)
        if window[cr + 1] != 0x0A:
            raise ProtocolError(f"Protocol error: invalid {what} length (no CRLF after it)")
        return start + cr

    def _parse_one(self, buf: bytes, pos: int, out: list[list[bytes]]) -> int:
        if buf[pos] != 0x2A:  # '*'
            return self._parse_inline(buf, pos, out)
        eol = self._line(buf, pos + 1, pos, "multibulk")
        count = _number(buf[pos + 1 : eol])
        if count is None:
            raise ProtocolError("Protocol error: invalid multibulk length")
        if count > self.args_max:
            raise ProtocolError(
                f"Protocol error: a request of {count} arguments is above args_max="
                f"{self.args_max}"
            )
        cur = eol + 2
        if count <= 0:
            return cur
        args = []
        total = cur - pos
        n = len(buf)
        for _ in range(count):
            if cur >= n:
                raise _Incomplete(n - pos + 1)
            if buf[cur] != 0x24:  # '$'
                ch = buf[cur]
                shown = repr(chr(ch)) if 32 <= ch < 127 else f"byte {ch:#04x}"
                raise ProtocolError(f"Protocol error: expected '$', got {shown}")
            eol = self._line(buf, cur + 1, pos, "bulk")
            length = _number(buf[cur + 1 : eol])
            if length is None or length < 0:
                raise ProtocolError("Protocol error: invalid bulk length")
            if length > self.bulk_bytes_max:
                raise ProtocolError(
                    f"Protocol error: a bulk string of {length} bytes is above bulk_bytes_max="
                    f"{self.bulk_bytes_max}"
                )
            start = eol + 2
            total += start - cur + length + 2
            if total > self.request_bytes_max:
                raise ProtocolError(
                    f"Protocol error: request larger than request_bytes_max="
                    f"{self.request_bytes_max}"
                )
            end = start + length
            if end + 2 > n:
                raise _Incomplete(end + 2 - pos)
            if buf[end : end + 2] != b"\r\n":
                raise ProtocolError("Protocol error: bulk string not followed by CRLF")
            args.append(buf[start:end])
            cur = end + 2
        out.append(args)
        return cur

    def _parse_inline(self, buf: bytes, pos: int, out: list[list[bytes]]) -> int:
        nl = buf.find(b"\n", pos, pos + self.inline_bytes_max)
        if nl == -1:
            if len(buf) - pos >= self.inline_bytes_max:
                raise ProtocolError(
                    f"Protocol error: too big inline request (no newline in "
                    f"{self.inline_bytes_max} bytes)"
                )
            raise _Incomplete(len(buf) - pos + 1)
        line = buf[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        args = [a for a in line.replace(b"\t", b" ").split(b" ") if a]
        if len(args) > self.args_max:
            raise ProtocolError("Protocol error: too many arguments in inline request")
        if args:
            out.append(args)
        return nl + 1

    def feed(self, data: bytes) -> list[list[bytes]]:
        if self.error is not None:
            raise self.error
        out: list[list[bytes]] = []
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        if self._buf and len(buf) < self._need:
            self._buf = buf
            return out
        pos = 0
        n = len(buf)
        try:
            while pos < n:
                pos = self._parse_one(buf, pos, out)
        except _Incomplete as inc:
            self._need = inc.need
        except ProtocolError as err:
            self.error = err
            if out:
                return out
            raise
        self._buf = buf[pos:]
        return out


def _py_encode(v: object, parts: list[bytes], depth: int, resp3: bool) -> None:
    if v is None:
        parts.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif isinstance(v, bytes | bytearray | memoryview):
        raw = bytes(v)
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    elif isinstance(v, int):
        if -(1 << 63) <= v < 1 << 63:
            parts.append(b":%d\r\n" % v)
        else:
            raw = b"%d" % v
            parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    elif isinstance(v, str):
        raw = v.encode()
        if b"\r" in raw or b"\n" in raw:
            raise ValueError(f"a RESP simple string cannot hold CR or LF: {v!r}")
        parts.append(b"+" + raw + b"\r\n")
    elif isinstance(v, ErrorReply):
        parts.append(b"-" + v.message.encode() + b"\r\n")
    elif isinstance(v, list | tuple):
        if depth >= REPLY_DEPTH_MAX:
            raise ValueError(f"RESP reply nested deeper than {REPLY_DEPTH_MAX} arrays")
        parts.append(b"*%d\r\n" % len(v))
        for item in v:
            _py_encode(item, parts, depth + 1, resp3)
    elif isinstance(v, dict):
        if depth >= REPLY_DEPTH_MAX:
            raise ValueError(f"RESP reply nested deeper than {REPLY_DEPTH_MAX} arrays")
        parts.append(b"%%%d\r\n" % len(v) if resp3 else b"*%d\r\n" % (2 * len(v)))
        for key, item in v.items():
            _py_encode(key, parts, depth + 1, resp3)
            _py_encode(item, parts, depth + 1, resp3)
    else:
        raise TypeError(f"cannot encode a {type(v).__name__} as a RESP reply")


def py_encode_replies(values: list[object], resp3: bool = False) -> bytes:
    """Pure-Python twin of encode_replies (the reference and the benchmark baseline)."""
    parts: list[bytes] = []
    for v in values:
        _py_encode(v, parts, 0, resp3)
    return b"".join(parts)


# ------------------------------------------------------------------ replies (client side)

# Bounds on what a client accepts from a server.
REPLY_BULK_BYTES_MAX = 512 * 1024 * 1024
REPLY_ARRAY_MAX = 1 << 24
REPLY_LINE_BYTES_MAX = 64 * 1024

_MORE = object()


class PyReplyParser:
    """Pure-Python twin of the native ReplyParser: feed(bytes) -> complete replies, in order.

    + simple string -> str, - error -> ErrorReply, : integer -> int, $ bulk -> bytes (None for
    $-1), * array -> list (None for *-1). Anything else raises ProtocolError (stream lost).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def _read_line(self) -> bytes | object:
        # The same rule as the native parser: the first CR after the type byte must be
        # followed by LF, within REPLY_LINE_BYTES_MAX.
        buf = self._buf
        start = self._pos + 1
        cr = buf.find(b"\r", start, start + REPLY_LINE_BYTES_MAX + 2)
        if cr == -1:
            if len(buf) - start >= REPLY_LINE_BYTES_MAX + 2:
                raise ProtocolError("RESP reply line too long or without CRLF")
            return _MORE
        if cr + 1 >= len(buf):
            return _MORE
        if buf[cr + 1] != 0x0A:
            raise ProtocolError("RESP reply line too long or without CRLF")
        line = bytes(buf[self._pos : cr])
        self._pos = cr + 2
        return line

    def _value(self, depth: int) -> object:
        if self._pos >= len(self._buf):
            return _MORE
        line = self._read_line()
        if line is _MORE:
            return _MORE
        assert isinstance(line, bytes)
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return ErrorReply(rest.decode("utf-8", "replace"))
        if kind == b"_":
            if rest:
                raise ProtocolError("bad RESP3 null reply")
            return None
        if kind == b":":
            number = _number(rest) if len(rest) <= NUMBER_DIGITS_MAX + 1 else None
            if number is None:
                try:
                    return int(rest)
                except ValueError as err:
                    raise ProtocolError(f"bad RESP integer reply {rest!r}") from err
            return number
        if kind == b"$":
            length = _number(rest)
            if length is None or length < -1 or length > REPLY_BULK_BYTES_MAX:
                raise ProtocolError(f"bad RESP bulk length {rest!r}")
            if length == -1:
                return None
            end = self._pos + length
            if end + 2 > len(self._buf):
                return _MORE
            if self._buf[end : end + 2] != b"\r\n":
                raise ProtocolError("RESP bulk reply not followed by CRLF")
            value = bytes(self._buf[self._pos : end])
            self._pos = end + 2
            return value
        if kind == b"*":
            count = _number(rest)
            if count is None or count < -1 or count > REPLY_ARRAY_MAX:
                raise ProtocolError(f"bad RESP array length {rest!r}")
            if count == -1:
                return None
            if depth >= REPLY_DEPTH_MAX:
                raise ProtocolError("RESP reply nested too deep")
            items = []
            for _ in range(count):
                item = self._value(depth + 1)
                if item is _MORE:
                    return _MORE
                items.append(item)
            return items
        raise ProtocolError(f"not a RESP2 reply: starts with {line[:16]!r}")

    def feed(self, data: bytes) -> list[object]:
        self._buf += data
        out: list[object] = []
        while self._pos < len(self._buf):
            start = self._pos
            value = self._value(0)
            if value is _MORE:
                self._pos = start
                break
            out.append(value)
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return out
