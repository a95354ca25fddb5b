"""haperf._native.codec: encode Raft messages into checksummed frames and decode them back.

Owns the wire format (layout in codec.pxd and docs/codec.md): encode, encode_into,
encode_many, encoded_size, decode and the incremental FrameReader; and _objects_floor, the
allocation floor the decode benchmarks are divided by.

Invariants:
- Encoding happens in two phases. _plan reads everything it needs from the Message (scalars,
  entry records, buffer exports of every payload, conf ids) into a C struct and checks every
  bound; _write then fills a buffer of exactly the planned size with no Python calls. So the
  size computed is the size written even if the Message changes while it is being planned, and
  each encode allocates one bytes object.
- Decoding checks, in this order: header (magic, version, length bounds), CRC32C, message type,
  then every body read against the frame end before it happens. Every count is bounded before
  the list or tuple it sizes is allocated, and is also bounded by the bytes actually present,
  so no input makes the decoder allocate more than a small multiple of its own length.
- Decoded payloads (Entry.data, snap_data) longer than copy_bytes_max are read-only
  memoryviews into the decoded buffer, whose buffer export keeps it alive; shorter ones are
  bytes copies (cheaper than a memoryview at those sizes, see COPY_BYTES_MAX in codec.pxd).
- A FrameReader holds at most frame_bytes_max bytes, refuses a larger header before buffering,
  and after any CodecError refuses all further input (the stream has lost its framing).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_FromUnsignedLongLong
from cpython.memoryview cimport PyMemoryView_FromObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from haperf._native cimport crc32c as _crc
from haperf._native.config cimport HAPERF_DEBUG
from haperf._native.raftmsg cimport ConfState, Entry, Message, SnapshotMeta
from haperf._native.raftmsg cimport MSG_APP as MSG_APP_TYPE

from haperf.errors import (
    CodecError,
    ConfigError,
    FrameChecksumError,
    FrameMalformedError,
    FrameTooLargeError,
    FrameTruncatedError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
)

_crc.crc32c_init()

cdef extern from *:
    """
    /* Little-endian loads and stores through memcpy: no alignment assumption, and compilers
       turn each into a single move (plus a byte swap on big-endian hosts). */
    #include <stdint.h>
    #include <string.h>
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define HAPERF_CODEC_BSWAP16(v) __builtin_bswap16(v)
    #define HAPERF_CODEC_BSWAP32(v) __builtin_bswap32(v)
    #define HAPERF_CODEC_BSWAP64(v) __builtin_bswap64(v)
    #else
    #define HAPERF_CODEC_BSWAP16(v) (v)
    #define HAPERF_CODEC_BSWAP32(v) (v)
    #define HAPERF_CODEC_BSWAP64(v) (v)
    #endif
    static inline uint16_t haperf_codec_ld16(const unsigned char *p) {
        uint16_t v; memcpy(&v, p, 2); return HAPERF_CODEC_BSWAP16(v); }
    static inline uint32_t haperf_codec_ld32(const unsigned char *p) {
        uint32_t v; memcpy(&v, p, 4); return HAPERF_CODEC_BSWAP32(v); }
    static inline uint64_t haperf_codec_ld64(const unsigned char *p) {
        uint64_t v; memcpy(&v, p, 8); return HAPERF_CODEC_BSWAP64(v); }
    static inline void haperf_codec_st16(unsigned char *p, uint16_t v) {
        v = HAPERF_CODEC_BSWAP16(v); memcpy(p, &v, 2); }
    static inline void haperf_codec_st32(unsigned char *p, uint32_t v) {
        v = HAPERF_CODEC_BSWAP32(v); memcpy(p, &v, 4); }
    static inline void haperf_codec_st64(unsigned char *p, uint64_t v) {
        v = HAPERF_CODEC_BSWAP64(v); memcpy(p, &v, 8); }
    """
    uint16_t ld16 "haperf_codec_ld16"(const unsigned char* p) noexcept nogil
    uint32_t ld32 "haperf_codec_ld32"(const unsigned char* p) noexcept nogil
    uint64_t ld64 "haperf_codec_ld64"(const unsigned char* p) noexcept nogil
    void st16 "haperf_codec_st16"(unsigned char* p, uint16_t v) noexcept nogil
    void st32 "haperf_codec_st32"(unsigned char* p, uint32_t v) noexcept nogil
    void st64 "haperf_codec_st64"(unsigned char* p, uint64_t v) noexcept nogil


# Python names for the bounds and layout constants (the C enum lives in codec.pxd).
VERSION = CODEC_VERSION
MAGIC = bytes((CODEC_MAGIC_0, CODEC_MAGIC_1))
HEADER_SIZE = HEADER_BYTES
FRAME_SIZE_MIN = FRAME_BYTES_MIN
FRAME_SIZE_MAX = FRAME_BYTES_MAX
ENTRIES_MAX = ENTRIES_PER_MSG_MAX
ENTRY_SIZE_MAX = ENTRY_BYTES_MAX
CONTEXT_SIZE_MAX = CONTEXT_BYTES_MAX
CONF_IDS_PER_LIST_MAX = CONF_IDS_MAX
SNAP_DATA_SIZE_MAX = SNAP_DATA_BYTES_MAX
COPY_SIZE_MAX = COPY_BYTES_MAX
FRAME_PREALLOC_SIZE_MAX = FRAME_PREALLOC_BYTES_MAX

# Message types this version knows (raftmsg.MsgType); entry types likewise (raftmsg.EntryType).
cdef enum:
    _MSG_TYPE_FIRST = 1
    _MSG_TYPE_LAST = 14
    _ENTRY_TYPE_LAST = 1

# Presence bitmap ("fields", u16 at offset 12). Bits 0..8: the u64 scalars, in this order.
cdef enum:
    _F_TO = 1 << 0
    _F_FRM = 1 << 1
    _F_TERM = 1 << 2
    _F_LOG_TERM = 1 << 3
    _F_INDEX = 1 << 4
    _F_COMMIT = 1 << 5
    _F_REJECT_HINT = 1 << 6
    _F_HINT_TERM = 1 << 7
    _F_SNAP_OFFSET = 1 << 8
    _F_SCALARS = 0x1FF
    _F_REJECT = 1 << 9
    _F_SNAP_DONE = 1 << 10
    _F_CONTEXT = 1 << 11
    _F_ENTRIES = 1 << 12
    _F_SNAPSHOT = 1 << 13
    _F_SNAP_DATA = 1 << 14
    _F_RESERVED = 1 << 15
    _N_SCALARS = 9

# Python-visible copies, for tests and docs.
FIELD_BITS = {
    "to": _F_TO, "frm": _F_FRM, "term": _F_TERM, "log_term": _F_LOG_TERM, "index": _F_INDEX,
    "commit": _F_COMMIT, "reject_hint": _F_REJECT_HINT, "hint_term": _F_HINT_TERM,
    "snap_offset": _F_SNAP_OFFSET, "reject": _F_REJECT, "snap_done": _F_SNAP_DONE,
    "context": _F_CONTEXT, "entries": _F_ENTRIES, "snapshot": _F_SNAPSHOT,
    "snap_data": _F_SNAP_DATA,
}


# ------------------------------------------------------------------------------------------
# Encoding

ctypedef struct _EntryRec:
    uint64_t term
    uint64_t index
    Py_buffer view
    uint8_t type

ctypedef struct _Plan:
    Py_ssize_t size
    uint8_t type
    uint16_t fields
    uint64_t scalars[_N_SCALARS]
    Py_buffer context
    Py_ssize_t n_entries
    _EntryRec* entries
    uint64_t snap_index
    uint64_t snap_term
    uint8_t auto_leave
    uint32_t n_ids[3]
    uint64_t* ids
    Py_buffer snap_data


cdef inline void _release_plan(_Plan* pl) noexcept:
    cdef Py_ssize_t i
    if pl.entries != NULL:
        for i in range(pl.n_entries):
            PyBuffer_Release(&pl.entries[i].view)
        free(pl.entries)
        pl.entries = NULL
    pl.n_entries = 0
    if pl.ids != NULL:
        free(pl.ids)
        pl.ids = NULL
    # PyBuffer_Release is a no-op on a view that holds no export (obj NULL, e.g. zeroed).
    PyBuffer_Release(&pl.context)
    PyBuffer_Release(&pl.snap_data)


cdef int _get_buffer(object data, Py_buffer* view, str what) except -1:
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except BufferError as err:
        raise TypeError(
            f"{what} must be a C-contiguous bytes-like object, got a non-contiguous "
            f"{type(data).__name__} ({err}); pass bytes(x)"
        ) from err
    return 0


cdef int _too_large(str what, object got, object limit) except -1:
    raise FrameTooLargeError(
        f"{what} is {got}, above the codec bound of {limit}; split the message (the Raft core "
        f"bounds batches by msg_bytes_max) or send the data in smaller snapshot chunks"
    )


cdef int _plan_ids(tuple ids, uint64_t* out, str what) except -1:
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(ids)):
        try:
            out[i] = PyLong_AsUnsignedLongLong(<object>PyTuple_GET_ITEM(ids, i))
        except (OverflowError, TypeError) as err:
            raise TypeError(
                f"snapshot {what}[{i}] must be a node id in 0..2**64-1, got "
                f"{<object>PyTuple_GET_ITEM(ids, i)!r}"
            ) from err
    return 0


cdef int _plan(Message msg, _Plan* pl) except -1:
    """Snapshot `msg` into `pl` and compute the frame size. The caller always _release_plans."""
    cdef uint16_t fields = 0
    cdef Py_ssize_t size = FRAME_BYTES_MIN
    cdef Py_ssize_t payload = 0
    cdef Py_ssize_t n, i, n_ids
    cdef Entry e
    cdef object item
    cdef list entries
    cdef SnapshotMeta snap
    cdef ConfState conf
    memset(pl, 0, sizeof(_Plan))
    if msg is None:
        raise TypeError("expected a raftmsg.Message, got None")
    if msg.type < _MSG_TYPE_FIRST or msg.type > _MSG_TYPE_LAST:
        raise UnknownMessageTypeError(
            f"cannot encode message type {msg.type}: known types are "
            f"{_MSG_TYPE_FIRST}..{_MSG_TYPE_LAST} (raftmsg.MsgType)"
        )
    pl.type = msg.type
    pl.scalars[0] = msg.to
    pl.scalars[1] = msg.frm
    pl.scalars[2] = msg.term
    pl.scalars[3] = msg.log_term
    pl.scalars[4] = msg.index
    pl.scalars[5] = msg.commit
    pl.scalars[6] = msg.reject_hint
    pl.scalars[7] = msg.hint_term
    pl.scalars[8] = msg.snap_offset
    for i in range(_N_SCALARS):
        if pl.scalars[i] != 0:
            fields |= <uint16_t>(1 << i)
            size += 8
    if msg.reject:
        fields |= _F_REJECT
    if msg.snap_done:
        fields |= _F_SNAP_DONE

    if msg.context is not None and PyBytes_GET_SIZE(msg.context) > 0:
        _get_buffer(msg.context, &pl.context, "context")
        if pl.context.len > CONTEXT_BYTES_MAX:
            _too_large("context length", pl.context.len, CONTEXT_BYTES_MAX)
        fields |= _F_CONTEXT
        size += 4 + pl.context.len

    entries = msg.entries
    if entries is not None and PyList_GET_SIZE(entries) > 0:
        n = PyList_GET_SIZE(entries)
        if n > ENTRIES_PER_MSG_MAX:
            _too_large("entry count", n, ENTRIES_PER_MSG_MAX)
        pl.entries = <_EntryRec*>calloc(<size_t>n, sizeof(_EntryRec))
        if pl.entries == NULL:
            raise MemoryError()
        for i in range(n):
            # The list is re-checked on every step: acquiring a buffer may run Python code.
            if i >= PyList_GET_SIZE(entries):
                raise RuntimeError("msg.entries changed size while the message was encoded")
            item = <object>PyList_GET_ITEM(entries, i)
            if type(item) is not Entry:
                raise TypeError(f"msg.entries[{i}] must be a raftmsg.Entry, got {type(item).__name__}")
            e = <Entry>item
            if e.type > _ENTRY_TYPE_LAST:
                raise UnknownMessageTypeError(
                    f"cannot encode entry type {e.type} (msg.entries[{i}]): known entry types "
                    f"are 0..{_ENTRY_TYPE_LAST} (raftmsg.EntryType)"
                )
            pl.entries[i].term = e.term
            pl.entries[i].index = e.index
            pl.entries[i].type = e.type
            _get_buffer(e.data, &pl.entries[i].view, "Entry.data")
            pl.n_entries = i + 1
            if pl.entries[i].view.len > ENTRY_BYTES_MAX:
                _too_large(f"msg.entries[{i}] data length", pl.entries[i].view.len, ENTRY_BYTES_MAX)
            payload += pl.entries[i].view.len
            if payload > FRAME_BYTES_MAX:
                # Checked per entry so the running sum stays small on any Py_ssize_t width.
                _too_large(f"frame size (entries 0..{i} alone)", payload, FRAME_BYTES_MAX)
        fields |= _F_ENTRIES
        size += 4 + n * ENTRY_RECORD_BYTES + payload

    snap = msg.snapshot
    if snap is not None:
        conf = snap.conf
        if conf is None:
            conf = ConfState()
        pl.snap_index = snap.index
        pl.snap_term = snap.term
        pl.auto_leave = 1 if conf.auto_leave else 0
        n_ids = 0
        for i, ids in enumerate((conf.voters, conf.learners, conf.voters_outgoing)):
            n = 0 if ids is None else PyTuple_GET_SIZE(ids)
            if n > CONF_IDS_MAX:
                _too_large("snapshot conf id list length", n, CONF_IDS_MAX)
            pl.n_ids[i] = <uint32_t>n
            n_ids += n
        pl.ids = <uint64_t*>calloc(<size_t>(n_ids + 1), sizeof(uint64_t))
        if pl.ids == NULL:
            raise MemoryError()
        if pl.n_ids[0]:
            _plan_ids(conf.voters, pl.ids, "voters")
        if pl.n_ids[1]:
            _plan_ids(conf.learners, pl.ids + pl.n_ids[0], "learners")
        if pl.n_ids[2]:
            _plan_ids(conf.voters_outgoing, pl.ids + pl.n_ids[0] + pl.n_ids[1], "voters_outgoing")
        fields |= _F_SNAPSHOT
        size += SNAPSHOT_FIXED_BYTES + 8 * n_ids

    if msg.snap_data is not None:
        _get_buffer(msg.snap_data, &pl.snap_data, "snap_data")
        if pl.snap_data.len > SNAP_DATA_BYTES_MAX:
            _too_large("snap_data length", pl.snap_data.len, SNAP_DATA_BYTES_MAX)
        if pl.snap_data.len > 0:
            fields |= _F_SNAP_DATA
            size += 4 + pl.snap_data.len
        else:
            PyBuffer_Release(&pl.snap_data)

    if size > FRAME_BYTES_MAX:
        _too_large("frame size", size, FRAME_BYTES_MAX)
    pl.fields = fields
    pl.size = size
    return 0


cdef Py_ssize_t _write(const _Plan* pl, unsigned char* out) noexcept nogil:
    """Fill exactly pl.size bytes at `out` with the frame; returns the bytes written."""
    cdef unsigned char* q = out + FRAME_BYTES_MIN
    cdef unsigned char* table
    cdef unsigned char* data
    cdef Py_ssize_t i, n_ids
    cdef uint32_t crc
    out[0] = CODEC_MAGIC_0
    out[1] = CODEC_MAGIC_1
    out[2] = CODEC_VERSION
    out[3] = pl.type
    st32(out + 4, <uint32_t>pl.size)
    st16(out + 12, pl.fields)
    for i in range(_N_SCALARS):
        if pl.fields & (1 << i):
            st64(q, pl.scalars[i])
            q += 8
    if pl.fields & _F_CONTEXT:
        st32(q, <uint32_t>pl.context.len)
        memcpy(q + 4, pl.context.buf, <size_t>pl.context.len)
        q += 4 + pl.context.len
    if pl.fields & _F_ENTRIES:
        st32(q, <uint32_t>pl.n_entries)
        table = q + 4
        data = table + pl.n_entries * ENTRY_RECORD_BYTES
        for i in range(pl.n_entries):
            st64(table, pl.entries[i].term)
            st64(table + 8, pl.entries[i].index)
            table[16] = pl.entries[i].type
            st32(table + 17, <uint32_t>pl.entries[i].view.len)
            table += ENTRY_RECORD_BYTES
            memcpy(data, pl.entries[i].view.buf, <size_t>pl.entries[i].view.len)
            data += pl.entries[i].view.len
        q = data
    if pl.fields & _F_SNAPSHOT:
        st64(q, pl.snap_index)
        st64(q + 8, pl.snap_term)
        q[16] = pl.auto_leave
        st32(q + 17, pl.n_ids[0])
        st32(q + 21, pl.n_ids[1])
        st32(q + 25, pl.n_ids[2])
        q += SNAPSHOT_FIXED_BYTES
        n_ids = pl.n_ids[0] + pl.n_ids[1] + pl.n_ids[2]
        for i in range(n_ids):
            st64(q, pl.ids[i])
            q += 8
    if pl.fields & _F_SNAP_DATA:
        st32(q, <uint32_t>pl.snap_data.len)
        memcpy(q + 4, pl.snap_data.buf, <size_t>pl.snap_data.len)
        q += 4 + pl.snap_data.len
    crc = _crc.crc32c_extend(0, out, 8)
    crc = _crc.crc32c_extend(crc, out + HEADER_BYTES, <size_t>(pl.size - HEADER_BYTES))
    st32(out + 8, crc)
    return q - out


cdef inline Message _as_message(object msg):
    if type(msg) is not Message:
        raise TypeError(f"expected a raftmsg.Message, got {type(msg).__name__}")
    return <Message>msg


cdef bytes encode_message(Message msg):
    cdef _Plan pl
    cdef bytes out
    cdef Py_ssize_t written
    memset(&pl, 0, sizeof(_Plan))
    try:
        _plan(msg, &pl)
        out = PyBytes_FromStringAndSize(NULL, pl.size)
        written = _write(&pl, <unsigned char*>PyBytes_AS_STRING(out))
        if HAPERF_DEBUG:
            assert written == pl.size, f"codec wrote {written} bytes of a {pl.size}-byte plan"
    finally:
        _release_plan(&pl)
    return out


def encode(msg):
    """Encode one Message as one frame (bytes).

    Raises UnknownMessageTypeError for a type outside raftmsg.MsgType, FrameTooLargeError when
    a count or length passes its bound (ENTRIES_MAX, ENTRY_SIZE_MAX, CONTEXT_SIZE_MAX,
    CONF_IDS_PER_LIST_MAX, SNAP_DATA_SIZE_MAX, FRAME_SIZE_MAX), TypeError for a payload that is
    not a C-contiguous buffer. Nothing is allocated for the frame before every check passed.
    """
    return encode_message(_as_message(msg))


def encoded_size(msg):
    """Bytes encode(msg) would return, computed without encoding (same checks as encode)."""
    cdef _Plan pl
    memset(&pl, 0, sizeof(_Plan))  # released in `finally` even if _plan never runs
    try:
        _plan(_as_message(msg), &pl)
        return pl.size
    finally:
        _release_plan(&pl)


def encode_into(msg, bytearray buf):
    """Append the frame of `msg` to `buf` (resized once) and return the number of bytes added."""
    cdef _Plan pl
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buf)
    memset(&pl, 0, sizeof(_Plan))  # released in `finally` even if _plan never runs
    try:
        _plan(_as_message(msg), &pl)
        PyByteArray_Resize(buf, old + pl.size)
        _write(&pl, <unsigned char*>PyByteArray_AS_STRING(buf) + old)
        return pl.size
    finally:
        _release_plan(&pl)


def encode_many(msgs):
    """Encode a sequence of Messages into one bytes object holding their frames back to back.

    One allocation for the whole batch (the transport can send it with one write). If any
    message fails its checks, nothing is returned and the error names its position.
    """
    cdef tuple seq = tuple(msgs)
    cdef Py_ssize_t n = PyTuple_GET_SIZE(seq)
    cdef Py_ssize_t i, total = 0, planned = 0
    cdef _Plan* plans
    cdef bytes out
    cdef unsigned char* q
    if n == 0:
        return b""
    plans = <_Plan*>calloc(<size_t>n, sizeof(_Plan))
    if plans == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            try:
                _plan(_as_message(<object>PyTuple_GET_ITEM(seq, i)), &plans[i])
            except CodecError as err:
                raise type(err)(f"message {i} of the batch: {err}") from err
            finally:
                planned = i + 1
            total += plans[i].size
        out = PyBytes_FromStringAndSize(NULL, total)
        q = <unsigned char*>PyBytes_AS_STRING(out)
        for i in range(n):
            q += _write(&plans[i], q)
        return out
    finally:
        for i in range(planned):
            _release_plan(&plans[i])
        free(plans)


# ------------------------------------------------------------------------------------------
# Decoding

cdef object _base_view(object owner):
    """A read-only, byte-unit memoryview of `owner`: what payload views are sliced from."""
    cdef object base = PyMemoryView_FromObject(owner)
    if not PyBytes_CheckExact(owner):
        # Any other exporter: bytes as the unit, and no writing through the payloads.
        base = base.cast("B").toreadonly()
    return base


cdef Py_ssize_t _copy_max_arg(Py_ssize_t copy_bytes_max) except -1:
    if copy_bytes_max < 0 or copy_bytes_max > ENTRY_BYTES_MAX:
        raise ConfigError(
            f"copy_bytes_max must be in 0..{ENTRY_BYTES_MAX}, got {copy_bytes_max} "
            f"(0 = every non-empty payload is a zero-copy memoryview)"
        )
    return copy_bytes_max


cdef int _truncated(str what, Py_ssize_t offset, Py_ssize_t need, Py_ssize_t have) except -1:
    raise FrameTruncatedError(
        f"frame truncated: {what} at offset {offset} needs {need} bytes, only {have} remain; "
        f"the frame was cut short or its lengths are corrupt"
    )


cdef Py_ssize_t _check_header(const unsigned char* p, Py_ssize_t frame_max) except -1:
    """Validate the first HEADER_BYTES of a frame; return its announced total length."""
    cdef Py_ssize_t length
    if p[0] != CODEC_MAGIC_0 or p[1] != CODEC_MAGIC_1:
        raise FrameMalformedError(
            f"bad magic at offset 0: expected 0x{CODEC_MAGIC_0:02x}{CODEC_MAGIC_1:02x}, got "
            f"0x{p[0]:02x}{p[1]:02x}; the peer does not speak the haperf codec or the stream "
            f"lost sync (close the connection)"
        )
    if p[2] != CODEC_VERSION:
        raise UnsupportedVersionError(
            f"frame version {p[2]} at offset 2 is not supported: this build reads version "
            f"{CODEC_VERSION}; upgrade the older node"
        )
    length = ld32(p + 4)
    if length < FRAME_BYTES_MIN:
        raise FrameMalformedError(
            f"frame length {length} at offset 4 is below the {FRAME_BYTES_MIN}-byte minimum"
        )
    if length > frame_max:
        raise FrameTooLargeError(
            f"frame length {length} at offset 4 is above the limit of {frame_max} bytes; "
            f"raise frame_bytes_max (at most {FRAME_BYTES_MAX}) if the peer is trusted"
        )
    return length


cdef int _check_crc_and_type(const unsigned char* p, Py_ssize_t n) except -1:
    cdef uint32_t crc = _crc.crc32c_extend(0, p, 8)
    crc = _crc.crc32c_extend(crc, p + HEADER_BYTES, <size_t>(n - HEADER_BYTES))
    cdef uint32_t stored = ld32(p + 8)
    if crc != stored:
        raise FrameChecksumError(
            f"frame checksum mismatch: stored CRC32C 0x{stored:08x} at offset 8, computed "
            f"0x{crc:08x} over {n} bytes; the frame is corrupt"
        )
    if p[3] < _MSG_TYPE_FIRST or p[3] > _MSG_TYPE_LAST:
        raise UnknownMessageTypeError(
            f"unknown message type {p[3]} at offset 3: this build knows "
            f"{_MSG_TYPE_FIRST}..{_MSG_TYPE_LAST}; upgrade the older node"
        )
    return 0


cdef tuple _read_ids(const unsigned char* p, Py_ssize_t n):
    cdef tuple out = PyTuple_New(n)
    cdef Py_ssize_t i
    cdef object value
    for i in range(n):
        value = PyLong_FromUnsignedLongLong(ld64(p + 8 * i))
        Py_INCREF(value)
        PyTuple_SET_ITEM(out, i, value)
    return out


cdef Message _decode_body(const unsigned char* p, Py_ssize_t n, object owner, Py_ssize_t base,
                          Py_ssize_t copy_max):
    """Decode a frame whose header, CRC and type were checked.

    `p` is at offset `base` in `owner`, the object payload views slice. Payloads of at most
    `copy_max` bytes are copied into bytes; longer ones are views (the base view of `owner` is
    made on first need, so frames with no large payload never make one).
    """
    cdef uint16_t fields = ld16(p + HEADER_BYTES)
    cdef Py_ssize_t pos = FRAME_BYTES_MIN
    cdef Py_ssize_t count, i, need, length, payload
    cdef uint32_t n_ids[3]
    cdef const unsigned char* rec
    cdef Message msg
    cdef Entry e
    cdef list entries
    cdef SnapshotMeta snap
    cdef ConfState conf
    cdef object view = None
    if fields & _F_RESERVED:
        raise FrameMalformedError(
            f"reserved bit 15 of the field bitmap at offset {HEADER_BYTES} is set "
            f"(bitmap 0x{fields:04x}); the frame is from a newer or broken encoder"
        )
    msg = Message.__new__(Message)
    msg.type = p[3]
    if fields & _F_SCALARS:
        need = 8 * (((fields >> 0) & 1) + ((fields >> 1) & 1) + ((fields >> 2) & 1)
                    + ((fields >> 3) & 1) + ((fields >> 4) & 1) + ((fields >> 5) & 1)
                    + ((fields >> 6) & 1) + ((fields >> 7) & 1) + ((fields >> 8) & 1))
        if need > n - pos:
            _truncated("the scalar fields", pos, need, n - pos)
        if fields & _F_TO:
            msg.to = ld64(p + pos)
            pos += 8
        if fields & _F_FRM:
            msg.frm = ld64(p + pos)
            pos += 8
        if fields & _F_TERM:
            msg.term = ld64(p + pos)
            pos += 8
        if fields & _F_LOG_TERM:
            msg.log_term = ld64(p + pos)
            pos += 8
        if fields & _F_INDEX:
            msg.index = ld64(p + pos)
            pos += 8
        if fields & _F_COMMIT:
            msg.commit = ld64(p + pos)
            pos += 8
        if fields & _F_REJECT_HINT:
            msg.reject_hint = ld64(p + pos)
            pos += 8
        if fields & _F_HINT_TERM:
            msg.hint_term = ld64(p + pos)
            pos += 8
        if fields & _F_SNAP_OFFSET:
            msg.snap_offset = ld64(p + pos)
            pos += 8
    msg.reject = (fields & _F_REJECT) != 0
    msg.snap_done = (fields & _F_SNAP_DONE) != 0

    if fields & _F_CONTEXT:
        if 4 > n - pos:
            _truncated("the context length", pos, 4, n - pos)
        length = ld32(p + pos)
        if length > CONTEXT_BYTES_MAX:
            _too_large(f"context length at offset {pos}", length, CONTEXT_BYTES_MAX)
        pos += 4
        if length > n - pos:
            _truncated("the context", pos, length, n - pos)
        msg.context = PyBytes_FromStringAndSize(<const char*>p + pos, length)
        pos += length
    else:
        msg.context = b""

    if fields & _F_ENTRIES:
        if 4 > n - pos:
            _truncated("the entry count", pos, 4, n - pos)
        count = ld32(p + pos)
        if count > ENTRIES_PER_MSG_MAX:
            _too_large(f"entry count at offset {pos}", count, ENTRIES_PER_MSG_MAX)
        pos += 4
        if count * ENTRY_RECORD_BYTES > n - pos:
            _truncated(f"the table of {count} entries", pos, count * ENTRY_RECORD_BYTES, n - pos)
        entries = PyList_New(count)
        payload = pos + count * ENTRY_RECORD_BYTES
        for i in range(count):
            rec = p + pos + i * ENTRY_RECORD_BYTES
            length = ld32(rec + 17)
            if length > n - payload:
                if length > ENTRY_BYTES_MAX:
                    _too_large(f"entry {i} data length at offset {pos + i * 21 + 17}", length,
                               ENTRY_BYTES_MAX)
                _truncated(f"entry {i} data", payload, length, n - payload)
            if rec[16] > _ENTRY_TYPE_LAST:
                raise FrameMalformedError(
                    f"unknown entry type {rec[16]} at offset {pos + i * 21 + 16}: known entry "
                    f"types are 0..{_ENTRY_TYPE_LAST}"
                )
            e = Entry.__new__(Entry)
            e.term = ld64(rec)
            e.index = ld64(rec + 8)
            e.type = rec[16]
            if length <= copy_max:
                e.data = PyBytes_FromStringAndSize(<const char*>p + payload, length)
            else:
                if view is None:
                    view = _base_view(owner)
                e.data = view[base + payload:base + payload + length]
            payload += length
            Py_INCREF(e)
            PyList_SET_ITEM(entries, i, e)
        msg.entries = entries
        pos = payload
    else:
        msg.entries = []

    if fields & _F_SNAPSHOT:
        if SNAPSHOT_FIXED_BYTES > n - pos:
            _truncated("the snapshot metadata", pos, SNAPSHOT_FIXED_BYTES, n - pos)
        rec = p + pos
        if rec[16] > 1:
            raise FrameMalformedError(
                f"snapshot auto_leave at offset {pos + 16} is {rec[16]}, expected 0 or 1"
            )
        for i in range(3):
            n_ids[i] = ld32(rec + 17 + 4 * i)
            if n_ids[i] > CONF_IDS_MAX:
                _too_large(f"snapshot conf id count at offset {pos + 17 + 4 * i}", n_ids[i],
                           CONF_IDS_MAX)
        need = 8 * (<Py_ssize_t>n_ids[0] + n_ids[1] + n_ids[2])
        if need > n - pos - SNAPSHOT_FIXED_BYTES:
            _truncated("the snapshot conf ids", pos + SNAPSHOT_FIXED_BYTES, need,
                       n - pos - SNAPSHOT_FIXED_BYTES)
        conf = ConfState.__new__(ConfState)
        conf.auto_leave = rec[16] != 0
        rec += SNAPSHOT_FIXED_BYTES
        conf.voters = _read_ids(rec, n_ids[0])
        rec += 8 * n_ids[0]
        conf.learners = _read_ids(rec, n_ids[1])
        rec += 8 * n_ids[1]
        conf.voters_outgoing = _read_ids(rec, n_ids[2])
        snap = SnapshotMeta.__new__(SnapshotMeta)
        snap.index = ld64(p + pos)
        snap.term = ld64(p + pos + 8)
        snap.conf = conf
        msg.snapshot = snap
        pos += SNAPSHOT_FIXED_BYTES + need

    if fields & _F_SNAP_DATA:
        if 4 > n - pos:
            _truncated("the snap_data length", pos, 4, n - pos)
        length = ld32(p + pos)
        if length > SNAP_DATA_BYTES_MAX:
            _too_large(f"snap_data length at offset {pos}", length, SNAP_DATA_BYTES_MAX)
        pos += 4
        if length > n - pos:
            _truncated("snap_data", pos, length, n - pos)
        if length <= copy_max:
            msg.snap_data = PyBytes_FromStringAndSize(<const char*>p + pos, length)
        else:
            if view is None:
                view = _base_view(owner)
            msg.snap_data = view[base + pos:base + pos + length]
        pos += length
    else:
        msg.snap_data = b""

    if pos != n:
        raise FrameMalformedError(
            f"{n - pos} bytes after the last field at offset {pos} of a {n}-byte frame; "
            f"the frame's lengths are inconsistent"
        )
    return msg


cdef Message _decode_whole(const unsigned char* p, Py_ssize_t n, object owner,
                           Py_ssize_t copy_max):
    cdef Py_ssize_t length
    if n < HEADER_BYTES:
        _truncated("the frame header", 0, HEADER_BYTES, n)
    length = _check_header(p, FRAME_BYTES_MAX)
    if length > n:
        _truncated(f"a frame of {length} bytes", 0, length, n)
    if length < n:
        raise FrameMalformedError(
            f"{n - length} bytes after the end of a {length}-byte frame: decode() takes exactly "
            f"one frame; use FrameReader for a stream"
        )
    _check_crc_and_type(p, n)
    return _decode_body(p, n, owner, 0, copy_max)


cdef Message decode_message(object frame, Py_ssize_t copy_bytes_max=COPY_BYTES_MAX):
    cdef Py_buffer view
    if PyBytes_CheckExact(frame):
        return _decode_whole(<const unsigned char*>PyBytes_AS_STRING(frame),
                             PyBytes_GET_SIZE(frame), frame, copy_bytes_max)
    _get_buffer(frame, &view, "frame")
    try:
        return _decode_whole(<const unsigned char*>view.buf, view.len,
                             frame, copy_bytes_max)
    finally:
        PyBuffer_Release(&view)


def decode(frame, Py_ssize_t copy_bytes_max=COPY_BYTES_MAX):
    """Decode exactly one whole frame (any C-contiguous buffer) into a Message.

    Payloads (Entry.data, snap_data) longer than `copy_bytes_max` come back as read-only
    memoryviews into `frame` (zero-copy), which keep `frame` alive; shorter ones are copied into
    bytes, which is faster and smaller than a memoryview at those sizes and pins nothing. Pass
    copy_bytes_max=0 for views of every non-empty payload. If `frame` is mutable (bytearray, a
    memoryview of one), the caller must not modify it while the views are in use (it cannot be
    resized meanwhile: the views hold buffer exports). Raises a CodecError subclass on any
    malformed input.
    """
    return decode_message(frame, _copy_max_arg(copy_bytes_max))


# ------------------------------------------------------------------------------------------
# Incremental reading

@cython.final
cdef class FrameReader:
    """Turns a byte stream (TCP chunks cut anywhere) into Messages.

    `feed(data)` returns the messages completed by `data`, in order, and keeps the bytes of an
    unfinished frame. A header announcing more than `frame_bytes_max` bytes raises
    FrameTooLargeError at once, before anything is buffered; so at most `frame_bytes_max` bytes
    are ever held. A frame of up to FRAME_PREALLOC_SIZE_MAX bytes gets its whole buffer when its
    header arrives; a larger one grows with the bytes received. After any CodecError the stream has lost its framing: the reader refuses
    further input (close the connection; Raft retransmits).
    """

    def __init__(self, Py_ssize_t frame_bytes_max=FRAME_BYTES_MAX,
                 Py_ssize_t copy_bytes_max=COPY_BYTES_MAX):
        if frame_bytes_max < FRAME_BYTES_MIN or frame_bytes_max > FRAME_BYTES_MAX:
            raise ConfigError(
                f"frame_bytes_max must be in {FRAME_BYTES_MIN}..{FRAME_BYTES_MAX}, "
                f"got {frame_bytes_max}"
            )
        self.frame_bytes_max = frame_bytes_max
        self.copy_bytes_max = _copy_max_arg(copy_bytes_max)
        self._head_len = 0
        self._frame = None
        self._frame_len = 0
        self._filled = 0
        self._failure = None

    @property
    def pending_bytes(self):
        """Bytes of an unfinished frame held by the reader (0 between frames)."""
        return self._head_len + self._filled

    def feed(self, data):
        """Decode every frame `data` completes; return them as a list of Messages.

        When `data` is a bytes object, frames lying wholly inside it are decoded in place
        (payload memoryviews point into `data`, which is immutable and kept alive by them).
        Any other buffer is copied once first, so the caller may reuse it at once.
        """
        if not PyBytes_CheckExact(data):
            data = bytes(data)
        return self._guarded(data)

    def feed_borrowed(self, data):
        """feed() without the copy for mutable buffers (e.g. a BufferedProtocol's buffer).

        Payload memoryviews of frames lying wholly inside `data` point into `data` itself: the
        caller must keep `data` unmodified for as long as it uses those messages (or copy the
        payloads with bytes()). A bytearray cannot be resized meanwhile (BufferError). Bytes of
        an unfinished frame are copied, as with feed().
        """
        return self._guarded(data)

    cdef list _guarded(self, object data):
        if self._failure is not None:
            raise FrameMalformedError(
                f"this FrameReader already failed ({self._failure}); the stream has lost its "
                f"framing: close the connection and start a new reader"
            )
        try:
            return self._feed(data)
        except CodecError as err:
            self._failure = err
            self._frame = None
            self._head_len = 0
            self._frame_len = 0
            self._filled = 0
            raise

    cdef int _start_frame(self, const unsigned char* p, Py_ssize_t have, Py_ssize_t length) except -1:
        if length <= FRAME_PREALLOC_BYTES_MAX:
            # Exactly the frame's size, filled in place: the finished frame is decoded from this
            # bytes object without another copy. Nobody else holds it until it is complete.
            self._frame = PyBytes_FromStringAndSize(NULL, length)
        else:
            # A large frame grows with the bytes that really arrive (one more copy at the end),
            # so a bare header cannot make the reader allocate up to frame_bytes_max.
            self._frame = PyByteArray_FromStringAndSize(NULL, 0)
        self._frame_len = length
        self._filled = 0
        self._append(p, have)
        return 0

    cdef int _append(self, const unsigned char* p, Py_ssize_t take) except -1:
        cdef object frame = self._frame
        if PyBytes_CheckExact(frame):
            memcpy(PyBytes_AS_STRING(frame) + self._filled, p, <size_t>take)
        else:
            PyByteArray_Resize(frame, self._filled + take)
            memcpy(PyByteArray_AS_STRING(frame) + self._filled, p, <size_t>take)
        self._filled += take
        return 0

    cdef list _feed(self, object data):
        cdef Py_buffer view
        cdef bint held = False
        cdef const unsigned char* p
        cdef Py_ssize_t n, pos = 0, take, length
        cdef list out = []
        cdef object frame
        if PyBytes_CheckExact(data):
            p = <const unsigned char*>PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
        else:
            _get_buffer(data, &view, "data")
            held = True
            p = <const unsigned char*>view.buf
            n = view.len
        try:
            while pos < n:
                if self._frame is not None:
                    take = min(n - pos, self._frame_len - self._filled)
                    self._append(p + pos, take)
                    pos += take
                    if self._filled == self._frame_len:
                        frame = self._frame
                        if not PyBytes_CheckExact(frame):
                            frame = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(frame),
                                                              self._filled)
                        length = self._frame_len
                        self._frame = None
                        self._frame_len = 0
                        self._filled = 0
                        _check_crc_and_type(<const unsigned char*>PyBytes_AS_STRING(frame), length)
                        out.append(_decode_body(<const unsigned char*>PyBytes_AS_STRING(frame),
                                                length, frame, 0, self.copy_bytes_max))
                    continue
                if self._head_len > 0 or n - pos < HEADER_BYTES:
                    take = min(HEADER_BYTES - self._head_len, n - pos)
                    memcpy(self._head + self._head_len, p + pos, <size_t>take)
                    self._head_len += take
                    pos += take
                    if self._head_len == HEADER_BYTES:
                        length = _check_header(self._head, self.frame_bytes_max)
                        self._start_frame(self._head, HEADER_BYTES, length)
                        self._head_len = 0
                    continue
                length = _check_header(p + pos, self.frame_bytes_max)
                if length <= n - pos:
                    _check_crc_and_type(p + pos, length)
                    out.append(_decode_body(p + pos, length, data, pos, self.copy_bytes_max))
                    pos += length
                else:
                    self._start_frame(p + pos, n - pos, length)
                    pos = n
        finally:
            if held:
                PyBuffer_Release(&view)
        return out


def _objects_floor(payloads, Py_ssize_t count):
    """Benchmark floor: build what decoding an AppendEntries returns, without decoding.

    One Message holding a list of `count` Entry objects, each with a bytes copy of its share
    (len(payloads) // count bytes) of `payloads`: the allocations any decoder with this API must
    make. No parsing, no checksum, no bounds. Not for use outside benchmarks.
    """
    cdef Py_buffer view
    cdef Py_ssize_t i, size
    cdef Message msg
    cdef Entry e
    cdef list entries
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    _get_buffer(payloads, &view, "payloads")
    try:
        size = view.len // count
        msg = Message.__new__(Message)
        msg.type = MSG_APP_TYPE
        entries = PyList_New(count)
        for i in range(count):
            e = Entry.__new__(Entry)
            e.term = i
            e.index = i
            e.data = PyBytes_FromStringAndSize(<const char*>view.buf + i * size, size)
            Py_INCREF(e)
            PyList_SET_ITEM(entries, i, e)
        msg.entries = entries
        msg.context = b""
        msg.snap_data = b""
        return msg
    finally:
        PyBuffer_Release(&view)
