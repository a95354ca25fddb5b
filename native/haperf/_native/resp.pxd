"""Contract of haperf._native.resp: RESP2 (the Redis protocol) request parsing and reply encoding.

RequestParser turns a byte stream of pipelined requests (arrays of bulk strings, as redis-cli,
redis-benchmark and redis-py send them, or inline commands typed into telnet) into lists of bytes
arguments, incrementally. encode_replies turns Python reply values into RESP2 bytes;
encode_commands builds requests (the client side).

Invariants: every count, length and line is checked against a named bound before anything is
allocated; bytes that cannot be resynchronised (a bad length, a missing CRLF, a request above
request_bytes_max) set `error` (a ProtocolError) and the parser refuses every later feed; a
partial request is kept in chunks and re-parsed only once enough bytes arrived to complete the
bulk string it stopped in, so a large value arriving in many pieces costs linear time.
"""


cdef enum:
    # Most digits a count or length line may have (a signed 64-bit value fits in 19).
    RESP_NUMBER_DIGITS_MAX = 18
    # Longest count/length line before its CRLF: '*' or '$', sign, digits.
    RESP_NUMBER_LINE_MAX = 20
    # Defaults (each a named maximum the server may lower).
    RESP_ARGS_MAX = 131072
    RESP_BULK_BYTES_MAX = 1048576 + 4096
    RESP_REQUEST_BYTES_MAX = 8 * 1048576
    RESP_INLINE_BYTES_MAX = 65536
    # Deepest nesting of arrays encode_replies accepts (and ReplyParser reads).
    RESP_REPLY_DEPTH_MAX = 16
    # What a client accepts from a server (ReplyParser).
    RESP_REPLY_LINE_BYTES_MAX = 65536
    RESP_REPLY_BULK_BYTES_MAX = 512 * 1048576
    RESP_REPLY_ARRAY_MAX = 16777216


cdef class ErrorReply:
    """A RESP error reply: `message` is its whole text, code word first ("ERR ...")."""
    cdef readonly str message


cdef class RequestParser:
    """Incremental parser of pipelined RESP2 requests (see resp.pyx)."""
    cdef readonly Py_ssize_t args_max
    cdef readonly Py_ssize_t bulk_bytes_max
    cdef readonly Py_ssize_t request_bytes_max
    cdef readonly Py_ssize_t inline_bytes_max
    cdef readonly object error
    # Bytes of an incomplete request (a list of chunks), their total, and how many bytes the
    # request needs at least before parsing it again is worth it.
    cdef list _chunks
    cdef Py_ssize_t _pending
    cdef Py_ssize_t _need

    cdef Py_ssize_t _parse_one(self, const char* p, Py_ssize_t n, Py_ssize_t pos,
                               list out) except -2
    cdef Py_ssize_t _parse_inline(self, const char* p, Py_ssize_t n, Py_ssize_t pos,
                                  list out) except -2


cdef class ReplyParser:
    """Incremental parser of RESP2 replies (plus RESP3 null `_`), for clients (see resp.pyx)."""
    cdef readonly object error
    cdef list _chunks
    cdef Py_ssize_t _pending
    cdef Py_ssize_t _need
    cdef object _value

    cdef Py_ssize_t _reply(self, const char* p, Py_ssize_t n, Py_ssize_t pos, int depth) except -2
