"""Contract of haperf._native.raftstore: Raft entries as WAL records (DiskStorage's hot loops).

A record is one header byte (entry type in the low 4 bits, t = number of term bytes in the high
4 bits), the term little-endian in t bytes (0..8, minimal), then the entry's data. See
docs/raft-storage.md. ENTRY_HEADER_BYTES_MAX is the largest header.
"""

from libc.stdint cimport uint64_t

cdef enum:
    ENTRY_HEADER_BYTES_MAX = 9
    ENTRY_TYPE_MAX = 1


cdef int entry_header(unsigned char* out, uint64_t term, int entry_type) noexcept nogil
