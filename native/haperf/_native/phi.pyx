"""haperf._native.phi: the phi-accrual failure detector (Hayashibara et al., 2004) in Cython.

Owns PhiAccrualDetector (one monitored node), DetectorBank (many nodes in numpy arrays) and
AdaptiveThreshold (a threshold learned from the phi values seen at heartbeat arrival). The layout
is in phi.pxd, the arithmetic in haperf_phi.h; the public facade is haperf.detect.

Invariants:
- Time is int64 nanoseconds given by the caller (or read from an injected clock by the *_now
  methods); a heartbeat older than the last one is ignored and counted (ignored_backwards), it
  never changes the window. Inter-arrival intervals are clamped to INTERVAL_NS_MAX.
- Window sums are exact integers (sum in int64, sum of squares in 128 bits), so mean and variance
  are recomputed exactly after any number of heartbeats; nothing accumulates rounding error.
- phi(now) is finite, >= 0, never NaN, and non-decreasing in now between two heartbeats; before
  the first heartbeat it is 0 (as in Akka: a node never heard from is not suspected).
- A state change (ALIVE, SUSPECT, FAILED) is reported once, to on_transition, when state() or a
  heartbeat observes it.
"""

cimport cython
from cpython.long cimport PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, exp, fabs, isnan, log
from libc.stdint cimport INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memset

import numpy as np
from operator import index as _index

from haperf.errors import ConfigError, DetectorInputError, UnknownNodeError

globals().update(NodeState.__members__)

INTERVAL_NS_MAX = HAPERF_PHI_INTERVAL_NS_MAX
WINDOW_SIZE_MAX = HAPERF_PHI_WINDOW_MAX
DISTRIBUTIONS = ("normal", "exponential", "hybrid")
DEFAULT_TAIL_WEIGHT = 1e-6

# AdaptiveThreshold histogram: phi in [0, PHI_HISTOGRAM_MAX) in bins of 1/BINS_PER_PHI; larger
# values share the last bin. Counts are halved when ADAPTIVE_SAMPLES_MAX is reached.
BINS_PER_PHI = 32
PHI_HISTOGRAM_MAX = 32
ADAPTIVE_SAMPLES_MAX = 1 << 20
ADAPTIVE_WARMUP_MIN = 100
cdef int32_t _BINS = BINS_PER_PHI * PHI_HISTOGRAM_MAX
cdef double _BINS_PER_PHI = BINS_PER_PHI

# Bank capacity bound: 2**24 nodes (with the default window that is ~27 GB, far past any use).
BANK_CAPACITY_MAX = 1 << 24

cdef tuple _STATES = (NodeState.ALIVE, NodeState.SUSPECT, NodeState.FAILED)
_default_clock = None


def set_default_clock(clock):
    """Install the clock the *_now methods use when a detector has none (the facade does this)."""
    global _default_clock
    if clock is not None and not callable(clock):
        raise ConfigError(f"clock must be a callable returning int ns, got {type(clock).__name__}")
    _default_clock = clock


cdef int _distribution_id(str name) except -1:
    if name == "normal":
        return HAPERF_PHI_NORMAL
    if name == "exponential":
        return HAPERF_PHI_EXPONENTIAL
    if name == "hybrid":
        return HAPERF_PHI_HYBRID
    raise ConfigError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {name!r}")


cdef int _check_params(haperf_phi_params* p, str distribution, double threshold,
                       double failed_threshold, int64_t window_size, int64_t min_std_deviation_ns,
                       int64_t acceptable_heartbeat_pause_ns, int64_t first_heartbeat_estimate_ns,
                       double tail_weight) except -1:
    if not (threshold > 0.0) or threshold != threshold or threshold == float("inf"):
        raise ConfigError(f"threshold must be a finite phi > 0, got {threshold!r}")
    if not (failed_threshold >= threshold) or failed_threshold == float("inf"):
        raise ConfigError(
            f"failed_threshold must be finite and >= threshold ({threshold}), "
            f"got {failed_threshold!r}"
        )
    if not 1 <= window_size <= HAPERF_PHI_WINDOW_MAX:
        raise ConfigError(f"window_size must be in 1..{HAPERF_PHI_WINDOW_MAX}, got {window_size}")
    if not 1 <= min_std_deviation_ns <= HAPERF_PHI_INTERVAL_NS_MAX:
        raise ConfigError(
            f"min_std_deviation_ns must be in 1..{HAPERF_PHI_INTERVAL_NS_MAX} ns, "
            f"got {min_std_deviation_ns}"
        )
    if not 0 <= acceptable_heartbeat_pause_ns <= HAPERF_PHI_INTERVAL_NS_MAX:
        raise ConfigError(
            f"acceptable_heartbeat_pause_ns must be in 0..{HAPERF_PHI_INTERVAL_NS_MAX} ns, "
            f"got {acceptable_heartbeat_pause_ns}"
        )
    if not 1 <= first_heartbeat_estimate_ns <= HAPERF_PHI_INTERVAL_NS_MAX:
        raise ConfigError(
            f"first_heartbeat_estimate_ns must be in 1..{HAPERF_PHI_INTERVAL_NS_MAX} ns, "
            f"got {first_heartbeat_estimate_ns}"
        )
    if not (0.0 < tail_weight < 1.0):
        raise ConfigError(f"tail_weight must be in (0, 1), got {tail_weight!r}")
    p.distribution = _distribution_id(distribution)
    p.acceptable_pause_ns = <double>acceptable_heartbeat_pause_ns
    p.min_sd_ns = <double>min_std_deviation_ns
    p.ln_tail_weight = log(tail_weight)
    p.ln_body_weight = log(1.0 - tail_weight)
    return 0


