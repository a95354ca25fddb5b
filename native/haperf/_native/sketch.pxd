"""Contract of haperf._native.sketch: a streaming quantile sketch with relative-error bounds.

LatencySketch maps a value v > 0 to bucket i = ceil(log(v) / log(gamma)), gamma =
(1 + alpha) / (1 - alpha), and answers a quantile with 2 * gamma**i / (1 + gamma), which is
within a relative error alpha of every value in that bucket (the DDSketch construction of
Masson, Rim and Lee, VLDB 2019). Zero goes to its own count. Memory is bounded: at most
`bins_max` buckets are kept; when values span more than that, the LOWEST buckets are merged
into the lowest kept one ("collapse"), so high quantiles keep the guarantee and only quantiles
that fall in collapsed buckets lose it (counted in `collapsed`). Sketches with the same alpha and
bins_max merge exactly (bucket-wise sums).
"""

from libc.stdint cimport int64_t, uint64_t


cdef class LatencySketch:
    cdef readonly double relative_accuracy
    cdef readonly Py_ssize_t bins_max
    cdef double _gamma
    cdef double _inv_log_gamma
    cdef uint64_t* _bins
    cdef int64_t _base
    cdef int64_t _lo
    cdef int64_t _hi
    cdef readonly uint64_t count
    cdef readonly uint64_t zero_count
    cdef readonly uint64_t collapsed
    cdef readonly double sum
    cdef readonly double min
    cdef readonly double max

    cdef void _add_index(self, int64_t index, uint64_t n) noexcept
    cdef void _slide_down(self, int64_t new_base) noexcept
    cdef void _slide_up(self, int64_t new_base) noexcept
    cdef void _add(self, double value, uint64_t n) noexcept
    cdef double _quantile(self, double q) noexcept
