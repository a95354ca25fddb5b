"""Contract of haperf._native.codec: the versioned binary wire format of Raft messages.

One frame carries one haperf._native.raftmsg.Message. The layout is documented byte by byte in
docs/codec.md; in short:

    header (HEADER_BYTES = 12): magic "HR" | version u8 | type u8 | frame_len u32 | crc32c u32
    body: fields u16 (presence bitmap) | present u64 scalars | context | entries | snapshot |
          snap_data

All integers are little-endian and fixed width. The CRC32C covers header bytes 0..7 and the whole
body. Every count and length is bounded by a named constant below, checked when encoding (a
typed error before anything is allocated) and when decoding (before anything is read or
allocated), so a hostile frame can neither read out of bounds nor make the decoder allocate more
than a small multiple of the bytes it was actually given.

Other native modules (the Raft core, a transport) can encode and decode without a Python call:

    from haperf._native cimport codec as _codec
    frame = _codec.encode_message(msg)          # bytes, one frame
    msg = _codec.decode_message(frame)           # exactly one frame (see decode())

Invariants: encode never mutates the message; decode(encode(m)) == m for every message within
the bounds; decoded Entry.data and snap_data longer than COPY_BYTES_MAX (or the caller's
copy_bytes_max) are read-only memoryviews into the decoded buffer, which they keep alive, and
shorter ones are bytes copies.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from haperf._native.raftmsg cimport Message


cdef enum:
    CODEC_VERSION = 1
    # The two magic bytes "HR" (0x48, 0x52): a stream that loses sync fails on the next header.
    CODEC_MAGIC_0 = 0x48
    CODEC_MAGIC_1 = 0x52
    HEADER_BYTES = 12
    # Header plus an empty presence bitmap: the smallest valid frame.
    FRAME_BYTES_MIN = 14
    # Hard bounds (each also fits the u32 length fields with room to spare).
    FRAME_BYTES_MAX = 64 * 1024 * 1024
    ENTRIES_PER_MSG_MAX = 65536
    ENTRY_BYTES_MAX = 16 * 1024 * 1024
    CONTEXT_BYTES_MAX = 65536
    CONF_IDS_MAX = 4096
    SNAP_DATA_BYTES_MAX = 32 * 1024 * 1024
    # Decoded payloads up to this many bytes are copied into bytes; longer ones are zero-copy
    # memoryviews. At these sizes a copy (pymalloc, no GC) costs a fraction of a memoryview
    # (about 11-33 ns against 68 ns measured on CPython 3.11), takes less memory than the
    # memoryview object itself, and does not pin the whole received chunk. 512 is CPython's
    # small-object allocator limit: above it a copy goes to malloc and loses its edge.
    COPY_BYTES_MAX = 512
    # A FrameReader allocates a frame's whole buffer when its header arrives only up to this
    # size; larger frames grow with the bytes actually received (one extra copy at the end).
    FRAME_PREALLOC_BYTES_MAX = 1024 * 1024
    # Fixed-width records.
    ENTRY_RECORD_BYTES = 21       # term u64, index u64, type u8, data_len u32
    SNAPSHOT_FIXED_BYTES = 29     # index u64, term u64, auto_leave u8, 3 x count u32


cdef bytes encode_message(Message msg)
cdef Message decode_message(object frame, Py_ssize_t copy_bytes_max=*)


cdef class FrameReader:
    """Incremental decoder of a byte stream of frames (see codec.pyx)."""
    cdef readonly Py_ssize_t frame_bytes_max
    cdef readonly Py_ssize_t copy_bytes_max
    # Header bytes received before the frame length is known.
    cdef unsigned char _head[HEADER_BYTES]
    cdef Py_ssize_t _head_len
    # The frame being assembled: a bytes object of exactly its length filled in place, or (above
    # FRAME_PREALLOC_BYTES_MAX) a bytearray holding what has arrived so far.
    cdef object _frame
    cdef Py_ssize_t _frame_len
    cdef Py_ssize_t _filled
    cdef object _failure

    cdef int _start_frame(self, const unsigned char* p, Py_ssize_t have, Py_ssize_t length) except -1
    cdef int _append(self, const unsigned char* p, Py_ssize_t take) except -1
    cdef list _guarded(self, object data)
    cdef list _feed(self, object data)
