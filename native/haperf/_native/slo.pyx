"""haperf._native.slo: ErrorWindow, O(1) windowed good/bad counts (see slo.pxd).

Invariants: `_head` is the newest bucket number seen; for every bucket b in
(_head - buckets, _head], b >= _origin, the ring slot b % buckets holds the totals at the start
of b; totals only grow.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint64_t

BUCKETS_MAX = 1 << 20


@cython.final
cdef class ErrorWindow:
    """Counts of all and of bad events per window, for windows up to horizon_ns."""

    def __cinit__(self, int64_t bucket_ns, Py_ssize_t buckets):
        if bucket_ns <= 0 or buckets < 2 or buckets > BUCKETS_MAX:
            raise ValueError(
                f"need bucket_ns > 0 and buckets in 2..{BUCKETS_MAX}, got {bucket_ns}, {buckets}"
            )
        self.bucket_ns = bucket_ns
        self.buckets = buckets
        self._start_total = <uint64_t*>PyMem_Malloc(buckets * sizeof(uint64_t))
        self._start_bad = <uint64_t*>PyMem_Malloc(buckets * sizeof(uint64_t))
        if self._start_total == NULL or self._start_bad == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._start_total)
        PyMem_Free(self._start_bad)

    cdef void _advance(self, int64_t now_ns) noexcept:
        cdef int64_t b = now_ns // self.bucket_ns
        cdef int64_t k, first
        if not self._started:
            self._started = True
            self._origin = b
            self._head = b
            self._start_total[b % self.buckets] = 0
            self._start_bad[b % self.buckets] = 0
            return
        if b <= self._head:
            return
        first = self._head + 1
        if b - first >= self.buckets:
            first = b - self.buckets + 1
        for k in range(first, b + 1):
            self._start_total[k % self.buckets] = self.total
            self._start_bad[k % self.buckets] = self.bad
        self._head = b

    def record(self, int64_t now_ns, bint ok, uint64_t n=1):
        """Count n events at now_ns (>= 0), bad unless ok."""
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0 (a monotonic clock reading), got {now_ns}")
        self._advance(now_ns)
        self.total += n
        if not ok:
            self.bad += n

    def counts(self, int64_t now_ns, int64_t window_ns):
        """(all, bad) events in the window of window_ns ending at now_ns."""
        cdef int64_t k, first, slot
        if window_ns <= 0 or window_ns > self.bucket_ns * (self.buckets - 1):
            raise ValueError(
                f"window_ns must be in 1..{self.bucket_ns * (self.buckets - 1)} (the horizon), "
                f"got {window_ns}"
            )
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0 (a monotonic clock reading), got {now_ns}")
        if not self._started:
            return (0, 0)
        self._advance(now_ns)
        k = (window_ns + self.bucket_ns - 1) // self.bucket_ns
        first = self._head - k + 1
        if first <= self._origin:
            return (self.total, self.bad)
        slot = first % self.buckets
        return (self.total - self._start_total[slot], self.bad - self._start_bad[slot])

    @property
    def horizon_ns(self):
        return self.bucket_ns * (self.buckets - 1)
