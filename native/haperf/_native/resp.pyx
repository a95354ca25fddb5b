"""haperf._native.resp: RESP2 request parser and reply/request encoders (see resp.pxd).

Owns the byte-level RESP2 work of the kv server and client:
- RequestParser.feed(data) -> list of requests (each a list of bytes arguments);
- encode_replies(values) / encode_reply(value) -> bytes: None is a null bulk string, bytes a
  bulk string, int (and bool) an integer, str a simple string, ErrorReply an error, list/tuple an
  array (nested up to RESP_REPLY_DEPTH_MAX), dict a flat array of key, value pairs; with
  resp3=True (a client that sent HELLO 3) None is RESP3's null `_` and dict a map `%`: the only
  RESP3 types the kv commands need, so one encoder serves both protocol versions;
- encode_commands(requests) / encode_command(args) -> bytes: arrays of bulk strings from bytes,
  str (UTF-8) or int arguments;
- ReplyParser.feed(data) -> list of replies (the client side): + str, - ErrorReply, : int,
  $ bytes or None, * list or None, and RESP3's _ null.

Invariants: no input can make the parser read out of bounds or allocate more than its bounds
allow; once `error` is set the stream is given up (the caller answers with the error and closes
the connection). Inline commands are split on spaces and tabs (no quoting), as a convenience
for telnet; every real client sends arrays.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_Check
from cpython.unicode cimport PyUnicode_AsUTF8String
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy

from haperf.errors import ProtocolError

ARGS_MAX = RESP_ARGS_MAX
BULK_BYTES_MAX = RESP_BULK_BYTES_MAX
REQUEST_BYTES_MAX = RESP_REQUEST_BYTES_MAX
INLINE_BYTES_MAX = RESP_INLINE_BYTES_MAX
REPLY_DEPTH_MAX = RESP_REPLY_DEPTH_MAX


@cython.final
cdef class ErrorReply:
    def __init__(self, str message):
        if "\r" in message or "\n" in message:
            message = message.replace("\r", " ").replace("\n", " ")
        self.message = message

    def __repr__(self):
        return f"ErrorReply({self.message!r})"

    def __eq__(self, other):
        return isinstance(other, ErrorReply) and (<ErrorReply>other).message == self.message

    def __hash__(self):
        return hash(self.message)


cdef inline Py_ssize_t _find_crlf(const char* p, Py_ssize_t start, Py_ssize_t n,
                                  Py_ssize_t limit) noexcept:
    """Index of the CR of the first CRLF at or after start (within limit bytes), -1 if none
    yet, -2 if there is no CRLF within the limit although enough bytes are there."""
    cdef Py_ssize_t end = start + limit + 2
    cdef Py_ssize_t i
    if end > n:
        end = n
    i = start
    while i + 1 < end:
        if p[i] == c'\r':
            if p[i + 1] == c'\n':
                return i
            return -2
        i += 1
    if n - start >= limit + 2:
        return -2
    return -1


cdef inline long long _number(const char* p, Py_ssize_t start, Py_ssize_t end,
                              bint* ok) noexcept:
    """Parse a signed decimal in p[start:end]; ok=False for anything else."""
    cdef long long v = 0
    cdef bint neg = False
    cdef Py_ssize_t i = start
    ok[0] = False
    if i < end and p[i] == c'-':
        neg = True
        i += 1
    if i >= end or end - i > RESP_NUMBER_DIGITS_MAX:
        return 0
    while i < end:
        if p[i] < c'0' or p[i] > c'9':
            return 0
        v = v * 10 + (p[i] - c'0')
        i += 1
    ok[0] = True
    return -v if neg else v


cdef str _show(char ch):
    if 32 <= ch < 127:
        return repr(chr(ch))
    return f"byte {<unsigned char>ch:#04x}"


@cython.final
cdef class RequestParser:
    def __init__(self, Py_ssize_t args_max=RESP_ARGS_MAX,
                 Py_ssize_t bulk_bytes_max=RESP_BULK_BYTES_MAX,
                 Py_ssize_t request_bytes_max=RESP_REQUEST_BYTES_MAX,
                 Py_ssize_t inline_bytes_max=RESP_INLINE_BYTES_MAX):
        if args_max < 1 or bulk_bytes_max < 0 or request_bytes_max < 16 or inline_bytes_max < 16:
            raise ValueError(
                f"RequestParser bounds must be positive (args_max={args_max}, bulk_bytes_max="
                f"{bulk_bytes_max}, request_bytes_max={request_bytes_max}, inline_bytes_max="
                f"{inline_bytes_max})"
            )
        self.args_max = args_max
        self.bulk_bytes_max = bulk_bytes_max
        self.request_bytes_max = request_bytes_max
        self.inline_bytes_max = inline_bytes_max
        self.error = None
        self._chunks = []
        self._pending = 0
        self._need = 0

    @property
    def pending_bytes(self):
        """Bytes of an incomplete request held until the rest arrives."""
        return self._pending

    cdef Py_ssize_t _parse_one(self, const char* p, Py_ssize_t n, Py_ssize_t pos,
                               list out) except -2:
        """Parse one request at p[pos:n]: its end (request appended to out, or skipped when
        empty), or -1 when it is incomplete (self._need = bytes it needs from pos at least)."""
        cdef Py_ssize_t eol, cur, i, start, end, count, length, total
        cdef bint ok
        cdef list args
        cdef const char* q
        cdef const char* line
        if p[pos] != c'*':
            return self._parse_inline(p, n, pos, out)
        eol = _find_crlf(p, pos + 1, n, RESP_NUMBER_LINE_MAX)
        if eol == -1:
            self._need = n - pos + 1
            return -1
        if eol == -2:
            raise ProtocolError("Protocol error: invalid multibulk length (no CRLF after it)")
        count = _number(p, pos + 1, eol, &ok)
        if not ok:
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
        for i in range(count):
            if cur >= n:
                self._need = n - pos + 1
                return -1
            if p[cur] != c'$':
                raise ProtocolError(f"Protocol error: expected '$', got {_show(p[cur])}")
            eol = _find_crlf(p, cur + 1, n, RESP_NUMBER_LINE_MAX)
            if eol == -1:
                self._need = n - pos + 1
                return -1
            if eol == -2:
                raise ProtocolError("Protocol error: invalid bulk length (no CRLF after it)")
            length = _number(p, cur + 1, eol, &ok)
            if not ok or length < 0:
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
                self._need = end + 2 - pos
                return -1
            if p[end] != c'\r' or p[end + 1] != c'\n':
                raise ProtocolError("Protocol error: bulk string not followed by CRLF")
            args.append(PyBytes_FromStringAndSize(p + start, length))
            cur = end + 2
        out.append(args)
        return cur

    cdef Py_ssize_t _parse_inline(self, const char* p, Py_ssize_t n, Py_ssize_t pos,
                                  list out) except -2:
        cdef Py_ssize_t limit = n - pos
        cdef const char* nl
        cdef Py_ssize_t end, stop, i, j
        cdef list args
        if limit > self.inline_bytes_max:
            limit = self.inline_bytes_max
        nl = <const char*>memchr(p + pos, c'\n', <size_t>limit)
        if nl == NULL:
            if n - pos >= self.inline_bytes_max:
                raise ProtocolError(
                    f"Protocol error: too big inline request (no newline in "
                    f"{self.inline_bytes_max} bytes)"
                )
            self._need = n - pos + 1
            return -1
        end = nl - p
        stop = end
        if stop > pos and p[stop - 1] == c'\r':
            stop -= 1
        args = []
        i = pos
        while i < stop:
            while i < stop and (p[i] == c' ' or p[i] == c'\t'):
                i += 1
            j = i
            while j < stop and p[j] != c' ' and p[j] != c'\t':
                j += 1
            if j > i:
                if len(args) >= self.args_max:
                    raise ProtocolError("Protocol error: too many arguments in inline request")
                args.append(PyBytes_FromStringAndSize(p + i, j - i))
            i = j
        if args:
            out.append(args)
        return end + 1

    def feed(self, data):
        """Add received bytes; return the requests they complete, in order.

        On bytes that break the stream, `error` is set to a ProtocolError: it is raised here
        when no request was completed before it in this call, otherwise the requests before it
        are returned and the error is raised by the next feed (check `error` after each call).
        """
        cdef list out = []
        cdef object buf
        cdef Py_ssize_t n, pos, r
        cdef const char* p
        if self.error is not None:
            raise self.error
        if type(data) is not bytes:
            data = bytes(data)
        if self._pending:
            self._chunks.append(data)
            self._pending += PyBytes_GET_SIZE(data)
            if self._pending < self._need:
                return out
            buf = b"".join(self._chunks)
            self._chunks = []
            self._pending = 0
        else:
            buf = data
        p = PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        pos = 0
        try:
            while pos < n:
                r = self._parse_one(p, n, pos, out)
                if r < 0:
                    break
                pos = r
        except ProtocolError as err:
            self.error = err
            if out:
                return out
            raise
        if pos < n:
            self._chunks = [buf[pos:] if pos else buf]
            self._pending = n - pos
        return out


# ---------------------------------------------------------------- replies (client side)


cdef inline Py_ssize_t _find_line_end(const char* p, Py_ssize_t start, Py_ssize_t n) noexcept:
    """Index of the CR of the CRLF ending the line at start, -1 if not there yet, -2 if the
    line is longer than RESP_REPLY_LINE_BYTES_MAX or has a lone CR."""
    cdef Py_ssize_t limit = n - start
    cdef const char* cr
    if limit > RESP_REPLY_LINE_BYTES_MAX + 2:
        limit = RESP_REPLY_LINE_BYTES_MAX + 2
    cr = <const char*>memchr(p + start, c'\r', <size_t>limit)
    if cr == NULL:
        return -2 if limit >= RESP_REPLY_LINE_BYTES_MAX + 2 else -1
    if cr - p + 1 >= n:
        return -1
    if cr[1] != c'\n':
        return -2
    return cr - p


@cython.final
cdef class ReplyParser:
    def __init__(self):
        self.error = None
        self._chunks = []
        self._pending = 0
        self._need = 0
        self._value = None

    @property
    def pending_bytes(self):
        return self._pending

    cdef Py_ssize_t _reply(self, const char* p, Py_ssize_t n, Py_ssize_t pos, int depth) except -2:
        """Parse one reply at p[pos:]: its end (value in self._value) or -1 if incomplete."""
        cdef Py_ssize_t eol, end, i, r
        cdef long long count, length
        cdef bint ok
        cdef char kind
        cdef list items
        if pos >= n:
            return -1
        eol = _find_line_end(p, pos + 1, n)
        if eol == -1:
            return -1
        if eol == -2:
            raise ProtocolError("RESP reply line too long or without CRLF")
        kind = p[pos]
        if kind == c'+':
            self._value = p[pos + 1:eol].decode("utf-8", "replace")
            return eol + 2
        if kind == c'-':
            self._value = ErrorReply(p[pos + 1:eol].decode("utf-8", "replace"))
            return eol + 2
        if kind == c':':
            length = _number(p, pos + 1, eol, &ok)
            if ok:
                self._value = length
            else:
                try:
                    self._value = int(p[pos + 1:eol])
                except ValueError:
                    raise ProtocolError(f"bad RESP integer reply {p[pos + 1:eol]!r}") from None
            return eol + 2
        if kind == c'_':
            if eol != pos + 1:
                raise ProtocolError("bad RESP3 null reply")
            self._value = None
            return eol + 2
        if kind == c'$':
            length = _number(p, pos + 1, eol, &ok)
            if not ok or length < -1 or length > RESP_REPLY_BULK_BYTES_MAX:
                raise ProtocolError(f"bad RESP bulk length {p[pos + 1:eol]!r}")
            if length == -1:
                self._value = None
                return eol + 2
            end = eol + 2 + length
            if end + 2 > n:
                self._need = end + 2
                return -1
            if p[end] != c'\r' or p[end + 1] != c'\n':
                raise ProtocolError("RESP bulk reply not followed by CRLF")
            self._value = PyBytes_FromStringAndSize(p + eol + 2, length)
            return end + 2
        if kind == c'*':
            count = _number(p, pos + 1, eol, &ok)
            if not ok or count < -1 or count > RESP_REPLY_ARRAY_MAX:
                raise ProtocolError(f"bad RESP array length {p[pos + 1:eol]!r}")
            if count == -1:
                self._value = None
                return eol + 2
            if depth >= RESP_REPLY_DEPTH_MAX:
                raise ProtocolError("RESP reply nested too deep")
            items = []
            r = eol + 2
            for i in range(count):
                r = self._reply(p, n, r, depth + 1)
                if r < 0:
                    return -1
                items.append(self._value)
            self._value = items
            return r
        raise ProtocolError(f"not a RESP2 reply: starts with {p[pos:pos + 16]!r}")

    def feed(self, data):
        """Add received bytes; return the replies they complete, in order (ProtocolError: the
        stream is lost, close the connection)."""
        cdef list out = []
        cdef object buf
        cdef Py_ssize_t n, pos, r
        cdef const char* p
        if self.error is not None:
            raise self.error
        if type(data) is not bytes:
            data = bytes(data)
        if self._pending:
            self._chunks.append(data)
            self._pending += PyBytes_GET_SIZE(data)
            if self._pending < self._need:
                return out
            buf = b"".join(self._chunks)
            self._chunks = []
            self._pending = 0
        else:
            buf = data
        p = PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        pos = 0
        self._need = 0
        try:
            while pos < n:
                r = self._reply(p, n, pos, 0)
                if r < 0:
                    break
                out.append(self._value)
                pos = r
        except ProtocolError as err:
            self.error = err
            raise
        finally:
            self._value = None
        if pos < n:
            self._chunks = [buf[pos:] if pos else buf]
            self._pending = n - pos
            # _need was set relative to buf; make it relative to the kept bytes (at least +1).
            self._need = self._need - pos if self._need > n else n - pos + 1
        return out


# ---------------------------------------------------------------- encoding

cdef struct _Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _reserve(_Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef char* q
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2
    if cap < b.n + extra:
        cap = b.n + extra + 64
    q = <char*>realloc(b.p, <size_t>cap)
    if q == NULL:
        raise MemoryError("RESP encoder: out of memory")
    b.p = q
    b.cap = cap
    return 0


cdef inline int _put(_Buf* b, const char* s, Py_ssize_t k) except -1:
    _reserve(b, k)
    memcpy(b.p + b.n, s, <size_t>k)
    b.n += k
    return 0


cdef int _put_line(_Buf* b, char prefix, long long v) except -1:
    """prefix, decimal v, CRLF."""
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned long long u
    cdef bint neg = v < 0
    u = <unsigned long long>(-(v + 1)) + 1 if neg else <unsigned long long>v
    i -= 1
    tmp[i] = c'\n'
    i -= 1
    tmp[i] = c'\r'
    if u == 0:
        i -= 1
        tmp[i] = c'0'
    while u:
        i -= 1
        tmp[i] = <char>(c'0' + u % 10)
        u //= 10
    if neg:
        i -= 1
        tmp[i] = c'-'
    i -= 1
    tmp[i] = prefix
    return _put(b, tmp + i, 24 - i)


cdef int _put_bulk(_Buf* b, const char* s, Py_ssize_t k) except -1:
    _put_line(b, c'$', k)
    _reserve(b, k + 2)
    memcpy(b.p + b.n, s, <size_t>k)
    b.n += k
    b.p[b.n] = c'\r'
    b.p[b.n + 1] = c'\n'
    b.n += 2
    return 0


cdef int _put_simple(_Buf* b, char prefix, str text) except -1:
    cdef bytes raw = PyUnicode_AsUTF8String(text)
    if b"\r" in raw or b"\n" in raw:
        raise ValueError(f"a RESP simple string cannot hold CR or LF: {text!r}")
    _put(b, &prefix, 1)
    _put(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    _put(b, b"\r\n", 2)
    return 0


cdef int _encode(_Buf* b, object v, int depth, bint resp3) except -1:
    cdef bytes raw
    cdef object item, key
    if v is None:
        if resp3:
            return _put(b, b"_\r\n", 3)
        return _put(b, b"$-1\r\n", 5)
    if type(v) is bytes:
        return _put_bulk(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
    if PyLong_Check(v):
        if -0x7FFFFFFFFFFFFFFF - 1 <= v <= 0x7FFFFFFFFFFFFFFF:
            return _put_line(b, c':', <long long>v)
        raw = str(int(v)).encode()
        return _put_bulk(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    if type(v) is str:
        return _put_simple(b, c'+', <str>v)
    if type(v) is ErrorReply:
        return _put_simple(b, c'-', (<ErrorReply>v).message)
    if type(v) is list or type(v) is tuple:
        if depth >= RESP_REPLY_DEPTH_MAX:
            raise ValueError(f"RESP reply nested deeper than {RESP_REPLY_DEPTH_MAX} arrays")
        _put_line(b, c'*', len(v))
        for item in v:
            _encode(b, item, depth + 1, resp3)
        return 0
    if type(v) is dict:
        if depth >= RESP_REPLY_DEPTH_MAX:
            raise ValueError(f"RESP reply nested deeper than {RESP_REPLY_DEPTH_MAX} arrays")
        # RESP3 map; RESP2 has none, so a flat array of key, value, key, value...
        if resp3:
            _put_line(b, c'%', len(v))
        else:
            _put_line(b, c'*', 2 * len(v))
        for key, item in (<dict>v).items():
            _encode(b, key, depth + 1, resp3)
            _encode(b, item, depth + 1, resp3)
        return 0
    if isinstance(v, (bytearray, memoryview)):
        raw = bytes(v)
        return _put_bulk(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    if isinstance(v, str):
        return _put_simple(b, c'+', str(v))
    raise TypeError(f"cannot encode a {type(v).__name__} as a RESP reply")


cdef bytes _finish(_Buf* b):
    try:
        return PyBytes_FromStringAndSize(b.p, b.n)
    finally:
        free(b.p)
        b.p = NULL


cdef int _init(_Buf* b, Py_ssize_t cap) except -1:
    b.p = <char*>malloc(<size_t>cap)
    if b.p == NULL:
        raise MemoryError("RESP encoder: out of memory")
    b.n = 0
    b.cap = cap
    return 0


def encode_reply(value, bint resp3=False):
    """One reply value as RESP2 bytes (see the module docstring for the type mapping)."""
    cdef _Buf b
    _init(&b, 64)
    try:
        _encode(&b, value, 0, resp3)
    except BaseException:
        free(b.p)
        raise
    return _finish(&b)


def encode_replies(values, bint resp3=False):
    """The replies of a pipeline, concatenated (one write for the whole batch)."""
    cdef _Buf b
    cdef object v
    _init(&b, 256)
    try:
        for v in values:
            _encode(&b, v, 0, resp3)
    except BaseException:
        free(b.p)
        raise
    return _finish(&b)


cdef int _encode_request(_Buf* b, object args) except -1:
    cdef object a
    cdef bytes raw
    _put_line(b, c'*', len(args))
    for a in args:
        if type(a) is bytes:
            _put_bulk(b, PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a))
        elif type(a) is str:
            raw = PyUnicode_AsUTF8String(a)
            _put_bulk(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        elif PyLong_Check(a) and not isinstance(a, bool):
            raw = str(int(a)).encode()
            _put_bulk(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        elif isinstance(a, (bytearray, memoryview)):
            raw = bytes(a)
            _put_bulk(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        else:
            raise TypeError(
                f"a RESP request argument is bytes, str or int, got {type(a).__name__}"
            )
    return 0


def encode_command(args):
    """One request: an array of bulk strings (bytes, str as UTF-8, int in decimal)."""
    cdef _Buf b
    _init(&b, 64)
    try:
        _encode_request(&b, args)
    except BaseException:
        free(b.p)
        raise
    return _finish(&b)


def encode_commands(requests):
    """Several requests, concatenated (a pipeline)."""
    cdef _Buf b
    cdef object args
    _init(&b, 256)
    try:
        for args in requests:
            _encode_request(&b, args)
    except BaseException:
        free(b.p)
        raise
    return _finish(&b)
