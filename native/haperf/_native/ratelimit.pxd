"""Contract of haperf._native.ratelimit: token buckets, single and keyed, with counters in C.

TokenBucket holds `tokens` in [0, burst], refilled at `rate_per_s` from the last time it was
read; every method takes the time as integer nanoseconds (`now_ns`) or reads it from the clock
the facade injected (`*_now` methods), never from the system. `queued` is the number of waiters
the asyncio facade holds in FIFO order: while it is non-zero the non-blocking acquires fail, so
a large queued request is never starved by small ones. KeyedBuckets maps keys to buckets in LRU
order, holding at most `keys_max` of them.
"""

from libc.stdint cimport int64_t, uint64_t


cdef class TokenBucket:
    cdef readonly double rate_per_s
    cdef readonly double burst
    cdef double _per_ns
    cdef double _tokens
    cdef int64_t _last_ns
    cdef object _clock
    cdef object _slow
    cdef public Py_ssize_t queued
    cdef readonly uint64_t granted
    cdef readonly uint64_t rejected
    cdef readonly uint64_t refunded

    cdef void _refill(self, int64_t now_ns) noexcept
    cdef bint _take(self, int64_t now_ns, double n) noexcept


cdef class KeyedBuckets:
    cdef readonly double rate_per_s
    cdef readonly double burst
    cdef readonly Py_ssize_t keys_max
    cdef dict _table
    cdef object _clock
    cdef readonly uint64_t granted
    cdef readonly uint64_t rejected
    cdef readonly uint64_t evictions
    cdef readonly uint64_t evictions_lossy

    cdef int _evict_oldest(self, int64_t now_ns) except -1
