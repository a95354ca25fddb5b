"""haperf._native.breaker: the circuit breaker core, its explicit API and its call guards.

Owns BreakerCore (the pure state machine and sliding windows, resilience4j semantics),
BreakerBase (the explicit non-raising API that reads the injected clock only when the core needs
a time, base class of haperf.resilience.CircuitBreaker) and the decorator wrappers SyncGuard and
AsyncGuard.

Invariants (see breaker.pxd for the state invariants):
- no lock is ever held across the protected call. Every core method is straight C code between
  two Python API calls, so under the GIL each one is atomic with respect to other threads, and
  an outcome is judged against the state it was permitted in (the epoch it carries);
- a rejection raises a fresh instance of the facade's rejection type, so tracebacks never grow;
- DISABLED calls go straight through and are not counted (resilience4j semantics);
- an exception that is not an Exception (cancellation, KeyboardInterrupt, SystemExit) and an
  exception of an ignored type neither succeed nor fail: the half-open permit is given back.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport pow
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.string cimport memset
from haperf._native.await_api cimport *


cdef extern from "haperf_guard.h":
    ctypedef object (*haperf_guard_body_fn)(object, PyObject* const*, size_t, PyObject*, int*)
    haperf_guard_body_fn haperf_guard_body
    object haperf_guard_vectorcall(object, PyObject* const*, size_t, PyObject*)


# Outcome bits stored in a count window's ring.
cdef enum:
    OUTCOME_FAILURE = 1
    OUTCOME_SLOW = 2

STATE_NAMES = {
    CLOSED: "CLOSED",
    OPEN: "OPEN",
    HALF_OPEN: "HALF_OPEN",
    DISABLED: "DISABLED",
    FORCED_OPEN: "FORCED_OPEN",
    METRICS_ONLY: "METRICS_ONLY",
}
WINDOW_SIZE_LIMIT = WINDOW_SIZE_MAX
WINDOW_BUCKETS_LIMIT = WINDOW_BUCKETS_MAX
HALF_OPEN_PERMITS_LIMIT = HALF_OPEN_PERMITS_MAX


cdef class BreakerCore:
    """The state machine. Configuration is validated by the facade; the core asserts it."""

    def __cinit__(
        self,
        int window_kind,
        int64_t window_size,
        int64_t window_ns,
        int64_t window_buckets,
        int64_t calls_min,
        double failure_rate_threshold,
        double slow_call_rate_threshold,
        int64_t slow_call_ns,
        int64_t open_duration_ns,
        double open_backoff_multiplier,
        int64_t open_duration_max_ns,
        int64_t half_open_permits,
        int64_t half_open_max_ns,
    ):
        assert window_kind == WINDOW_COUNT or window_kind == WINDOW_TIME
        assert 1 <= window_size <= WINDOW_SIZE_MAX
        assert 1 <= window_buckets <= WINDOW_BUCKETS_MAX
        assert window_kind == WINDOW_COUNT or window_ns >= window_buckets
        assert calls_min >= 1
        assert 0.0 < failure_rate_threshold <= 100.0
        assert 0.0 < slow_call_rate_threshold <= 100.0
        assert slow_call_ns >= 0 and open_duration_ns >= 0 and half_open_max_ns >= 0
        assert open_backoff_multiplier >= 1.0 and open_duration_max_ns >= open_duration_ns
        assert 1 <= half_open_permits <= HALF_OPEN_PERMITS_MAX
        self.state = CLOSED
        self.window_kind = window_kind
        self.window_size = window_size
        self.window_ns = window_ns
        self.window_buckets = window_buckets
        self.bucket_ns = window_ns // window_buckets if window_kind == WINDOW_TIME else 1
        self.calls_min = calls_min
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.slow_call_ns = slow_call_ns
        self.open_duration_ns = open_duration_ns
        self.open_backoff_multiplier = open_backoff_multiplier
        self.open_duration_max_ns = open_duration_max_ns
        self.half_open_permits = half_open_permits
        self.half_open_max_ns = half_open_max_ns
        self.transition_hook = None
        if window_kind == WINDOW_COUNT:
            self.ring = <uint8_t*>PyMem_Malloc(<size_t>window_size)
            if self.ring == NULL:
                raise MemoryError()
        else:
            self.bucket_calls = <int64_t*>PyMem_Malloc(<size_t>window_buckets * 4 * sizeof(int64_t))
            if self.bucket_calls == NULL:
                raise MemoryError()
            self.bucket_failures = self.bucket_calls + window_buckets
            self.bucket_slow = self.bucket_failures + window_buckets
            self.bucket_epoch = self.bucket_slow + window_buckets
        self._window_reset()

    def __dealloc__(self):
        PyMem_Free(self.ring)
        PyMem_Free(self.bucket_calls)

    # ---- window -------------------------------------------------------------------------

    cdef void _window_reset(self) noexcept:
        cdef int64_t i
        self.window_calls = 0
        self.window_failures = 0
        self.window_slow = 0
        self.ring_next = 0
        self.ring_filled = 0
        self.head_epoch = -1
        if self.ring != NULL:
            memset(self.ring, 0, <size_t>self.window_size)
        if self.bucket_calls != NULL:
            for i in range(self.window_buckets):
                self.bucket_calls[i] = 0
                self.bucket_failures[i] = 0
                self.bucket_slow[i] = 0
                self.bucket_epoch[i] = -1

    cdef void _window_expire(self, int64_t now_ns) noexcept:
        """Time windows: drop the buckets that slid out of [now - window_ns, now]."""
        cdef int64_t e, i, n = self.window_buckets
        if self.window_kind != WINDOW_TIME:
            return
        e = now_ns // self.bucket_ns
        if e <= self.head_epoch:
            # Same bucket, or a clock that went backwards: the head bucket takes the call.
            return
        for i in range(n):
            if self.bucket_epoch[i] >= 0 and self.bucket_epoch[i] <= e - n:
                self.window_calls -= self.bucket_calls[i]
                self.window_failures -= self.bucket_failures[i]
                self.window_slow -= self.bucket_slow[i]
                self.bucket_calls[i] = 0
                self.bucket_failures[i] = 0
                self.bucket_slow[i] = 0
                self.bucket_epoch[i] = -1
        self.head_epoch = e

    cdef void _window_add(self, bint failure, bint slow, int64_t now_ns) noexcept:
        cdef uint8_t old, outcome
        cdef int64_t i
        if self.window_kind == WINDOW_COUNT:
            outcome = (OUTCOME_FAILURE if failure else 0) | (OUTCOME_SLOW if slow else 0)
            if self.ring_filled == self.window_size:
                old = self.ring[self.ring_next]
                self.window_calls -= 1
                self.window_failures -= (old & OUTCOME_FAILURE) != 0
                self.window_slow -= (old & OUTCOME_SLOW) != 0
            else:
                self.ring_filled += 1
            self.ring[self.ring_next] = outcome
            self.ring_next += 1
            if self.ring_next == self.window_size:
                self.ring_next = 0
        else:
            self._window_expire(now_ns)
            i = self.head_epoch % self.window_buckets
            if self.bucket_epoch[i] != self.head_epoch:
                self.bucket_epoch[i] = self.head_epoch
            self.bucket_calls[i] += 1
            self.bucket_failures[i] += failure
            self.bucket_slow[i] += slow
        self.window_calls += 1
        self.window_failures += failure
        self.window_slow += slow

    # ---- transitions ----------------------------------------------------------------------

    cdef int64_t _open_duration(self) noexcept:
        """open_duration_ns * multiplier ** (consecutive opens - 1), capped at the maximum."""
        cdef double d = <double>self.open_duration_ns
        if self.open_attempts > 0 and self.open_backoff_multiplier != 1.0:
            d = d * pow(self.open_backoff_multiplier, <double>self.open_attempts)
        if d >= <double>self.open_duration_max_ns:
            return self.open_duration_max_ns
        return <int64_t>d

    cdef int _transition(self, int to_state, int64_t now_ns) except -1:
        cdef int from_state = self.state
        cdef int64_t d
        if to_state == OPEN:
            d = self._open_duration()
            self.open_until_ns = now_ns + d if now_ns <= INT64_MAX - d else INT64_MAX
            self.open_attempts += 1
        elif to_state == HALF_OPEN:
            self.half_open_used = 0
            self.half_open_calls = 0
            self.half_open_failures = 0
            self.half_open_slow = 0
            self.half_open_since_ns = now_ns
        elif to_state == CLOSED:
            self.open_attempts = 0
            self._window_reset()
        elif to_state == METRICS_ONLY or to_state == DISABLED:
            self.open_attempts = 0
            self._window_reset()
        # OPEN keeps the window it opened on, so its failure rate can still be read.
        self.state = to_state
        self.epoch += 1
        self.transitions += 1
        assert self.window_calls >= 0 and self.window_failures <= self.window_calls
        if self.transition_hook is not None:
            self.transition_hook(from_state, to_state, now_ns)
        return 0

    cdef int _judge_closed(self, int64_t now_ns) except -1:
        """resilience4j: once calls_min calls are in the window, open when the failure rate or
        the slow-call rate reaches its threshold."""
        cdef double calls = <double>self.window_calls
        if self.window_calls < self.calls_min:
            return 0
        if (self.window_failures * 100.0 >= self.failure_rate_threshold * calls
                or (self.slow_call_ns > 0
                    and self.window_slow * 100.0 >= self.slow_call_rate_threshold * calls)):
            self._transition(OPEN, now_ns)
        return 0

    # ---- the call protocol --------------------------------------------------------------

    cdef int acquire(self, int64_t now_ns) except -1:
        """1 and a permit when a call may go ahead, else 0 (and one more rejection)."""
        cdef int state = self.state
        if state == CLOSED or state == METRICS_ONLY:
            self.calls += 1
            return 1
        if state == DISABLED:
            return 1
        if state == OPEN:
            if now_ns < self.open_until_ns:
                self.rejections += 1
                return 0
            self._transition(HALF_OPEN, now_ns)
            state = self.state
        if state == HALF_OPEN:
            if self.half_open_max_ns > 0 and now_ns - self.half_open_since_ns >= self.half_open_max_ns:
                # The probes took too long to answer: stop waiting for them and open again.
                self._transition(OPEN, now_ns)
                self.rejections += 1
                return 0
            if self.half_open_used < self.half_open_permits:
                self.half_open_used += 1
                self.calls += 1
                return 1
        self.rejections += 1
        return 0

    cdef int record(self, bint failure, int64_t duration_ns, int64_t now_ns,
                    uint64_t call_epoch) except -1:
        cdef bint slow = self.slow_call_ns > 0 and duration_ns >= self.slow_call_ns
        cdef int state = self.state
        cdef double calls
        if state == DISABLED and call_epoch == self.epoch:
            return 0
        if failure:
            self.failures += 1
        else:
            self.successes += 1
        self.slow_calls += slow
        if call_epoch != self.epoch:
            return 0
        if state == CLOSED:
            self._window_add(failure, slow, now_ns)
            self._judge_closed(now_ns)
        elif state == METRICS_ONLY:
            self._window_add(failure, slow, now_ns)
        elif state == HALF_OPEN:
            if self.half_open_calls >= self.half_open_used:
                # An outcome no probe permit was taken for (explicit-API misuse): it is counted
                # above but cannot answer for a probe.
                return 0
            self.half_open_calls += 1
            self.half_open_failures += failure
            self.half_open_slow += slow
            if self.half_open_calls >= self.half_open_permits:
                calls = <double>self.half_open_calls
                if (self.half_open_failures * 100.0 >= self.failure_rate_threshold * calls
                        or (self.slow_call_ns > 0
                            and self.half_open_slow * 100.0
                            >= self.slow_call_rate_threshold * calls)):
                    self._transition(OPEN, now_ns)
                else:
                    self._transition(CLOSED, now_ns)
        return 0

    cdef void record_clock_free_success(self) noexcept:
        """A success while clock_free(): no time needed, cannot change the state."""
        self.successes += 1
        self._window_add(False, False, 0)

    cdef void release(self, uint64_t call_epoch) noexcept:
        self.ignored += 1
        if call_epoch == self.epoch and self.state == HALF_OPEN and self.half_open_used > self.half_open_calls:
            self.half_open_used -= 1

    # ---- Python API (tests, the facade's slow paths) ---------------------------------------

    def allow(self, int64_t now_ns):
        """Take a permit at `now_ns`: True when a call may go ahead."""
        return self.acquire(now_ns) == 1

    def on_success(self, int64_t duration_ns, int64_t now_ns):
        self.record(False, duration_ns, now_ns, self.epoch)

    def on_failure(self, int64_t duration_ns, int64_t now_ns):
        self.record(True, duration_ns, now_ns, self.epoch)

    def on_ignored(self):
        self.release(self.epoch)

    def on_outcome(self, bint failure, int64_t duration_ns, int64_t now_ns, uint64_t call_epoch):
        """Record an outcome of a call permitted at `call_epoch` (stale epochs: counters only)."""
        self.record(failure, duration_ns, now_ns, call_epoch)

    def on_release(self, uint64_t call_epoch):
        self.release(call_epoch)

    def transition_to(self, int to_state, int64_t now_ns):
        """Move to `to_state` (any state; a no-op when already there)."""
        if to_state < CLOSED or to_state > METRICS_ONLY:
            raise ValueError(f"unknown breaker state {to_state}")
        if to_state != self.state:
            self._transition(to_state, now_ns)

    def remaining_open_ns(self, int64_t now_ns):
        """How long an OPEN breaker stays open from now (0 when not OPEN)."""
        if self.state != OPEN or now_ns >= self.open_until_ns:
            return 0
        return self.open_until_ns - now_ns

    def expire(self, int64_t now_ns):
        """Slide a time window to `now_ns` (readers call it before reading the rates)."""
        self._window_expire(now_ns)

    @property
    def failure_rate(self):
        """Failure rate in percent of the calls in the current window, -1.0 below calls_min."""
        if self.state == HALF_OPEN:
            if self.half_open_calls == 0:
                return -1.0
            return 100.0 * self.half_open_failures / self.half_open_calls
        if self.window_calls < self.calls_min or self.window_calls == 0:
            return -1.0
        return 100.0 * self.window_failures / self.window_calls

    @property
    def slow_call_rate(self):
        """Slow-call rate in percent of the calls in the current window, -1.0 below calls_min."""
        if self.state == HALF_OPEN:
            if self.half_open_calls == 0:
                return -1.0
            return 100.0 * self.half_open_slow / self.half_open_calls
        if self.window_calls < self.calls_min or self.window_calls == 0:
            return -1.0
        return 100.0 * self.window_slow / self.window_calls


# ---- the facade base: explicit API and guards --------------------------------------------------


@cython.no_gc_clear
cdef class BreakerBase:
    """Native half of haperf.resilience.CircuitBreaker: the explicit API and outcome judging.

    `_setup` is called once by the facade's __init__ with validated configuration.
    no_gc_clear: a GuardedCall collected in the same garbage cycle may still report to it from
    its dealloc, so the collector must not set `core` to None first (the core's own
    transition_hook is what breaks the facade <-> core cycle).
    """

    cdef readonly BreakerCore core
    cdef object clock
    cdef tuple record_types
    cdef tuple ignore_types
    cdef object record_exception
    cdef object record_result
    cdef object reject_type
    cdef readonly str breaker_name

    def _setup(self, BreakerCore core, clock, tuple record_types, tuple ignore_types,
               record_exception, record_result, reject_type, str name):
        self.core = core
        self.clock = clock
        self.record_types = record_types
        self.ignore_types = ignore_types
        self.record_exception = record_exception
        self.record_result = record_result
        self.reject_type = reject_type
        self.breaker_name = name

    cdef inline int64_t now(self) except? -1:
        return self.clock()

    cdef object rejection(self, int64_t now_ns):
        """A fresh rejection error: args are (name, state name, remaining open ns)."""
        cdef BreakerCore core = self.core
        cdef int64_t remaining = 0
        if core.state == OPEN and now_ns < core.open_until_ns:
            remaining = core.open_until_ns - now_ns
        return self.reject_type(self.breaker_name, STATE_NAMES[core.state], remaining)

    cdef int judge_exception(self, object exc) except -1:
        """1 failure, 0 success, -2 neither (ignored)."""
        if not isinstance(exc, Exception) or (
            self.ignore_types and isinstance(exc, self.ignore_types)
        ):
            return -2
        if not isinstance(exc, self.record_types):
            return 0
        if self.record_exception is not None and not self.record_exception(exc):
            return 0
        return 1

    def _judge_exception(self, exc):
        """1 failure, 0 success, -2 ignored: how an exception from a call is counted."""
        return self.judge_exception(exc)

    cdef int finish_exception(self, object exc, int64_t start, uint64_t epoch) except -1:
        cdef BreakerCore core = self.core
        cdef int verdict = self.judge_exception(exc)
        cdef int64_t now
        if verdict == -2:
            core.release(epoch)
            return 0
        now = self.now()
        core.record(verdict == 1, now - start if start >= 0 else 0, now, epoch)
        return 0

    cdef int finish_result(self, object result, int64_t start, uint64_t epoch) except -1:
        cdef BreakerCore core = self.core
        cdef bint failure = self.record_result is not None and bool(self.record_result(result))
        cdef int64_t now
        if not failure and start < 0 and epoch == core.epoch and core.clock_free():
            core.record_clock_free_success()
            return 0
        now = self.now()
        core.record(failure, now - start if start >= 0 else 0, now, epoch)
        return 0

    # The explicit non-raising API, for hot loops.

    def allow(self):
        """Take a permit now: True when a call may go ahead. Report its outcome with
        on_success / on_failure (or on_ignored when it neither succeeded nor failed)."""
        cdef BreakerCore core = self.core
        if core.state == CLOSED or core.state == METRICS_ONLY:
            core.calls += 1
            return True
        if core.state == DISABLED:
            return True
        if core.state == FORCED_OPEN:
            core.rejections += 1
            return False
        return core.acquire(self.now()) == 1

    def try_acquire(self):
        """Same as allow()."""
        return self.allow()

    def allow_at(self, int64_t now_ns):
        """allow() for a caller that already holds the time (an event loop's clock reading,
        a batch's timestamp): no clock read, so an OPEN breaker answers as fast as a CLOSED one.
        `now_ns` must come from the breaker's clock."""
        return self.core.acquire(now_ns) == 1

    def on_success(self, int64_t duration_ns=0):
        """Record a successful call that took `duration_ns`."""
        cdef BreakerCore core = self.core
        if core.state == DISABLED:
            return
        if core.clock_free():
            core.record_clock_free_success()
        else:
            core.record(False, duration_ns, self.now(), core.epoch)

    def on_failure(self, int64_t duration_ns=0):
        """Record a failed call that took `duration_ns`."""
        cdef BreakerCore core = self.core
        if core.state != DISABLED:
            core.record(True, duration_ns, self.now(), core.epoch)

    def on_ignored(self):
        """A permitted call that neither succeeded nor failed: give its permit back."""
        if self.core.state != DISABLED:
            self.core.release(self.core.epoch)

    @property
    def state_code(self):
        """The current state as its resilience4j number (see BreakerState)."""
        return self.core.state

    def is_call_permitted(self):
        """State check only (no permit taken): False when OPEN before its wait elapsed,
        FORCED_OPEN, or HALF_OPEN with every probe permit taken."""
        cdef BreakerCore core = self.core
        cdef int state = core.state
        if state == CLOSED or state == DISABLED or state == METRICS_ONLY:
            return True
        if state == FORCED_OPEN:
            return False
        if state == HALF_OPEN:
            return core.half_open_used < core.half_open_permits
        return self.now() >= core.open_until_ns

    def _guard(self, fn, bint is_async):
        """The decorator wrapper of `fn` (attributes are copied by the facade)."""
        cdef _Guard guard = AsyncGuard() if is_async else SyncGuard()
        guard.policy = self
        guard.fn = fn
        return guard


cdef class _Guard:
    # vcall first: its offset is what the type's tp_vectorcall_offset points at.
    cdef vectorcallfunc vcall
    cdef BreakerBase policy
    cdef object fn
    cdef dict __dict__

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return PyMethod_New(self, instance)


@cython.final
cdef class SyncGuard(_Guard):
    """A sync function protected by a breaker. No lock is held across the call.

    Calls arrive through vectorcall (haperf_guard.h, then _sync_body): the arguments are handed
    to the wrapped function as they came, with no tuple or dict built. __call__ serves
    PyObject_Call callers.
    """

    def __cinit__(self):
        self.vcall = haperf_guard_vectorcall

    def __call__(self, *args, **kwargs):
        return PyVectorcall_Call(self, args, kwargs)


cdef object _sync_body(object self, PyObject* const* args, size_t nargsf, PyObject* kwnames,
                       int* rejected):
    # The body of SyncGuard's vectorcall (haperf_guard.h). A rejection is returned with
    # *rejected set and raised by the C caller, so it carries no traceback entry of this
    # function; everything else happens in this one function for the same reason.
    cdef SyncGuard guard = <SyncGuard>self
    cdef BreakerBase policy = guard.policy
    cdef BreakerCore core = policy.core
    cdef int64_t start
    cdef uint64_t epoch
    if core.state == DISABLED:
        return PyObject_Vectorcall(guard.fn, args, nargsf, kwnames)
    if core.clock_free():
        # Closed, count window, no slow-call threshold, no failure in the window: the call
        # needs no clock unless it fails.
        start = -1
        core.calls += 1
    else:
        start = policy.now()
        if not core.acquire(start):
            rejected[0] = 1
            return policy.rejection(start)
    epoch = core.epoch
    try:
        result = PyObject_Vectorcall(guard.fn, args, nargsf, kwnames)
    except BaseException as exc:
        policy.finish_exception(exc, start, epoch)
        raise
    if start < 0 and policy.record_result is None and epoch == core.epoch and core.clock_free():
        core.record_clock_free_success()
    else:
        policy.finish_result(result, start, epoch)
    return result


@cython.final
cdef class AsyncGuard(_Guard):
    """An async function protected by a breaker. Calling it returns a GuardedCall (a C
    awaitable, see haperf_await.h) that takes its permit when awaited, not when created,
    forwards every send/throw to the wrapped coroutine and records how it ended. No second
    coroutine frame is created."""

    def __cinit__(self):
        self.vcall = _async_vectorcall

    def __call__(self, *args, **kwargs):
        return haperf_await_new(
            GuardedCall, self.policy, self.fn(*args, **kwargs), NULL, NULL, NULL, &_hooks
        )


cdef object _async_vectorcall(object self, PyObject* const* args, size_t nargsf, PyObject* kwnames):
    cdef AsyncGuard guard = <AsyncGuard>self
    return haperf_await_new(
        GuardedCall,
        guard.policy,
        PyObject_Vectorcall(guard.fn, args, nargsf, kwnames),
        NULL,
        NULL,
        NULL,
        &_hooks,
    )


# start_ns of a call that went through a DISABLED breaker: nothing is recorded for it.
cdef enum:
    START_DISABLED = -2


cdef int _await_enter(haperf_await* a) except -1:
    cdef BreakerBase policy = <BreakerBase><object>a.policy
    cdef BreakerCore core = policy.core
    if core.state == DISABLED:
        a.start_ns = START_DISABLED
        return 0
    if core.clock_free():
        a.start_ns = -1
        core.calls += 1
    else:
        a.start_ns = policy.now()
        if not core.acquire(a.start_ns):
            raise policy.rejection(a.start_ns)
    a.epoch = core.epoch
    return 0


cdef int _await_result(haperf_await* a, PyObject* result, PyObject** next) except -1:
    cdef BreakerBase policy = <BreakerBase><object>a.policy
    cdef BreakerCore core = policy.core
    cdef int64_t start = a.start_ns
    if start == START_DISABLED:
        return 0
    if (start < 0 and policy.record_result is None and a.epoch == core.epoch
            and core.clock_free()):
        core.record_clock_free_success()
        return 0
    policy.finish_result(<object>result, start, a.epoch)
    return 0


cdef int _await_exception(haperf_await* a, PyObject* exc, PyObject** next) except -1:
    cdef BreakerBase policy = <BreakerBase><object>a.policy
    if a.start_ns == START_DISABLED or policy.core is None:
        return 0
    if exc == NULL:
        # Closed or dropped before it finished: neither success nor failure.
        policy.core.release(a.epoch)
        return 0
    policy.finish_exception(<object>exc, a.start_ns, a.epoch)
    return 0


cdef haperf_await_hooks _hooks
_hooks.enter = _await_enter
_hooks.result = _await_result
_hooks.exception = _await_exception
GuardedCall = haperf_await_type_new()


cdef int _enable_vectorcall(type cls, _Guard sample) except -1:
    cdef PyTypeObject* t = <PyTypeObject*>cls
    t.tp_vectorcall_offset = <Py_ssize_t>(<char*>&sample.vcall - <char*><void*>sample)
    t.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL
    PyType_Modified(t)
    return 0


haperf_guard_body = _sync_body
_enable_vectorcall(SyncGuard, SyncGuard())
_enable_vectorcall(AsyncGuard, AsyncGuard())
