"""haperf._native.sketch: LatencySketch, a DDSketch-style quantile sketch (see sketch.pxd).

Store layout: `_bins[k]` counts bucket index `_base + k`, for k in [0, bins_max); the used
indexes are [_lo, _hi]. When a new index does not fit the window, the window slides if the used
range allows it, else the lowest buckets collapse into the lowest kept index. Invariants:
count == zero_count + sum of _bins; _base <= _lo <= _hi < _base + bins_max when count > zero_count.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport ceil, log, pow
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memmove, memset

BINS_MAX_DEFAULT = 2048
BINS_MAX_LIMIT = 1 << 20


@cython.final
cdef class LatencySketch:
    """Quantiles of a stream of non-negative values to within `relative_accuracy`."""

    def __cinit__(self, double relative_accuracy=0.01, Py_ssize_t bins_max=BINS_MAX_DEFAULT):
        if not (0.0 < relative_accuracy < 1.0):
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
        if bins_max < 16 or bins_max > BINS_MAX_LIMIT:
            raise ValueError(f"bins_max must be in 16..{BINS_MAX_LIMIT}, got {bins_max}")
        self.relative_accuracy = relative_accuracy
        self.bins_max = bins_max
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / log(self._gamma)
        self._bins = <uint64_t*>PyMem_Malloc(bins_max * sizeof(uint64_t))
        if self._bins == NULL:
            raise MemoryError()
        memset(self._bins, 0, bins_max * sizeof(uint64_t))
        self.min = 0.0
        self.max = 0.0

    def __dealloc__(self):
        PyMem_Free(self._bins)

    cdef void _add_index(self, int64_t index, uint64_t n) noexcept:
        cdef int64_t width = self.bins_max
        if self.count == self.zero_count:
            # Empty store: centre the window on the first index.
            self._base = index - width // 2
            self._lo = index
            self._hi = index
        elif index < self._base:
            if self._hi - index < width:
                # Slide the window down: everything used still fits.
                self._slide_down(index)
            else:
                # Too low to keep: it joins the lowest bucket the window can hold.
                self._slide_down(self._hi - width + 1)
                index = self._base
                self.collapsed += n
        elif index >= self._base + width:
            if index - self._lo < width:
                self._slide_up(self._lo)
            else:
                self._slide_up(index - width + 1)
        if index < self._lo:
            self._lo = index
        if index > self._hi:
            self._hi = index
        self._bins[index - self._base] += n

    cdef void _slide_down(self, int64_t new_base) noexcept:
        """Move the window down to start at new_base (the used range still fits above it)."""
        cdef int64_t width = self.bins_max
        cdef int64_t shift = self._base - new_base
        if shift <= 0:
            return
        memmove(&self._bins[shift], self._bins, (width - shift) * sizeof(uint64_t))
        memset(self._bins, 0, shift * sizeof(uint64_t))
        self._base = new_base

    cdef void _slide_up(self, int64_t new_base) noexcept:
        """Move the window up to start at new_base, folding buckets below it into new_base."""
        cdef int64_t width = self.bins_max
        cdef int64_t shift = new_base - self._base
        cdef int64_t k
        cdef uint64_t folded = 0
        if shift <= 0:
            return
        if shift >= width:
            for k in range(width):
                folded += self._bins[k]
            memset(self._bins, 0, width * sizeof(uint64_t))
        else:
            for k in range(shift):
                folded += self._bins[k]
            memmove(self._bins, &self._bins[shift], (width - shift) * sizeof(uint64_t))
            memset(&self._bins[width - shift], 0, shift * sizeof(uint64_t))
        self._base = new_base
        if folded:
            self._bins[0] += folded
            self.collapsed += folded
        if self._lo < new_base:
            self._lo = new_base
        if self._hi < new_base:
            self._hi = new_base

    cdef void _add(self, double value, uint64_t n) noexcept:
        if self.count == 0 or value < self.min:
            self.min = value
        if self.count == 0 or value > self.max:
            self.max = value
        self.sum += value * <double>n
        if value <= 0.0:
            self.zero_count += n
        else:
            self._add_index(<int64_t>ceil(log(value) * self._inv_log_gamma), n)
        self.count += n

    def record(self, double value):
        """Add one value (a latency in ns, say). Negative or NaN values are a ValueError."""
        if not value >= 0.0 or value == float("inf"):
            raise ValueError(f"a sketch records finite values >= 0, got {value!r}")
        self._add(value, 1)

    def record_many(self, double value, uint64_t n):
        """Add `value` n times."""
        if not value >= 0.0 or value == float("inf"):
            raise ValueError(f"a sketch records finite values >= 0, got {value!r}")
        if n:
            self._add(value, n)

    cdef double _quantile(self, double q) noexcept:
        cdef double rank = q * <double>(self.count - 1)
        cdef uint64_t seen = self.zero_count
        cdef int64_t k
        if <double>seen > rank:
            return 0.0
        for k in range(self._lo - self._base, self._hi - self._base + 1):
            seen += self._bins[k]
            if <double>seen > rank:
                return 2.0 * pow(self._gamma, <double>(self._base + k)) / (1.0 + self._gamma)
        return self.max

    def quantile(self, double q):
        """The q-quantile (0 <= q <= 1), within relative_accuracy of the exact lower quantile
        sorted[floor(q * (count - 1))]; None when the sketch is empty."""
        if not (0.0 <= q <= 1.0):
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if self.count == 0:
            return None
        return self._quantile(q)

    def merge(self, LatencySketch other not None):
        """Add every value `other` holds (same relative_accuracy and bins_max required)."""
        cdef int64_t k
        if other is self:
            raise ValueError("a sketch cannot merge into itself; merge a copy()")
        if other.relative_accuracy != self.relative_accuracy or other.bins_max != self.bins_max:
            raise ValueError(
                "sketches merge only with the same relative_accuracy and bins_max, got "
                f"{other.relative_accuracy}/{other.bins_max} into "
                f"{self.relative_accuracy}/{self.bins_max}"
            )
        if other.count == 0:
            return
        was_empty = self.count == 0
        if other.count > other.zero_count:
            for k in range(other._lo - other._base, other._hi - other._base + 1):
                if other._bins[k]:
                    self._add_index(other._base + k, other._bins[k])
                    self.count += other._bins[k]
        self.collapsed += other.collapsed
        if was_empty or other.min < self.min:
            self.min = other.min
        if was_empty or other.max > self.max:
            self.max = other.max
        self.zero_count += other.zero_count
        self.count += other.zero_count
        self.sum += other.sum

    def clear(self):
        memset(self._bins, 0, self.bins_max * sizeof(uint64_t))
        self.count = 0
        self.zero_count = 0
        self.collapsed = 0
        self.sum = 0.0
        self.min = 0.0
        self.max = 0.0

    def copy(self):
        cdef LatencySketch out = LatencySketch(self.relative_accuracy, self.bins_max)
        out.merge(self)
        return out

    @property
    def bins_used(self):
        if self.count == self.zero_count:
            return 0
        return self._hi - self._lo + 1
