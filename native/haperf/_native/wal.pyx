"""haperf._native.wal: WAL frames (encode, verify, scan) and FrameBuffer, the append buffer.

Owns the byte layout of a record frame (see wal.pxd and docs/wal.md) and every loop over frames:
encoding appends into one buffer, verifying a frame on read, and the recovery scan that walks a
segment, checks every CRC and classifies its end as clean, torn or corrupt. No I/O here: the
file layer (haperf.wal) passes buffers (bytes, bytearray, mmap) in and writes what it takes out.

Invariants:
- A frame that verifies has a nonzero magic and type, reserved bits 0, length <= the maximum,
  the log's salt, and a CRC32C over its header (from byte 4) and payload that matches.
- FrameBuffer holds whole frames only; `take` hands out a prefix of whole frames and keeps the
  rest. Index numbers are assigned under the GIL in append order and never reused unless the
  file layer calls `reset` (after a truncation) with a lower next index.
- The recovery scan releases the GIL (it reads a buffer export held for the whole call).
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_FillInfo,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport UINT64_MAX, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove, memset

from haperf._native cimport crc32c as _crc
from haperf.errors import RecordTooLargeError, WALIndexError

_crc.crc32c_init()

HEADER_BYTES = FRAME_HEADER_BYTES
ALIGN = FRAME_ALIGN
MAGIC = FRAME_MAGIC
TYPE_DATA = FRAME_TYPE_DATA
# A record can be at most this long whatever the configuration: its length field is 32 bits and
# offsets inside a segment are 32 bits too.
RECORD_BYTES_LIMIT = (1 << 31) - 64
# How many times one append lets the flush callback drain the buffer before giving up (other
# threads can refill the buffer while the callback runs without the GIL).
FLUSH_RETRIES_MAX = 64

# Scan outcomes.
cdef enum:
    S_CLEAN = 0     # the records end, and every byte after them is zero
    S_TORN = 1      # a damaged frame at the end and no frame that verifies after it
    S_CORRUPT = 2   # a damaged or out-of-sequence frame, or one followed by a frame that verifies
    S_LIMIT = 3     # stopped after the stop index (a pending truncation)

SCAN_CLEAN = S_CLEAN
SCAN_TORN = S_TORN
SCAN_CORRUPT = S_CORRUPT
SCAN_LIMIT = S_LIMIT

# Reasons a frame does not verify (0 is "verifies").
cdef enum:
    R_OK = 0
    R_SHORT = 1
    R_ZERO = 2
    R_MAGIC = 3
    R_TYPE = 4
    R_RESERVED = 5
    R_LENGTH = 6
    R_PAST_END = 7
    R_CRC = 8
    R_SALT = 9
    R_INDEX = 10
    R_PADDING = 11

_REASONS = {
    R_SHORT: "a partial header at the end of the segment",
    R_ZERO: "a zero-filled header",
    R_MAGIC: "a bad magic byte",
    R_TYPE: "an unknown record type",
    R_RESERVED: "reserved header bits set",
    R_LENGTH: "a length above record_bytes_max",
    R_PAST_END: "a frame that runs past the end of the segment",
    R_CRC: "a checksum mismatch",
    R_SALT: "a frame of another log (salt mismatch)",
    R_INDEX: "an out-of-sequence index",
    R_PADDING: "nonzero padding after the payload",
}


def reason_text(int code):
    """The sentence for a scan reason code."""
    return _REASONS.get(code, f"reason {code}")


cdef inline uint32_t _ld32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t _ld64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>_ld32(p)) | ((<uint64_t>_ld32(p + 4)) << 32)


cdef inline void _st32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>v
    p[1] = <unsigned char>(v >> 8)
    p[2] = <unsigned char>(v >> 16)
    p[3] = <unsigned char>(v >> 24)


cdef inline void _st64(unsigned char* p, uint64_t v) noexcept nogil:
    _st32(p, <uint32_t>v)
    _st32(p + 4, <uint32_t>(v >> 32))


cdef inline void _encode(unsigned char* p, const unsigned char* pre, Py_ssize_t npre,
                         const unsigned char* data, Py_ssize_t n,
                         uint64_t index, uint32_t salt) noexcept nogil:
    """Write one frame at p whose payload is pre[0:npre] + data[0:n] (padding zeroed)."""
    cdef Py_ssize_t total = npre + n
    cdef Py_ssize_t padded = frame_bytes(total) - FRAME_HEADER_BYTES
    _st32(p + 4, <uint32_t>total)
    _st64(p + 8, index)
    p[16] = FRAME_TYPE_DATA
    p[17] = FRAME_MAGIC
    p[18] = 0
    p[19] = 0
    _st32(p + 20, salt)
    if npre:
        memcpy(p + FRAME_HEADER_BYTES, pre, <size_t>npre)
    if n:
        memcpy(p + FRAME_HEADER_BYTES + npre, data, <size_t>n)
    if padded > total:
        memset(p + FRAME_HEADER_BYTES + total, 0, <size_t>(padded - total))
    # Header bytes 4..24 and the payload are contiguous: one CRC call covers both.
    _st32(p, _crc.crc32c_extend(0, p + 4, <size_t>(FRAME_HEADER_BYTES - 4 + total)))


cdef inline bint _all_zero(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i]:
            return False
    return True


cdef int _check(const unsigned char* base, Py_ssize_t off, Py_ssize_t end, uint32_t salt,
                uint32_t record_bytes_max, uint64_t* index_out, Py_ssize_t* size_out) noexcept nogil:
    """Verify the frame at base+off (the buffer ends at base+end); 0 or an R_* reason."""
    cdef const unsigned char* p = base + off
    cdef uint32_t n
    cdef Py_ssize_t size
    cdef uint32_t crc
    if end - off < FRAME_HEADER_BYTES:
        if _all_zero(p, end - off):
            return R_ZERO
        return R_SHORT
    if p[17] != FRAME_MAGIC:
        if _all_zero(p, FRAME_HEADER_BYTES):
            return R_ZERO
        return R_MAGIC
    if p[16] != FRAME_TYPE_DATA:
        return R_TYPE
    if p[18] != 0 or p[19] != 0:
        return R_RESERVED
    n = _ld32(p + 4)
    if n > record_bytes_max:
        return R_LENGTH
    size = frame_bytes(<Py_ssize_t>n)
    if size > end - off:
        return R_PAST_END
    crc = _crc.crc32c_extend(0, p + 4, <size_t>(FRAME_HEADER_BYTES - 4) + n)
    if crc != _ld32(p):
        return R_CRC
    if not _all_zero(p + FRAME_HEADER_BYTES + n, size - FRAME_HEADER_BYTES - <Py_ssize_t>n):
        return R_PADDING
    if _ld32(p + 20) != salt:
        return R_SALT
    index_out[0] = _ld64(p + 8)
    size_out[0] = size
    return R_OK


cdef Py_ssize_t _data_end(const unsigned char* base, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """One past the last nonzero byte in [start, end), or start when the range is all zero."""
    cdef Py_ssize_t i = end
    while i > start and i - 8 >= start and (_ld64(base + i - 8) == 0):
        i -= 8
    while i > start and base[i - 1] == 0:
        i -= 1
    return i


cdef class _Buffer:
    """A held buffer export (PyBUF_SIMPLE) released when the object dies."""
    cdef Py_buffer view
    cdef bint held

    def __cinit__(self, object obj):
        PyObject_GetBuffer(obj, &self.view, PyBUF_SIMPLE)
        self.held = True

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


def scan(object buf, Py_ssize_t start, uint64_t first_index, uint32_t salt,
         uint32_t record_bytes_max, uint64_t stop_index=UINT64_MAX):
    """Walk the frames of a segment image from `start`, verifying each one.

    Returns (status, end, count, offsets, reason, next_valid, data_end): status is a SCAN_*
    value; `end` is the offset after the last good frame (where the damage is for TORN and
    CORRUPT); `offsets` are the `count` frame offsets as native uint32 bytes (array('I')); reason
    is an R_* code (0 when clean); next_valid is the offset of the first frame that verifies
    after the damage (-1 if none); data_end is one past the last nonzero byte of the image.
    Frames must carry first_index, first_index + 1, ... in order; the scan stops before a frame
    whose index exceeds stop_index (SCAN_LIMIT).
    """
    cdef _Buffer held = _Buffer(buf)
    cdef const unsigned char* base = <const unsigned char*>held.view.buf
    cdef Py_ssize_t end = held.view.len
    cdef Py_ssize_t off = start
    cdef uint64_t expected = first_index
    cdef uint64_t index = 0
    cdef Py_ssize_t size = 0
    cdef int reason = R_OK
    cdef int status = S_CLEAN
    cdef Py_ssize_t next_valid = -1
    cdef Py_ssize_t data_end = -1
    cdef Py_ssize_t probe
    cdef uint64_t probe_index
    cdef Py_ssize_t probe_size
    cdef int probe_reason
    cdef uint32_t* offsets = NULL
    cdef uint32_t* grown
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t cap = 0
    cdef bint oom = False
    if start < 0 or start > end or end > 0xFFFFFFFF:
        raise ValueError(f"scan start {start} outside a buffer of {end} bytes (max 4 GiB)")
    with nogil:
        while True:
            if off >= end:
                status = S_CLEAN
                break
            if expected > stop_index:
                status = S_LIMIT
                break
            reason = _check(base, off, end, salt, record_bytes_max, &index, &size)
            if reason == R_OK and index != expected:
                reason = R_INDEX
            if reason != R_OK:
                break
            if count == cap:
                cap = 1024 if cap == 0 else cap * 2
                grown = <uint32_t*>realloc(offsets, <size_t>cap * sizeof(uint32_t))
                if grown == NULL:
                    oom = True
                    break
                offsets = grown
            offsets[count] = <uint32_t>off
            count += 1
            off += size
            expected += 1
        if not oom and status == S_CLEAN and reason != R_OK:
            data_end = _data_end(base, off, end)
            if reason == R_SALT or reason == R_INDEX:
                # A frame that verifies but does not belong here: never a torn write.
                status = S_CORRUPT
                next_valid = off
            elif reason == R_ZERO and data_end <= off:
                status = S_CLEAN
                reason = R_OK
            else:
                status = S_TORN
                probe = off + FRAME_ALIGN
                while probe + FRAME_HEADER_BYTES <= data_end:
                    if base[probe + 17] == FRAME_MAGIC and base[probe + 16] == FRAME_TYPE_DATA:
                        probe_reason = _check(base, probe, end, salt, record_bytes_max,
                                              &probe_index, &probe_size)
                        if probe_reason == R_OK or probe_reason == R_SALT:
                            status = S_CORRUPT
                            next_valid = probe
                            break
                    probe += FRAME_ALIGN
        if data_end < 0 and not oom:
            data_end = _data_end(base, off, end)
    try:
        if oom:
            raise MemoryError("scan could not grow its offset table")
        out = PyBytes_FromStringAndSize(<const char*>offsets, count * sizeof(uint32_t))
    finally:
        free(offsets)
    return (status, off, count, out, reason, next_valid, data_end)


def encode(object data, uint64_t index, uint32_t salt):
    """One frame as bytes (tests, tools and baselines; the WAL uses FrameBuffer)."""
    cdef _Buffer held = _Buffer(data)
    cdef Py_ssize_t n = held.view.len
    if n > RECORD_BYTES_LIMIT:
        raise ValueError(f"record of {n} bytes exceeds the format limit {RECORD_BYTES_LIMIT}")
    out = PyBytes_FromStringAndSize(NULL, frame_bytes(n))
    _encode(<unsigned char*>PyBytes_AS_STRING(out), NULL, 0,
            <const unsigned char*>held.view.buf, n, index, salt)
    return out


def verify(object buf, Py_ssize_t offset, uint64_t index, uint32_t salt, uint32_t record_bytes_max):
    """Check the frame at `offset` of `buf` is record `index`; return its payload length.

    Raises ValueError naming the reason when it does not verify.
    """
    cdef _Buffer held = _Buffer(buf)
    cdef uint64_t got = 0
    cdef Py_ssize_t size = 0
    cdef int reason
    if offset < 0 or offset > held.view.len:
        raise ValueError(f"offset {offset} outside a buffer of {held.view.len} bytes")
    reason = _check(<const unsigned char*>held.view.buf, offset, held.view.len, salt,
                    record_bytes_max, &got, &size)
    if reason == R_OK and got != index:
        raise ValueError(f"{_REASONS[R_INDEX]}: frame holds index {got}, expected {index}")
    if reason != R_OK:
        raise ValueError(_REASONS.get(reason, "damaged frame"))
    return _ld32(<const unsigned char*>held.view.buf + offset + 4)


def read(object buf, Py_ssize_t offset, uint64_t index, uint32_t salt, uint32_t record_bytes_max):
    """The payload of the frame at `offset` as bytes, after verifying it (see verify)."""
    cdef _Buffer held = _Buffer(buf)
    cdef uint64_t got = 0
    cdef Py_ssize_t size = 0
    cdef int reason
    if offset < 0 or offset > held.view.len:
        raise ValueError(f"offset {offset} outside a buffer of {held.view.len} bytes")
    cdef const unsigned char* p = <const unsigned char*>held.view.buf
    reason = _check(p, offset, held.view.len, salt, record_bytes_max, &got, &size)
    if reason == R_OK and got != index:
        raise ValueError(f"{_REASONS[R_INDEX]}: frame holds index {got}, expected {index}")
    if reason != R_OK:
        raise ValueError(_REASONS.get(reason, "damaged frame"))
    return PyBytes_FromStringAndSize(<const char*>p + offset + FRAME_HEADER_BYTES,
                                     _ld32(p + offset + 4))


@cython.final
cdef class _Chunk:
    """Read-only buffer over frames taken from a FrameBuffer, without a copy.

    Keeps its FrameBuffer alive and counted in `chunks_alive`, so that memory is not reused
    for new frames while this object exists.
    """
    cdef FrameBuffer owner
    cdef unsigned char* data
    cdef Py_ssize_t size

    def __cinit__(self, FrameBuffer owner):
        self.owner = owner
        owner.chunks_alive += 1

    def __dealloc__(self):
        if self.owner is not None:
            self.owner.chunks_alive -= 1

    def __getbuffer__(self, Py_buffer* view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("a WAL chunk is read-only")
        PyBuffer_FillInfo(view, self, self.data, self.size, 1, flags)

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def __len__(self):
        return self.size


cdef inline _Chunk _new_chunk(FrameBuffer owner, unsigned char* data, Py_ssize_t size):
    cdef _Chunk chunk = _Chunk(owner)
    chunk.data = data
    chunk.size = size
    return chunk


@cython.final
cdef class FrameBuffer:
    """Frames appended records into one buffer; the file layer takes whole frames out.

    `flush` is called (with no arguments, holding the GIL on entry) when a frame does not fit;
    it must drain the buffer with `take`. capacity must hold at least one frame of
    record_bytes_max bytes, so any single record fits an empty buffer.
    """

    def __cinit__(self, Py_ssize_t capacity, uint32_t record_bytes_max, uint64_t next_index,
                  uint32_t salt, object flush):
        if record_bytes_max < 1 or record_bytes_max > RECORD_BYTES_LIMIT:
            raise ValueError(
                f"record_bytes_max must be in 1..{RECORD_BYTES_LIMIT}, got {record_bytes_max}")
        if capacity < frame_bytes(record_bytes_max) or capacity > 0xFFFFFFFF:
            raise ValueError(
                f"buffer capacity {capacity} must hold one frame of record_bytes_max "
                f"({frame_bytes(record_bytes_max)} bytes) and be below 4 GiB")
        if next_index < 1:
            raise ValueError("record indexes start at 1")
        self.buf = <unsigned char*>malloc(<size_t>capacity)
        self.spare = <unsigned char*>malloc(<size_t>capacity)
        self.chunks_alive = 0
        self.starts_capacity = capacity // FRAME_HEADER_BYTES + 1
        self.starts = <uint32_t*>malloc(<size_t>self.starts_capacity * sizeof(uint32_t))
        if self.buf == NULL or self.spare == NULL or self.starts == NULL:
            raise MemoryError(f"cannot allocate a WAL buffer of {capacity} bytes")
        self.cap = capacity
        self.used = 0
        self.count = 0
        self.first_idx = next_index
        self.next_idx = next_index
        self.salt = salt
        self.record_bytes_max = record_bytes_max
        self.flush = flush
        self.failure = None

    def __dealloc__(self):
        free(self.buf)
        free(self.spare)
        free(self.starts)

    cdef int _make_room(self, Py_ssize_t need) except -1:
        cdef int tries = 0
        while self.cap - self.used < need:
            if tries == FLUSH_RETRIES_MAX:
                raise RuntimeError(
                    f"WAL buffer stayed full after {FLUSH_RETRIES_MAX} flushes (other threads "
                    "refill it faster than it drains); use a larger buffer_bytes")
            tries += 1
            self.flush()
            if self.failure is not None:
                raise self.failure.with_traceback(None)
        return 0

    cdef uint64_t _put(self, const unsigned char* pre, Py_ssize_t npre,
                       const unsigned char* data, Py_ssize_t n, uint64_t index) except 0:
        cdef Py_ssize_t size
        cdef uint64_t assigned
        if self.failure is not None:
            raise self.failure.with_traceback(None)
        if npre + n > self.record_bytes_max:
            raise RecordTooLargeError(
                f"record of {npre + n} bytes exceeds record_bytes_max={self.record_bytes_max}; "
                "split it or open the WAL with a larger record_bytes_max")
        size = frame_bytes(npre + n)
        if self.cap - self.used < size:
            self._make_room(size)
        if index != 0 and index != self.next_idx:
            raise WALIndexError(
                f"append of index {index}, but the next index is {self.next_idx} "
                "(appends are contiguous; truncate_after() first to overwrite)")
        assigned = self.next_idx
        _encode(self.buf + self.used, pre, npre, data, n, assigned, self.salt)
        self.starts[self.count] = <uint32_t>self.used
        self.count += 1
        self.used += size
        self.next_idx = assigned + 1
        return assigned

    def append(self, object data, uint64_t index=0):
        """Frame one record; return its index. `index`, when given, must be the next index."""
        cdef Py_buffer view
        cdef uint64_t out
        if PyBytes_CheckExact(data):
            return self._put(NULL, 0, <const unsigned char*>PyBytes_AS_STRING(data),
                             PyBytes_GET_SIZE(data), index)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            out = self._put(NULL, 0, <const unsigned char*>view.buf, view.len, index)
        finally:
            PyBuffer_Release(&view)
        return out

    def append_batch(self, list items, uint64_t index=0):
        """Frame every record of `items` in order; return the last index.

        Every record is checked against record_bytes_max before any is appended (all or
        nothing). A batch that fits in the buffer is framed in one piece under the GIL, so its
        indexes are contiguous even with other threads appending; a larger one is framed in
        pieces, between which other threads' records can land. With `index`, the first record
        must get that index.
        """
        cdef tuple records = tuple(items)
        cdef Py_ssize_t i, n = len(records)
        cdef Py_ssize_t total = 0, size
        cdef object item
        cdef uint64_t last = 0
        cdef Py_buffer view
        if n == 0:
            raise ValueError("append_batch needs at least one record")
        for i in range(n):
            item = records[i]
            if PyBytes_CheckExact(item):
                size = PyBytes_GET_SIZE(item)
            else:
                PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                size = view.len
                PyBuffer_Release(&view)
            if size > self.record_bytes_max:
                raise RecordTooLargeError(
                    f"record {i} of the batch is {size} bytes, above record_bytes_max="
                    f"{self.record_bytes_max}; nothing of the batch was appended")
            total += frame_bytes(size)
        if self.failure is not None:
            raise self.failure.with_traceback(None)
        if total <= self.cap and self.cap - self.used < total:
            self._make_room(total)
        if index != 0 and index != self.next_idx:
            raise WALIndexError(
                f"append of index {index}, but the next index is {self.next_idx} "
                "(appends are contiguous; truncate_after() first to overwrite)")
        for i in range(n):
            item = records[i]
            if PyBytes_CheckExact(item):
                last = self._put(NULL, 0, <const unsigned char*>PyBytes_AS_STRING(item),
                                 PyBytes_GET_SIZE(item), 0)
            else:
                PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                try:
                    last = self._put(NULL, 0, <const unsigned char*>view.buf, view.len, 0)
                finally:
                    PyBuffer_Release(&view)
        return last

    def take(self, Py_ssize_t max_bytes, uint32_t base_offset):
        """Remove the longest prefix of whole frames that fits in max_bytes.

        Returns (chunk, first_index, count, offsets) where offsets are base_offset + the frame
        positions in chunk, as native uint32 bytes; None when the buffer is empty. count is 0
        when even the first frame does not fit.
        """
        cdef Py_ssize_t k, i, taken
        cdef uint32_t* offs
        cdef uint64_t first
        cdef object chunk
        cdef unsigned char* swap
        if self.count == 0:
            return None
        if self.used <= max_bytes:
            k = self.count
            taken = self.used
        else:
            k = 0
            while k < self.count:
                taken = self.starts[k + 1] if k + 1 < self.count else self.used
                if taken > max_bytes:
                    break
                k += 1
            taken = self.starts[k] if k < self.count else self.used
        if <uint64_t>base_offset + <uint64_t>taken > 0xFFFFFFFF:
            raise ValueError("segment offsets must stay below 4 GiB")
        first = self.first_idx
        if k == 0:
            return (b"", first, 0, b"")
        if k == self.count and self.chunks_alive == 0:
            # Hand the buffer itself out and continue in the spare one: no copy. The spare is
            # free because no chunk of it is alive (the file layer drops each after writing).
            chunk = _new_chunk(self, self.buf, taken)
            swap = self.buf
            self.buf = self.spare
            self.spare = swap
        else:
            chunk = PyBytes_FromStringAndSize(<const char*>self.buf, taken)
        offsets = PyBytes_FromStringAndSize(NULL, k * sizeof(uint32_t))
        offs = <uint32_t*>PyBytes_AS_STRING(offsets)
        for i in range(k):
            offs[i] = base_offset + self.starts[i]
        if k < self.count:
            memmove(self.buf, self.buf + taken, <size_t>(self.used - taken))
            for i in range(self.count - k):
                self.starts[i] = self.starts[i + k] - <uint32_t>taken
        self.count -= k
        self.used -= taken
        self.first_idx = first + <uint64_t>k
        return (chunk, first, k, offsets)

    def read(self, uint64_t index):
        """The payload of a record still in the buffer, as bytes (KeyError if not here)."""
        cdef Py_ssize_t at
        cdef const unsigned char* p
        if index < self.first_idx or index >= self.next_idx:
            raise KeyError(index)
        at = self.starts[<Py_ssize_t>(index - self.first_idx)]
        p = self.buf + at
        return PyBytes_FromStringAndSize(<const char*>p + FRAME_HEADER_BYTES, _ld32(p + 4))

    def reset(self, uint64_t next_index):
        """Drop every buffered frame; the next append gets `next_index`."""
        if next_index < 1:
            raise ValueError("record indexes start at 1")
        self.used = 0
        self.count = 0
        self.first_idx = next_index
        self.next_idx = next_index

    def fail(self, object exc):
        """From now on every append raises `exc` (poisoned or closed)."""
        self.failure = exc

    @property
    def failed(self):
        """The exception appends raise, or None."""
        return self.failure

    @property
    def next_index(self):
        return self.next_idx

    @property
    def first_index(self):
        """Index of the oldest buffered record (== next_index when empty)."""
        return self.first_idx

    @property
    def pending_bytes(self):
        return self.used

    @property
    def pending_count(self):
        return self.count

    @property
    def capacity(self):
        return self.cap
