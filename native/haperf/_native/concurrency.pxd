"""Contract of haperf._native.concurrency: slot accounting and adaptive concurrency limits.

Slots is the core of the bulkhead and of the adaptive limiter: `inflight` calls hold a slot,
`queued` callers wait in the facade's FIFO queue, and every transition is one C method, so it is
atomic under the GIL for threads as well as coroutines. Invariants: 0 <= inflight; a fast-path
enter succeeds only when inflight < limit AND nobody is queued (no barging past waiters);
exit() either frees the slot or, when someone is queued, keeps it for the head waiter (handover).

AimdLimit and GradientLimit turn (rtt_ns, inflight, dropped) samples into a new limit, clamped to
[limit_min, limit_max]. Neither reads a clock: samples carry their own latency.

DONE (a Done) is the shared already-complete awaitable of the fast paths (bulkhead enter and
exit, rate limiter acquire).
"""

from libc.stdint cimport int64_t, uint64_t


cdef class Done:
    """An awaitable that is already complete with result None (one shared instance, DONE): what
    a fast path hands out instead of creating a coroutine."""
    pass


cdef class Slots:
    cdef readonly Py_ssize_t limit
    cdef readonly Py_ssize_t inflight
    cdef readonly Py_ssize_t queued
    cdef readonly Py_ssize_t queue_max
    cdef readonly Py_ssize_t inflight_peak
    cdef readonly uint64_t admitted
    cdef readonly uint64_t rejected
    cdef readonly uint64_t handovers
    cdef readonly uint64_t queue_timeouts
    cdef readonly uint64_t successes
    cdef readonly uint64_t failures

    cdef bint _try_enter(self) noexcept


cdef class AimdLimit:
    cdef readonly double limit
    cdef readonly Py_ssize_t limit_min
    cdef readonly Py_ssize_t limit_max
    cdef readonly double backoff_ratio
    cdef readonly double increase
    cdef readonly int64_t timeout_ns
    cdef readonly uint64_t samples
    cdef readonly uint64_t decreases
    cdef readonly uint64_t increases

    cdef Py_ssize_t _on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped) noexcept


cdef class GradientLimit:
    cdef readonly double limit
    cdef readonly Py_ssize_t limit_min
    cdef readonly Py_ssize_t limit_max
    cdef readonly double smoothing
    cdef readonly double rtt_tolerance
    cdef readonly Py_ssize_t long_window
    cdef readonly double long_rtt_ns
    cdef readonly double short_rtt_ns
    cdef readonly uint64_t samples
    cdef readonly uint64_t drops

    cdef Py_ssize_t _on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped) noexcept


cdef class AdaptiveCore:
    cdef readonly Slots slots
    cdef AimdLimit _aimd
    cdef GradientLimit _gradient
    cdef object _clock
