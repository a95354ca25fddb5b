"""Contract of haperf._native.phi: the phi-accrual failure detector, one node or many.

PhiAccrualDetector watches one node; DetectorBank watches many with the same parameters, each
node's window a row of one 2-D int64 array; AdaptiveThreshold learns a suspicion threshold from
the phi values seen at heartbeat arrival. The arithmetic (exact integer window sums, the phi
formulas) is in haperf_phi.h and shared by all three, so a bank row and a single detector fed the
same heartbeats have bit-identical windows, moments and scalar phi (the bank's vectorised phi_all
may differ in the last bits: it uses numpy's SIMD exp/log1p).

Time is integer nanoseconds (int64_t) passed in by the caller (the *_now methods call a clock the
caller injected); nothing here imports time.
Invariants: every window holds 1..window_size intervals in [0, INTERVAL_NS_MAX]; window sums are
exact integers; phi is finite, >= 0, never NaN and non-decreasing in `now_ns` between heartbeats.
"""

cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t


cdef extern from "haperf_phi.h" nogil:
    ctypedef struct haperf_u128:
        uint64_t lo
        uint64_t hi
    ctypedef struct haperf_phi_params:
        int distribution
        double acceptable_pause_ns
        double min_sd_ns
        double ln_tail_weight
        double ln_body_weight
    enum:
        HAPERF_PHI_NORMAL
        HAPERF_PHI_EXPONENTIAL
        HAPERF_PHI_HYBRID
        HAPERF_PHI_WINDOW_MAX
    const int64_t HAPERF_PHI_INTERVAL_NS_MAX
    const double HAPERF_PHI_LOG10E
    void haperf_phi_prefetch_write(const void* p) noexcept
    void haperf_phi_window_push(int64_t* ring, int32_t window, int32_t* head, int32_t* count,
                                int64_t* sum, haperf_u128* sum_sq, int64_t interval) noexcept
    void haperf_phi_moments(int32_t count, int64_t sum, haperf_u128 sum_sq,
                            double* mean, double* sd) noexcept
    double haperf_phi_eval(const haperf_phi_params* p, double dt_ns, double mean,
                           double sd) noexcept


cdef struct _Rows:
    # Raw pointers into a DetectorBank's per-node arrays, for its inner loops.
    int64_t* ring
    int32_t* head
    int32_t* count
    int64_t* sum
    haperf_u128* sum_sq
    double* mean
    double* sd
    int64_t* last
    int32_t window


cpdef enum NodeState:
    ALIVE = 0
    SUSPECT = 1
    FAILED = 2


@cython.final
cdef class AdaptiveThreshold:
    cdef int64_t* _counts
    cdef int64_t _total
    cdef int64_t _above
    cdef int32_t _index
    cdef int64_t _warmup_samples
    cdef int64_t _samples_max
    cdef readonly double target_rate
    cdef readonly double fallback_threshold
    cdef readonly double threshold_min
    cdef readonly double threshold_max
    cdef readonly double threshold
    cpdef double update(self, double phi) except -1.0
    cdef void _settle(self) noexcept
    cdef void _halve(self) noexcept


@cython.final
cdef class PhiAccrualDetector:
    cdef haperf_phi_params _params
    cdef int64_t* _ring
    cdef int32_t _window
    cdef int32_t _head
    cdef int32_t _count
    cdef int64_t _sum
    cdef haperf_u128 _sum_sq
    cdef double _mean
    cdef double _sd
    cdef int64_t _last_ns
    cdef bint _has_last
    cdef int8_t _state
    cdef double _threshold
    cdef readonly double failed_threshold
    cdef readonly int64_t heartbeats
    cdef readonly int64_t ignored_backwards
    cdef readonly int64_t first_heartbeat_estimate_ns
    cdef readonly AdaptiveThreshold adaptive
    cdef object _on_transition
    cdef object _clock
    cdef double _phi(self, int64_t now_ns) noexcept nogil
    cdef void _push(self, int64_t interval) noexcept nogil
    cdef int _transition(self, int new_state, int64_t now_ns, double phi) except -1
    cdef bint _heartbeat(self, int64_t now_ns) except -1
    cdef int _evaluate(self, int64_t now_ns) except -1


@cython.final
cdef class DetectorBank:
    cdef haperf_phi_params _params
    cdef int32_t _window
    cdef int64_t _capacity
    cdef int64_t _first_estimate_ns
    cdef object _arrays
    cdef int64_t[:, ::1] _ring
    cdef int32_t[::1] _head
    cdef int32_t[::1] _count
    cdef int64_t[::1] _sum
    cdef uint64_t[:, ::1] _sum_sq
    cdef double[::1] _mean
    cdef double[::1] _sd
    cdef int64_t[::1] _last_ns
    cdef uint8_t[::1] _active
    cdef int8_t[::1] _state
    cdef list _free
    cdef tuple _tmp_arrays
    cdef double[::1] _scratch
    cdef int _busy
    cdef readonly int64_t size
    cdef int64_t _high
    cdef readonly double threshold
    cdef readonly double failed_threshold
    cdef readonly int64_t heartbeats
    cdef readonly int64_t ignored_backwards
    cdef readonly int64_t ignored_unknown
    cdef int _bind(self) except -1
    cdef int64_t _check_node(self, int64_t node) except -1
    cdef object _select(self, int64_t now_ns, int8_t wanted)
    cdef int _phi_vector(self, int64_t now_ns, double[::1] out) except -1
    cdef double[::1] _phi_scratch(self, int64_t n)
    cdef object _heartbeat_many(self, const int64_t[::1] nodes, const int64_t[::1] times_ns,
                                double[::1] phi_out)
    cdef object _phi_many(self, const int64_t[::1] nodes, const int64_t[::1] times_ns)
    cdef object _poll(self, int64_t t_ns)
    cdef void _reset_row(self, int64_t node) noexcept nogil
    cdef _Rows _rows(self) noexcept nogil
    cdef bint _beat(self, int64_t node, int64_t now_ns) noexcept nogil
    cdef double _phi(self, int64_t node, int64_t now_ns) noexcept nogil
