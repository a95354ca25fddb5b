"""haperf._native.raftstore: frames Raft entries into the WAL's buffer and decodes them back.

Owns the two per-entry loops of haperf.raft.durable.DiskStorage:
- append_entries(fb, entries, index): every Entry becomes one WAL record (entry header + data)
  framed straight into the FrameBuffer: the data (bytes or a memoryview of a received frame) is
  copied once, into the frame. All or nothing: sizes, indexes and types are checked before any
  record is framed; a batch that fits the buffer is framed in one piece.
- decode_entry(record, index): an Entry from one record, or ValueError saying what is wrong.
Invariants: the header is minimal (term 0 has no term bytes) and a decoded header must be one
this module could have written (type <= ENTRY_TYPE_MAX, at most 8 term bytes); no I/O.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport uint64_t

from haperf._native.raftmsg cimport Entry
from haperf._native.wal cimport FrameBuffer, frame_bytes

from haperf.errors import RecordTooLargeError, WALIndexError

HEADER_BYTES_MAX = ENTRY_HEADER_BYTES_MAX


cdef int entry_header(unsigned char* out, uint64_t term, int entry_type) noexcept nogil:
    """Write the header of an entry at out; return its length (1 + bytes of term)."""
    cdef int n = 0
    cdef uint64_t t = term
    while t:
        out[1 + n] = <unsigned char>(t & 0xFF)
        t >>= 8
        n += 1
    out[0] = <unsigned char>((n << 4) | entry_type)
    return 1 + n


def header(uint64_t term, int entry_type):
    """The record header of an entry of `term` and `entry_type` (bytes)."""
    cdef unsigned char buf[ENTRY_HEADER_BYTES_MAX]
    if not 0 <= entry_type <= ENTRY_TYPE_MAX:
        raise ValueError(f"entry type {entry_type} is not 0 (normal) or 1 (conf change)")
    return PyBytes_FromStringAndSize(<char*>buf, entry_header(buf, term, entry_type))


@cython.final
cdef class _Held:
    """A buffer export held for the duration of a call (bytes take the fast path instead)."""
    cdef Py_buffer view
    cdef bint held

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


def append_entries(FrameBuffer fb, list entries, uint64_t index):
    """Frame every entry of `entries` (indexes index, index+1, ...) into fb; the last index."""
    cdef Py_ssize_t i, n = len(entries)
    cdef Py_ssize_t total = 0, size, hn
    cdef Entry e
    cdef object data
    cdef unsigned char head[ENTRY_HEADER_BYTES_MAX]
    cdef list held = []
    cdef _Held h
    cdef const unsigned char* ptr
    cdef uint64_t last = 0
    cdef Py_ssize_t k = 0
    if n == 0:
        raise ValueError("append_entries needs at least one entry")
    for i in range(n):
        e = <Entry?>entries[i]
        if e.index != index + <uint64_t>i:
            raise ValueError(
                f"entry {i} has index {e.index}, expected {index + <uint64_t>i} (entries are "
                "contiguous)")
        if e.type > ENTRY_TYPE_MAX:
            raise ValueError(f"entry {e.index} has type {e.type}; only 0 and 1 are stored")
        data = e.data
        if PyBytes_CheckExact(data):
            size = PyBytes_GET_SIZE(data)
        else:
            h = _Held()
            PyObject_GetBuffer(data, &h.view, PyBUF_SIMPLE)
            h.held = True
            held.append(h)
            size = h.view.len
        size += entry_header(head, e.term, e.type)
        if size > fb.record_bytes_max:
            raise RecordTooLargeError(
                f"entry {e.index} is a record of {size} bytes, above record_bytes_max="
                f"{fb.record_bytes_max}; nothing of the batch was appended")
        total += frame_bytes(size)
    if fb.failure is not None:
        raise fb.failure.with_traceback(None)
    if total <= fb.cap and fb.cap - fb.used < total:
        fb._make_room(total)
    if index != fb.next_idx:
        raise WALIndexError(
            f"append of index {index}, but the next index is {fb.next_idx} "
            "(appends are contiguous; truncate_after() first to overwrite)")
    for i in range(n):
        e = <Entry>entries[i]
        hn = entry_header(head, e.term, e.type)
        data = e.data
        if PyBytes_CheckExact(data):
            last = fb._put(head, hn, <const unsigned char*>PyBytes_AS_STRING(data),
                           PyBytes_GET_SIZE(data), 0)
        else:
            h = <_Held>held[k]
            k += 1
            last = fb._put(head, hn, <const unsigned char*>h.view.buf, h.view.len, 0)
    return last


def decode_entry(object record, uint64_t index):
    """The Entry stored in WAL record `index` (its data copied out); ValueError if malformed."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t n, t, k
    cdef uint64_t term = 0
    cdef int kind
    PyObject_GetBuffer(record, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        n = view.len
        if n < 1:
            raise ValueError("an empty record")
        t = p[0] >> 4
        kind = p[0] & 0x0F
        if t > 8 or kind > ENTRY_TYPE_MAX or n < 1 + t:
            raise ValueError(f"header byte {p[0]:#04x} in a record of {n} bytes")
        for k in range(t):
            term |= (<uint64_t>p[1 + k]) << (8 * k)
        return Entry(term, index, PyBytes_FromStringAndSize(<const char*>p + 1 + t, n - 1 - t),
                     kind)
    finally:
        PyBuffer_Release(&view)
