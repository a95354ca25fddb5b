"""Contract of haperf._native.breaker: the circuit breaker state machine and its call guards.

BreakerCore is pure: it never reads a clock. Every method that needs the time takes `now_ns`
(integer nanoseconds from a monotonic clock the caller owns), so tests drive it in virtual time.
The guards (SyncGuard, whose vectorcall entry is haperf_guard.h, and AsyncGuard, whose calls
return the GuardedCall awaitable of haperf_await.h) are the decorator wrappers of
haperf.resilience; they read the injected clock only when the core needs a time (see
BreakerCore.clock_free).

States use resilience4j's numbering (also the value of the exported `state` gauge):
CLOSED 0, OPEN 1, HALF_OPEN 2, DISABLED 3, FORCED_OPEN 4, METRICS_ONLY 5.

Invariants:
- window_calls == sum of the outcomes in the window; 0 <= window_failures, window_slow <=
  window_calls <= window capacity (window_size calls, or every call in window_ns for time windows);
- 0 <= half_open_used <= half_open_permits, and half_open_calls <= half_open_used;
- every state change goes through _transition, which bumps `epoch` and `transitions`; an outcome
  carrying an older epoch (a call permitted before the change) updates the cumulative counters
  only, never the new state's window;
- the cumulative counters only grow.
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t


cpdef enum BreakerState:
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    DISABLED = 3
    FORCED_OPEN = 4
    METRICS_ONLY = 5


cpdef enum WindowKind:
    WINDOW_COUNT = 0
    WINDOW_TIME = 1


# Bounds on configuration, so the ring and bucket arrays stay small and the arithmetic exact.
cdef enum:
    WINDOW_SIZE_MAX = 1000000
    WINDOW_BUCKETS_MAX = 10000
    HALF_OPEN_PERMITS_MAX = 1000000


cdef class BreakerCore:
    cdef readonly int state
    cdef readonly int window_kind
    cdef readonly int64_t window_size
    cdef readonly int64_t window_ns
    cdef readonly int64_t window_buckets
    cdef int64_t bucket_ns
    cdef readonly int64_t calls_min
    cdef readonly double failure_rate_threshold
    cdef readonly double slow_call_rate_threshold
    cdef readonly int64_t slow_call_ns
    cdef readonly int64_t open_duration_ns
    cdef readonly double open_backoff_multiplier
    cdef readonly int64_t open_duration_max_ns
    cdef readonly int64_t half_open_permits
    cdef readonly int64_t half_open_max_ns

    # The sliding window. Count windows: ring[window_size] of outcome bits. Time windows:
    # per-bucket totals, bucket i covering [bucket_epoch[i] * bucket_ns, + bucket_ns).
    cdef uint8_t* ring
    cdef int64_t ring_next
    cdef int64_t ring_filled
    cdef int64_t* bucket_calls
    cdef int64_t* bucket_failures
    cdef int64_t* bucket_slow
    cdef int64_t* bucket_epoch
    cdef int64_t head_epoch
    cdef readonly int64_t window_calls
    cdef readonly int64_t window_failures
    cdef readonly int64_t window_slow

    cdef readonly int64_t half_open_used
    cdef readonly int64_t half_open_calls
    cdef readonly int64_t half_open_failures
    cdef readonly int64_t half_open_slow
    cdef readonly int64_t half_open_since_ns
    cdef readonly int64_t open_until_ns
    cdef readonly int64_t open_attempts
    cdef readonly uint64_t epoch

    # Cumulative counters, read by metrics exporters on scrape.
    cdef readonly uint64_t calls
    cdef readonly uint64_t successes
    cdef readonly uint64_t failures
    cdef readonly uint64_t ignored
    cdef readonly uint64_t rejections
    cdef readonly uint64_t slow_calls
    cdef readonly uint64_t transitions

    # Called as hook(from_state, to_state, now_ns) after every transition, or None.
    cdef public object transition_hook

    cdef inline bint clock_free(self) noexcept:
        """True when the next call needs no time: CLOSED, a count window, no slow-call
        threshold and no failure in the window (a success cannot trip the breaker then)."""
        return (
            self.state == CLOSED
            and self.window_kind == WINDOW_COUNT
            and self.slow_call_ns == 0
            and self.window_failures == 0
        )

    cdef int acquire(self, int64_t now_ns) except -1
    cdef int record(self, bint failure, int64_t duration_ns, int64_t now_ns,
                    uint64_t call_epoch) except -1
    cdef void record_clock_free_success(self) noexcept
    cdef void release(self, uint64_t call_epoch) noexcept
    cdef int _transition(self, int to_state, int64_t now_ns) except -1
    cdef void _window_reset(self) noexcept
    cdef void _window_add(self, bint failure, bint slow, int64_t now_ns) noexcept
    cdef void _window_expire(self, int64_t now_ns) noexcept
    cdef int _judge_closed(self, int64_t now_ns) except -1
    cdef int64_t _open_duration(self) noexcept
