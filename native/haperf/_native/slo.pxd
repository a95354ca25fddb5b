"""Contract of haperf._native.slo: good/bad event counts over sliding time windows.

ErrorWindow counts events in time buckets of `bucket_ns` and keeps `buckets` of them, so any
window up to horizon_ns = bucket_ns * (buckets - 1) is answered in O(1): the ring stores the
running totals at the start of each bucket, and a window's counts are the totals now minus the
totals at the start of its first bucket. A window covers the buckets it overlaps, so it is
between (k - 1) and k buckets long for k = ceil(window_ns / bucket_ns). Time is an argument
(now_ns >= 0, else ValueError); an earlier now_ns than the latest one counts into the latest
bucket.
"""

from libc.stdint cimport int64_t, uint64_t


cdef class ErrorWindow:
    cdef readonly int64_t bucket_ns
    cdef readonly Py_ssize_t buckets
    cdef uint64_t* _start_total
    cdef uint64_t* _start_bad
    cdef int64_t _head
    cdef int64_t _origin
    cdef bint _started
    cdef readonly uint64_t total
    cdef readonly uint64_t bad

    cdef void _advance(self, int64_t now_ns) noexcept
