"""Contract of haperf._native.wal: WAL record framing, the append buffer and the recovery scan.

A frame is a 24-byte little-endian header, the payload, then zero padding to an 8-byte boundary:

    0   u32  crc32c of bytes 4..24 of the header followed by the payload
    4   u32  payload length (<= record_bytes_max)
    8   u64  record index
    16  u8   record type (FRAME_TYPE_DATA = 1; never 0)
    17  u8   FRAME_MAGIC (0xA7, never 0)
    18  u16  reserved, 0
    20  u32  salt: the low 32 bits of the log id, so frames of another log never validate here

A zero-filled region can never parse as a frame (the magic and the type are nonzero), which is how
the preallocated tail of a segment is told apart from records. docs/wal.md has the full format.

FrameBuffer is the append path: records are framed into one malloc'd buffer and the file layer
(haperf.wal) takes whole frames out of it in one piece. Invariants: `starts[0..count)` are the
buffer offsets of the frames in [first_idx, next_idx), in order; `used` is the end of the
last frame; a frame is never split; `failure`, once set, makes every append raise it. `take`
hands out the whole buffer without copying (as a _Chunk) and continues in `spare`; a buffer is
only reused when no _Chunk of it is alive (`chunks_alive` == 0), otherwise take copies.
`_put(pre, npre, data, n, index)` frames one record whose payload is pre + data (pre may be
NULL/0): other native modules that cimport FrameBuffer (haperf._native.raftstore) frame records
with a small header of their own without copying the data twice.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef enum:
    FRAME_HEADER_BYTES = 24
    FRAME_ALIGN = 8
    FRAME_MAGIC = 0xA7
    FRAME_TYPE_DATA = 1


cdef inline Py_ssize_t frame_bytes(Py_ssize_t payload_bytes) noexcept nogil:
    """Bytes a frame of `payload_bytes` occupies on disk: header + payload + padding."""
    return FRAME_HEADER_BYTES + ((payload_bytes + FRAME_ALIGN - 1) & ~(<Py_ssize_t>FRAME_ALIGN - 1))


cdef class FrameBuffer:
    cdef unsigned char* buf
    cdef unsigned char* spare
    cdef Py_ssize_t chunks_alive
    cdef Py_ssize_t cap
    cdef Py_ssize_t used
    cdef uint32_t* starts
    cdef Py_ssize_t count
    cdef Py_ssize_t starts_capacity
    cdef uint64_t first_idx
    cdef uint64_t next_idx
    cdef uint32_t salt
    cdef uint32_t record_bytes_max
    cdef object flush
    cdef object failure

    cdef int _make_room(self, Py_ssize_t need) except -1
    cdef uint64_t _put(self, const unsigned char* pre, Py_ssize_t npre,
                       const unsigned char* data, Py_ssize_t n, uint64_t index) except 0