cdef inline int64_t _ns(object t) except? -1:
    # Times and node ids are ints (or integer-like objects such as numpy.int64). A float, NaN
    # included, is a TypeError: Cython's own int64 conversion would silently truncate it.
    if PyLong_CheckExact(t):
        return t
    return _index(t)


cdef inline double _dt(int64_t now_ns, int64_t last_ns) noexcept nogil:
    # now - last without signed overflow; a time before the last heartbeat counts as 0.
    if now_ns <= last_ns:
        return 0.0
    return <double>(<uint64_t>now_ns - <uint64_t>last_ns)


cdef inline int64_t _interval(int64_t now_ns, int64_t last_ns) noexcept nogil:
    # Caller guarantees now_ns >= last_ns.
    cdef uint64_t d = <uint64_t>now_ns - <uint64_t>last_ns
    if d > <uint64_t>HAPERF_PHI_INTERVAL_NS_MAX:
        return HAPERF_PHI_INTERVAL_NS_MAX
    return <int64_t>d


cdef inline int8_t _classify(double phi, double threshold, double failed) noexcept nogil:
    if phi >= failed:
        return FAILED
    if phi >= threshold:
        return SUSPECT
    return ALIVE


@cython.final
cdef class AdaptiveThreshold:
    """A suspicion threshold learned from phi values observed at heartbeat arrival.

    Each arrival's phi is the highest phi that interval reached (phi only rises between
    heartbeats), so a threshold T would have falsely suspected exactly the intervals whose arrival
    phi was >= T. update(phi) records one arrival and moves `threshold` to the smallest histogram
    edge T whose share of arrivals at or above it is <= target_rate, clamped to [threshold_min,
    threshold_max]. Until warmup_samples arrivals are seen it reports fallback_threshold. Counts
    are halved whenever samples_max arrivals are counted, so the estimate follows a changing
    network. The boundary bin usually moves by a bin or none per update; at most one sweep of
    the bins (an outlier after a long quiet stretch).
    """

    def __cinit__(self, double target_rate, *, double fallback_threshold=8.0,
                  double threshold_min=1.0, double threshold_max=16.0,
                  warmup_samples=None, int64_t samples_max=ADAPTIVE_SAMPLES_MAX):
        if not (0.0 < target_rate < 1.0):
            raise ConfigError(
                f"target_rate must be a fraction of heartbeats in (0, 1), got {target_rate!r}"
            )
        if not (0.0 < threshold_min <= threshold_max) or threshold_max == float("inf"):
            raise ConfigError(
                f"need 0 < threshold_min <= threshold_max < inf, got {threshold_min!r}, "
                f"{threshold_max!r}"
            )
        if not (threshold_min <= fallback_threshold <= threshold_max):
            raise ConfigError(
                f"fallback_threshold must be in [threshold_min, threshold_max], "
                f"got {fallback_threshold!r}"
            )
        if not 2 <= samples_max <= (1 << 40):
            raise ConfigError(f"samples_max must be in 2..2**40, got {samples_max}")
        cdef int64_t warmup
        if warmup_samples is None:
            warmup = max(ADAPTIVE_WARMUP_MIN, int(1.0 / target_rate + 0.5))
            warmup = min(warmup, samples_max // 2)
        else:
            warmup = warmup_samples
            if not 0 <= warmup <= samples_max // 2:
                raise ConfigError(
                    f"warmup_samples must be in 0..samples_max/2 ({samples_max // 2}), got {warmup}"
                )
        self._counts = <int64_t*>PyMem_Malloc(_BINS * sizeof(int64_t))
        if self._counts == NULL:
            raise MemoryError()
        memset(self._counts, 0, _BINS * sizeof(int64_t))
        self.target_rate = target_rate
        self.fallback_threshold = fallback_threshold
        self.threshold_min = threshold_min
        self.threshold_max = threshold_max
        self.threshold = fallback_threshold
        self._warmup_samples = warmup
        self._samples_max = samples_max
        self._total = 0
        self._above = 0
        self._index = _BINS

    def __dealloc__(self):
        PyMem_Free(self._counts)

    cpdef double update(self, double phi) except -1.0:
        """Record the phi seen at one heartbeat arrival; return the threshold now in use."""
        cdef int32_t b
        if isnan(phi) or phi < 0.0:
            raise DetectorInputError(f"phi must be a number >= 0, got {phi!r}; value not recorded")
        if phi >= PHI_HISTOGRAM_MAX:
            b = _BINS - 1
        else:
            b = <int32_t>(phi * _BINS_PER_PHI)
        self._counts[b] += 1
        self._total += 1
        if b >= self._index:
            self._above += 1
        if self._total >= self._samples_max:
            self._halve()
        self._settle()
        return self.threshold

    cdef void _settle(self) noexcept:
        # Smallest index t with (arrivals in bins >= t) <= target_rate * total.
        cdef double allowed = self.target_rate * <double>self._total
        cdef double t
        while self._above > allowed and self._index < _BINS:
            self._above -= self._counts[self._index]
            self._index += 1
        while self._index > 0 and self._above + self._counts[self._index - 1] <= allowed:
            self._index -= 1
            self._above += self._counts[self._index]
        if self._total < self._warmup_samples:
            self.threshold = self.fallback_threshold
            return
        t = <double>self._index / _BINS_PER_PHI
        if t < self.threshold_min:
            t = self.threshold_min
        elif t > self.threshold_max:
            t = self.threshold_max
        self.threshold = t

    cdef void _halve(self) noexcept:
        cdef int32_t i
        self._total = 0
        self._above = 0
        for i in range(_BINS):
            self._counts[i] >>= 1
            self._total += self._counts[i]
            if i >= self._index:
                self._above += self._counts[i]

    @property
    def samples(self):
        """Arrivals currently counted (halved whenever samples_max is reached)."""
        return self._total

    @property
    def warmup_samples(self):
        return self._warmup_samples

    @property
    def learned_threshold(self):
        """The histogram edge before warm-up and clamping (what the data alone say)."""
        return <double>self._index / _BINS_PER_PHI

    def would_suspect_fraction(self, double threshold):
        """Share of recorded arrivals whose phi was >= threshold (histogram resolution)."""
        cdef int32_t i, start
        cdef int64_t n = 0
        if self._total == 0:
            return 0.0
        start = <int32_t>min(max(threshold * _BINS_PER_PHI, 0.0), <double>_BINS)
        for i in range(start, _BINS):
            n += self._counts[i]
        return n / <double>self._total


@cython.final
cdef class PhiAccrualDetector:
    """Phi-accrual failure detector for one monitored node.

    heartbeat(now_ns) records an arrival; phi(now_ns) is the suspicion level; state(now_ns) maps
    it to ALIVE / SUSPECT / FAILED and reports changes to on_transition(old, new, now_ns, phi).
    All times are int64 ns. See haperf.detect for the guide and docs/failure-detection.md.
    """

    def __cinit__(
        self,
        *,
        double threshold=8.0,
        double failed_threshold=16.0,
        int64_t window_size=200,
        int64_t min_std_deviation_ns=100_000_000,
        int64_t acceptable_heartbeat_pause_ns=0,
        int64_t first_heartbeat_estimate_ns=1_000_000_000,
        str distribution="normal",
        double tail_weight=DEFAULT_TAIL_WEIGHT,
        target_false_suspicion_rate=None,
        double adaptive_threshold_min=1.0,
        on_transition=None,
        clock=None,
    ):
        _check_params(&self._params, distribution, threshold, failed_threshold, window_size,
                      min_std_deviation_ns, acceptable_heartbeat_pause_ns,
                      first_heartbeat_estimate_ns, tail_weight)
        if on_transition is not None and not callable(on_transition):
            raise ConfigError("on_transition must be callable(old, new, now_ns, phi) or None")
        if clock is not None and not callable(clock):
            raise ConfigError("clock must be a callable returning int ns, or None")
        self._window = <int32_t>window_size
        self._ring = <int64_t*>PyMem_Malloc(window_size * sizeof(int64_t))
        if self._ring == NULL:
            raise MemoryError()
        self._threshold = threshold
        self.failed_threshold = failed_threshold
        self.first_heartbeat_estimate_ns = first_heartbeat_estimate_ns
        self._on_transition = on_transition
        self._clock = clock
        if target_false_suspicion_rate is not None:
            if not (0.0 < adaptive_threshold_min <= threshold):
                raise ConfigError(
                    f"adaptive_threshold_min must be in (0, threshold], got "
                    f"{adaptive_threshold_min!r}"
                )
            self.adaptive = AdaptiveThreshold(
                float(target_false_suspicion_rate),
                fallback_threshold=threshold,
                threshold_min=adaptive_threshold_min,
                threshold_max=failed_threshold,
            )
        self.reset()

    def __dealloc__(self):
        PyMem_Free(self._ring)

    def reset(self):
        """Forget every heartbeat: the window holds the two seed intervals again, state ALIVE."""
        cdef int64_t est = self.first_heartbeat_estimate_ns
        self._head = 0
        self._count = 0
        self._sum = 0
        self._sum_sq.lo = 0
        self._sum_sq.hi = 0
        # Akka's seed: mean = estimate, sd = estimate / 4, as two intervals est -/+ est/4.
        self._push(est - est // 4)
        self._push(est + est // 4)
        self._has_last = False
        self._last_ns = 0
        self._state = ALIVE
        self.heartbeats = 0
        self.ignored_backwards = 0

    cdef void _push(self, int64_t interval) noexcept nogil:
        haperf_phi_window_push(self._ring, self._window, &self._head, &self._count, &self._sum,
                               &self._sum_sq, interval)
        haperf_phi_moments(self._count, self._sum, self._sum_sq, &self._mean, &self._sd)

    cdef double _phi(self, int64_t now_ns) noexcept nogil:
        if not self._has_last:
            return 0.0
        return haperf_phi_eval(&self._params, _dt(now_ns, self._last_ns), self._mean, self._sd)

    cdef int _transition(self, int new_state, int64_t now_ns, double phi) except -1:
        cdef int old = self._state
        if new_state == old:
            return 0
        self._state = <int8_t>new_state
        if self._on_transition is not None:
            self._on_transition(_STATES[old], _STATES[new_state], now_ns, phi)
        return 0

    cdef int _evaluate(self, int64_t now_ns) except -1:
        cdef double p = self._phi(now_ns)
        cdef double t = self._threshold if self.adaptive is None else self.adaptive.threshold
        cdef int s = _classify(p, t, self.failed_threshold)
        self._transition(s, now_ns, p)
        return s

    def heartbeat(self, now_ns):
        """Record a heartbeat that arrived at now_ns; False if it was older than the last one."""
        return self._heartbeat(_ns(now_ns))

    cdef bint _heartbeat(self, int64_t now_ns) except -1:
        if self._has_last:
            if now_ns < self._last_ns:
                self.ignored_backwards += 1
                return False
            if self.adaptive is not None:
                self.adaptive.update(self._phi(now_ns))
            self._push(_interval(now_ns, self._last_ns))
        else:
            self._has_last = True
        self._last_ns = now_ns
        self.heartbeats += 1
        if self._state != ALIVE:
            self._evaluate(now_ns)
        return True

    def phi(self, now_ns):
        """Suspicion level at now_ns (0 before the first heartbeat; a time before it counts as 0)."""
        return self._phi(_ns(now_ns))

    def state(self, now_ns):
        """ALIVE, SUSPECT or FAILED at now_ns; reports a change to on_transition."""
        return _STATES[self._evaluate(_ns(now_ns))]

    def is_available(self, now_ns):
        """True while phi(now_ns) is below the threshold in use (Akka's isAvailable)."""
        cdef double t = self._threshold if self.adaptive is None else self.adaptive.threshold
        return self._phi(_ns(now_ns)) < t

    def heartbeat_array(self, const int64_t[::1] times_ns not None, double[::1] phi_out=None,
                        double[::1] threshold_out=None):
        """heartbeat(t) for each t in order; returns how many were accepted.

        phi_out[i] gets the phi at arrival i (before it counts: the highest phi that interval
        reached) and threshold_out[i] the threshold in use just before it (the one that judged
        the interval). A backwards time is ignored and counted, as in heartbeat().
        """
        cdef Py_ssize_t i, n = times_ns.shape[0]
        cdef int64_t accepted = 0
        if phi_out is not None and phi_out.shape[0] != n:
            raise DetectorInputError(
                f"phi_out has {phi_out.shape[0]} entries for {n} times; pass an array of length {n}"
            )
        if threshold_out is not None and threshold_out.shape[0] != n:
            raise DetectorInputError(
                f"threshold_out has {threshold_out.shape[0]} entries for {n} times; "
                f"pass an array of length {n}"
            )
        for i in range(n):
            if phi_out is not None:
                phi_out[i] = self._phi(times_ns[i])
            if threshold_out is not None:
                threshold_out[i] = (
                    self._threshold if self.adaptive is None else self.adaptive.threshold
                )
            accepted += self._heartbeat(times_ns[i])
        return accepted

    def _clock_ns(self):
        clock = self._clock if self._clock is not None else _default_clock
        if clock is None:
            raise ConfigError("this detector has no clock; pass clock= or use the *_ns methods")
        return clock()

    def heartbeat_now(self):
        """heartbeat() at the detector's clock (clock= at construction, else the default)."""
        return self._heartbeat(_ns(self._clock_ns()))

    def phi_now(self):
        return self._phi(_ns(self._clock_ns()))

    def state_now(self):
        return _STATES[self._evaluate(_ns(self._clock_ns()))]

    @property
    def threshold(self):
        """The suspicion threshold in use: the adaptive one when enabled, else the configured."""
        return self._threshold if self.adaptive is None else self.adaptive.threshold

    @property
    def configured_threshold(self):
        return self._threshold

    @property
    def current_state(self):
        """The state last observed by state() or heartbeat() (no evaluation)."""
        return _STATES[self._state]

    @property
    def distribution(self):
        return DISTRIBUTIONS[self._params.distribution]

    @property
    def window_size(self):
        return self._window

    @property
    def sample_count(self):
        """Intervals in the window now (the two seeds included until they are evicted)."""
        return self._count

    @property
    def min_std_deviation_ns(self):
        return <int64_t>self._params.min_sd_ns

    @property
    def acceptable_heartbeat_pause_ns(self):
        return <int64_t>self._params.acceptable_pause_ns

    @property
    def tail_weight(self):
        return exp(self._params.ln_tail_weight)

    @property
    def last_heartbeat_ns(self):
        """Arrival time of the last accepted heartbeat, None before the first."""
        return self._last_ns if self._has_last else None

    @property
    def mean_ns(self):
        """Mean interval of the window (float ns), exact sums divided once."""
        return self._mean

    @property
    def std_deviation_ns(self):
        """Population standard deviation of the window (float ns), before min_std_deviation_ns."""
        return self._sd

    @property
    def window_sum_ns(self):
        """Exact integer sum of the intervals in the window."""
        return self._sum

    @property
    def window_sum_squares_ns2(self):
        """Exact integer sum of the squared intervals in the window."""
        return (<object>self._sum_sq.hi << 64) | <object>self._sum_sq.lo

    def intervals_ns(self):
        """The window's intervals, oldest first, as a new int64 numpy array."""
        out = np.empty(self._count, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef int32_t i, start = self._head - self._count
        if start < 0:
            start += self._window
        for i in range(self._count):
            o[i] = self._ring[(start + i) % self._window]
        return out

    def __repr__(self):
        return (
            f"PhiAccrualDetector(distribution={self.distribution!r}, threshold={self.threshold}, "
            f"failed_threshold={self.failed_threshold}, window_size={self._window}, "
            f"samples={self._count}, mean_ns={self._mean:.0f}, sd_ns={self._sd:.0f}, "
            f"state={_STATES[self._state].name})"
        )


cdef int64_t _NO_LAST = INT64_MIN
# phi_all works through the bank in chunks of this many nodes (3 scratch arrays of 64 KiB).
cdef int64_t _PHI_CHUNK = 8192
cdef Py_ssize_t _PREFETCH_AHEAD = 32
# poll()'s answer when nothing changed: three empty read-only arrays, shared.
def _empty_readonly(dtype):
    a = np.empty(0, dtype=dtype)
    a.flags.writeable = False
    return a


_NO_CHANGES = (_empty_readonly(np.int64), _empty_readonly(np.int8), _empty_readonly(np.int8))
# Below this many ids, phi_all and poll use the scalar formula (bit-identical to phi()).
PHI_VECTOR_MIN = 64
cdef int64_t _PHI_VECTOR_MIN = PHI_VECTOR_MIN


cdef inline bint _row_beat(_Rows r, int64_t node, int64_t now_ns) noexcept nogil:
    # One heartbeat into row `node` through raw pointers (hoisted out of the batch loop, so the
    # compiler does not reload memoryview descriptors per heartbeat). False: ignored (backwards).
    cdef int64_t last = r.last[node]
    if last != _NO_LAST:
        if now_ns < last:
            return False
        haperf_phi_window_push(r.ring + node * r.window, r.window, r.head + node,
                               r.count + node, r.sum + node, r.sum_sq + node,
                               _interval(now_ns, last))
        haperf_phi_moments(r.count[node], r.sum[node], r.sum_sq[node], r.mean + node, r.sd + node)
    elif now_ns == _NO_LAST:
        # INT64_MIN is the bank's "no heartbeat yet" marker; as a time it is meaningless.
        return False
    r.last[node] = now_ns
    return True


@cython.final
cdef class DetectorBank:
    """The phi-accrual detector for many nodes, all with the same parameters.

    Node ids are small ints handed out by add_node() (the lowest free slot is not guaranteed;
    removed ids are reused). Each node's window is a row of one 2-D int64 array; its exact sums,
    mean, sd and last arrival are 1-D arrays. Row i of a bank fed the same heartbeats as a
    PhiAccrualDetector with the same parameters gives the identical phi. No adaptive threshold.
    """

    def __cinit__(
        self,
        *,
        int64_t capacity=1024,
        double threshold=8.0,
        double failed_threshold=16.0,
        int64_t window_size=200,
        int64_t min_std_deviation_ns=100_000_000,
        int64_t acceptable_heartbeat_pause_ns=0,
        int64_t first_heartbeat_estimate_ns=1_000_000_000,
        str distribution="normal",
        double tail_weight=DEFAULT_TAIL_WEIGHT,
    ):
        _check_params(&self._params, distribution, threshold, failed_threshold, window_size,
                      min_std_deviation_ns, acceptable_heartbeat_pause_ns,
                      first_heartbeat_estimate_ns, tail_weight)
        if not 1 <= capacity <= BANK_CAPACITY_MAX:
            raise ConfigError(f"capacity must be in 1..{BANK_CAPACITY_MAX}, got {capacity}")
        self._window = <int32_t>window_size
        self._first_estimate_ns = first_heartbeat_estimate_ns
        self.threshold = threshold
        self.failed_threshold = failed_threshold
        self._free = []
        self._high = 0
        self.size = 0
        self._capacity = 0
        self._arrays = {}
        self._tmp_arrays = tuple(np.empty(_PHI_CHUNK, dtype=np.float64) for _ in range(3))
        self._scratch = None
        self._grow(capacity)

    def _grow(self, int64_t capacity):
        """Reallocate every per-node array to `capacity` rows, keeping existing rows."""
        if self._busy:
            # Another thread is inside a batch call that released the GIL and reads these
            # arrays through raw pointers; replacing them now would free memory under it.
            raise RuntimeError(
                "DetectorBank grew while another thread was using it; a bank is not "
                "thread-safe: call it from one thread at a time"
            )
        old = self._arrays
        n = self._capacity
        new = {
            "ring": np.zeros((capacity, self._window), dtype=np.int64),
            "head": np.zeros(capacity, dtype=np.int32),
            "count": np.zeros(capacity, dtype=np.int32),
            "sum": np.zeros(capacity, dtype=np.int64),
            "sum_sq": np.zeros((capacity, 2), dtype=np.uint64),
            "mean": np.zeros(capacity, dtype=np.float64),
            "sd": np.zeros(capacity, dtype=np.float64),
            "last_ns": np.full(capacity, _NO_LAST, dtype=np.int64),
            "active": np.zeros(capacity, dtype=np.uint8),
            "state": np.zeros(capacity, dtype=np.int8),
        }
        for key, arr in old.items():
            new[key][:n] = arr[:n]
        self._arrays = new
        self._capacity = capacity
        self._bind()

    cdef int _bind(self) except -1:
        a = self._arrays
        self._ring = a["ring"]
        self._head = a["head"]
        self._count = a["count"]
        self._sum = a["sum"]
        self._sum_sq = a["sum_sq"]
        self._mean = a["mean"]
        self._sd = a["sd"]
        self._last_ns = a["last_ns"]
        self._active = a["active"]
        self._state = a["state"]
        return 0

    cdef void _reset_row(self, int64_t node) noexcept nogil:
        cdef int64_t est = self._first_estimate_ns
        self._head[node] = 0
        self._count[node] = 0
        self._sum[node] = 0
        self._sum_sq[node, 0] = 0
        self._sum_sq[node, 1] = 0
        # Akka's seed, as in PhiAccrualDetector.reset().
        haperf_phi_window_push(&self._ring[node, 0], self._window, &self._head[node],
                               &self._count[node], &self._sum[node],
                               <haperf_u128*>&self._sum_sq[node, 0], est - est // 4)
        haperf_phi_window_push(&self._ring[node, 0], self._window, &self._head[node],
                               &self._count[node], &self._sum[node],
                               <haperf_u128*>&self._sum_sq[node, 0], est + est // 4)
        haperf_phi_moments(self._count[node], self._sum[node],
                           (<haperf_u128*>&self._sum_sq[node, 0])[0],
                           &self._mean[node], &self._sd[node])
        self._last_ns[node] = _NO_LAST
        self._state[node] = ALIVE

    def add_node(self):
        """Start watching a new node; returns its id (an int to index phi_all's result with)."""
        cdef int64_t node
        if self._free:
            node = self._free.pop()
        else:
            if self._high == self._capacity:
                if self._capacity >= BANK_CAPACITY_MAX:
                    raise ConfigError(f"a bank holds at most {BANK_CAPACITY_MAX} nodes")
                self._grow(min(self._capacity * 2, BANK_CAPACITY_MAX))
            node = self._high
            self._high += 1
        self._reset_row(node)
        self._active[node] = 1
        self.size += 1
        return node

    def add_nodes(self, int64_t count):
        """add_node() `count` times; returns the ids as an int64 array."""
        if count < 0:
            raise ConfigError(f"count must be >= 0, got {count}")
        return np.fromiter((self.add_node() for _ in range(count)), dtype=np.int64, count=count)

    cdef int64_t _check_node(self, int64_t node) except -1:
        if node < 0 or node >= self._high or not self._active[node]:
            raise UnknownNodeError(f"node {node} is not in this bank; add_node() returns ids")
        return node

    def reset_node(self, node_id):
        """Forget a node's heartbeat history (window back to the seeds, no last arrival).

        Its recorded state is kept, so the next poll() reports the change back to ALIVE. For a
        node that restarted: its old intervals and the restart gap say nothing about the new
        process.
        """
        cdef int64_t node = self._check_node(_ns(node_id))
        cdef int8_t state = self._state[node]
        self._reset_row(node)
        self._state[node] = state

    def remove_node(self, node_id):
        """Stop watching `node`; its id may be handed out again by a later add_node()."""
        cdef int64_t node = self._check_node(_ns(node_id))
        self._active[node] = 0
        self._last_ns[node] = _NO_LAST
        self._state[node] = ALIVE
        self._free.append(node)
        self.size -= 1

    def __contains__(self, node):
        return isinstance(node, int) and 0 <= node < self._high and self._active[node] != 0

    def __len__(self):
        return self.size

    cdef _Rows _rows(self) noexcept nogil:
        cdef _Rows r
        r.ring = &self._ring[0, 0]
        r.head = &self._head[0]
        r.count = &self._count[0]
        r.sum = &self._sum[0]
        r.sum_sq = <haperf_u128*>&self._sum_sq[0, 0]
        r.mean = &self._mean[0]
        r.sd = &self._sd[0]
        r.last = &self._last_ns[0]
        r.window = self._window
        return r

    cdef bint _beat(self, int64_t node, int64_t now_ns) noexcept nogil:
        cdef int r = _row_beat(self._rows(), node, now_ns)
        if r:
            self.heartbeats += 1
        else:
            self.ignored_backwards += 1
        return r

    cdef double _phi(self, int64_t node, int64_t now_ns) noexcept nogil:
        cdef int64_t last = self._last_ns[node]
        if last == _NO_LAST:
            return 0.0
        return haperf_phi_eval(&self._params, _dt(now_ns, last), self._mean[node], self._sd[node])

    def heartbeat(self, node_id, now_ns):
        """Record a heartbeat from node `node_id` at now_ns; False if older than its last one."""
        cdef int64_t t = _ns(now_ns)
        cdef int64_t node = self._check_node(_ns(node_id))
        return self._beat(node, t)

    def heartbeat_many(self, const int64_t[::1] nodes not None,
                       const int64_t[::1] times_ns not None, double[::1] phi_out=None):
        """heartbeat(nodes[i], times_ns[i]) for each i, in order; returns how many were accepted.

        Unknown ids are skipped and counted in ignored_unknown (one bad id never aborts a
        batch); backwards times are skipped and counted in ignored_backwards. With phi_out,
        phi_out[i] is the phi of nodes[i] at times_ns[i] just before that heartbeat (0 for an
        unknown id).
        """
        self._busy += 1
        try:
            return self._heartbeat_many(nodes, times_ns, phi_out)
        finally:
            self._busy -= 1

    cdef object _heartbeat_many(self, const int64_t[::1] nodes, const int64_t[::1] times_ns,
                                double[::1] phi_out):
        cdef Py_ssize_t i, n = nodes.shape[0]
        cdef int64_t node, accepted = 0, unknown = 0
        cdef bint want_phi = phi_out is not None
        if times_ns.shape[0] != n:
            raise DetectorInputError(
                f"nodes has {n} entries but times_ns has {times_ns.shape[0]}; pass equal lengths"
            )
        if want_phi and phi_out.shape[0] != n:
            raise DetectorInputError(f"phi_out must have {n} entries, got {phi_out.shape[0]}")
        cdef _Rows rows = self._rows()
        cdef const uint8_t* active = &self._active[0]
        cdef int64_t high = self._high, backwards = 0
        cdef int64_t ahead
        with nogil:
            for i in range(n):
                # In a large bank each row's ring slot and per-node values are likely cache
                # misses (certainly so when ids come in random order): ask for those of the
                # heartbeat _PREFETCH_AHEAD positions ahead now, so the misses overlap.
                if i + _PREFETCH_AHEAD < n:
                    ahead = nodes[i + _PREFETCH_AHEAD]
                    if 0 <= ahead < high:
                        haperf_phi_prefetch_write(rows.ring + ahead * rows.window + rows.head[ahead])
                        haperf_phi_prefetch_write(rows.last + ahead)
                        haperf_phi_prefetch_write(rows.count + ahead)
                        haperf_phi_prefetch_write(rows.sum + ahead)
                        haperf_phi_prefetch_write(rows.sum_sq + ahead)
                        haperf_phi_prefetch_write(rows.mean + ahead)
                        haperf_phi_prefetch_write(rows.sd + ahead)
                node = nodes[i]
                if node < 0 or node >= high or not active[node]:
                    unknown += 1
                    if want_phi:
                        phi_out[i] = 0.0
                    continue
                if want_phi:
                    phi_out[i] = self._phi(node, times_ns[i])
                if _row_beat(rows, node, times_ns[i]):
                    accepted += 1
                else:
                    backwards += 1
        self.heartbeats += accepted
        self.ignored_backwards += backwards
        self.ignored_unknown += unknown
        return accepted

    def phi(self, node_id, now_ns):
        """Suspicion level of node `node_id` at now_ns."""
        cdef int64_t t = _ns(now_ns)
        cdef int64_t node = self._check_node(_ns(node_id))
        return self._phi(node, t)

    def phi_all(self, now_ns, double[::1] out=None):
        """phi of every id at now_ns as a float64 array indexed by id (0 for removed ids).

        Computed in chunks with numpy's vectorised exp and log1p, so values may differ from the
        scalar phi(node, now_ns) in the last few bits (see _phi_vector). Pass `out` (length >=
        id_limit) to reuse an array; the result is then a view of it.
        """
        cdef int64_t n = self._high
        if out is None:
            result = np.empty(n, dtype=np.float64)
            out = result
        elif out.shape[0] < n:
            raise DetectorInputError(f"out has {out.shape[0]} entries, needs {n} (id_limit)")
        else:
            result = np.asarray(out)[:n]
        cdef int64_t t = _ns(now_ns)
        self._busy += 1
        try:
            self._phi_vector(t, out)
        finally:
            self._busy -= 1
        return result

    cdef int _phi_vector(self, int64_t now_ns, double[::1] out) except -1:
        # The same formulas as haperf_phi_eval, split into passes so the two transcendental
        # steps run as numpy's SIMD exp/log1p over a chunk that stays in cache; the C passes
        # compute z and combine. softplus(z) = max(z, 0) + log1p(exp(-|z|)), natural log.
        cdef int64_t start, j, i, m, n = self._high, last
        cdef double dt, mu, s, y, z, late, mean, a, b, hi, lo
        cdef double pause = self._params.acceptable_pause_ns
        cdef double min_sd = self._params.min_sd_ns
        cdef double ln_w = self._params.ln_tail_weight, ln_1mw = self._params.ln_body_weight
        cdef int dist = self._params.distribution
        cdef double[::1] za, zb, zc
        if n < _PHI_VECTOR_MIN:
            # A few nodes: numpy's per-call overhead would dominate; use the scalar formula.
            with nogil:
                for i in range(n):
                    out[i] = self._phi(i, now_ns) if self._active[i] else 0.0
            return 0
        za = self._tmp_arrays[0]
        zb = self._tmp_arrays[1]
        zc = self._tmp_arrays[2]
        ta, tb, tc = self._tmp_arrays
        exp_, log1p_ = np.exp, np.log1p
        for start in range(0, n, _PHI_CHUNK):
            m = min(<int64_t>_PHI_CHUNK, n - start)
            if dist == HAPERF_PHI_EXPONENTIAL:
                with nogil:
                    for j in range(m):
                        out[start + j] = self._phi(start + j, now_ns)
                continue
            with nogil:
                for j in range(m):
                    i = start + j
                    last = self._last_ns[i]
                    if not self._active[i] or last == _NO_LAST:
                        za[j] = 0.0
                        zb[j] = -INFINITY
                        zc[j] = 0.0
                        continue
                    dt = _dt(now_ns, last)
                    mean = self._mean[i]
                    mu = mean + pause
                    s = self._sd[i]
                    if s < min_sd:
                        s = min_sd
                    y = (dt - mu) / s
                    z = y * (1.5976 + 0.070566 * y * y)
                    za[j] = z
                    zb[j] = -fabs(z)
                    late = dt - mu
                    zc[j] = late / (mean if mean >= 1.0 else 1.0) if late > 0.0 else 0.0
            bv = tb[:m]
            exp_(bv, out=bv)
            log1p_(bv, out=bv)
            if dist == HAPERF_PHI_NORMAL:
                with nogil:
                    for j in range(m):
                        z = za[j]
                        out[start + j] = ((z if z > 0.0 else 0.0) + zb[j]) * HAPERF_PHI_LOG10E
                continue
            with nogil:
                for j in range(m):
                    z = za[j]
                    a = ln_1mw - ((z if z > 0.0 else 0.0) + zb[j])
                    b = ln_w - zc[j]
                    hi = a if a > b else b
                    lo = b if a > b else a
                    za[j] = hi
                    zb[j] = lo - hi
            exp_(bv, out=bv)
            log1p_(bv, out=bv)
            with nogil:
                for j in range(m):
                    i = start + j
                    a = za[j] + zb[j]
                    if not self._active[i] or self._last_ns[i] == _NO_LAST or a >= 0.0:
                        out[i] = 0.0
                    else:
                        out[i] = -a * HAPERF_PHI_LOG10E
        return 0

    def phi_many(self, const int64_t[::1] nodes not None, const int64_t[::1] times_ns not None):
        """phi of nodes[i] at times_ns[i] for each i (0 for unknown ids), as a float64 array."""
        self._busy += 1
        try:
            return self._phi_many(nodes, times_ns)
        finally:
            self._busy -= 1

    cdef object _phi_many(self, const int64_t[::1] nodes, const int64_t[::1] times_ns):
        cdef Py_ssize_t i, n = nodes.shape[0]
        cdef int64_t node
        if times_ns.shape[0] != n:
            raise DetectorInputError(
                f"nodes has {n} entries but times_ns has {times_ns.shape[0]}; pass equal lengths"
            )
        result = np.empty(n, dtype=np.float64)
        cdef double[::1] out = result
        with nogil:
            for i in range(n):
                node = nodes[i]
                if node < 0 or node >= self._high or not self._active[node]:
                    out[i] = 0.0
                else:
                    out[i] = self._phi(node, times_ns[i])
        return result

    cdef object _select(self, int64_t now_ns, int8_t wanted):
        cdef int64_t i, k = 0, n = self._high
        buf = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] b = buf
        cdef double[::1] p = self._phi_scratch(n)
        cdef double t = self.threshold, f = self.failed_threshold
        self._phi_vector(now_ns, p)
        with nogil:
            for i in range(n):
                if self._active[i] and _classify(p[i], t, f) == wanted:
                    b[k] = i
                    k += 1
        return buf[:k].copy()

    def suspects(self, now_ns):
        """Ids whose phi is >= threshold and < failed_threshold at now_ns (int64 array)."""
        cdef int64_t t = _ns(now_ns)
        self._busy += 1
        try:
            return self._select(t, SUSPECT)
        finally:
            self._busy -= 1

    def failed(self, now_ns):
        """Ids whose phi is >= failed_threshold at now_ns (int64 array)."""
        cdef int64_t t = _ns(now_ns)
        self._busy += 1
        try:
            return self._select(t, FAILED)
        finally:
            self._busy -= 1

    def poll(self, now_ns):
        """Re-classify every node at now_ns; return (ids, old_states, new_states) of changes.

        The bank remembers each node's state between polls, so a change is reported once.
        A poll that finds no change returns three shared, empty, read-only arrays.
        """
        cdef int64_t t_ns = _ns(now_ns)
        self._busy += 1
        try:
            return self._poll(t_ns)
        finally:
            self._busy -= 1

    cdef object _poll(self, int64_t t_ns):
        cdef int64_t i, k = 0, changed = 0, n = self._high
        cdef int8_t s
        cdef double t = self.threshold, f = self.failed_threshold
        cdef double[::1] p = self._phi_scratch(n)
        self._phi_vector(t_ns, p)
        with nogil:
            for i in range(n):
                if self._active[i] and _classify(p[i], t, f) != self._state[i]:
                    changed += 1
        if changed == 0:
            return _NO_CHANGES
        ids = np.empty(changed, dtype=np.int64)
        olds = np.empty(changed, dtype=np.int8)
        news = np.empty(changed, dtype=np.int8)
        cdef int64_t[::1] vi = ids
        cdef int8_t[::1] vo = olds
        cdef int8_t[::1] vn = news
        with nogil:
            for i in range(n):
                if not self._active[i]:
                    continue
                s = _classify(p[i], t, f)
                if s != self._state[i] and k < changed:
                    vi[k] = i
                    vo[k] = self._state[i]
                    vn[k] = s
                    self._state[i] = s
                    k += 1
        return ids, olds, news

    cdef double[::1] _phi_scratch(self, int64_t n):
        if self._scratch is None or self._scratch.shape[0] < n:
            self._scratch = np.empty(max(n, 16), dtype=np.float64)
        return self._scratch

    def states(self):
        """The states last recorded by poll(), indexed by id (int8 array; removed ids ALIVE)."""
        return np.asarray(self._state)[: self._high].copy()

    def node_stats(self, node_id):
        """(mean_ns, std_deviation_ns, sample_count, last_heartbeat_ns or None) of one node."""
        cdef int64_t node = self._check_node(_ns(node_id))
        last = self._last_ns[node]
        return (self._mean[node], self._sd[node], self._count[node],
                None if last == _NO_LAST else last)

    @property
    def id_limit(self):
        """One past the largest id ever handed out: the length of phi_all's result."""
        return self._high

    @property
    def capacity(self):
        return self._capacity

    @property
    def window_size(self):
        return self._window

    @property
    def distribution(self):
        return DISTRIBUTIONS[self._params.distribution]

    @property
    def nbytes(self):
        """Bytes held by the per-node arrays."""
        return sum(a.nbytes for a in self._arrays.values())
