"""Contract of haperf._native.callstats: the call counters of the Python-level policies.

CallStats holds uint64 counters that only grow; facades bump them with one attribute
increment per event and read them all at once on scrape (as_dict). Policies whose logic is
native (buckets, slots, deadlines) keep their counters in their own cores instead.
"""

from libc.stdint cimport uint64_t


cdef class CallStats:
    cdef public uint64_t calls
    cdef public uint64_t successes
    cdef public uint64_t failures
    cdef public uint64_t rejections
    cdef public uint64_t timeouts
    cdef public uint64_t fallbacks
    cdef public uint64_t hedges
    cdef public uint64_t cancellations
