"""haperf._native.retry: the retry budget core and the first attempt of a retried call.

Owns RetryBudgetCore (a token bucket of retries: each success deposits `ratio` tokens, each retry
withdraws one, as in gRPC retry throttling and Finagle's RetryBudget, plus an optional reserve
refilled in time), RetryBase (the counters of a Retry policy, kept in C) and the guards
SyncRetryGuard / AsyncRetryGuard. A guard runs the first attempt in C (the async one through
the GuardedCall awaitable of haperf_await.h); only when it fails (an exception, or a result the
policy retries on) does it hand over to the facade's Python retry loop (`_retry_sync` /
`_retry_async`), which owns backoff, jitter, sleeping and the deadline.

Invariants: a guard keeps no per-call state outside the C stack and the coroutine frame, so
concurrent calls through one decorator share nothing but the counters and the budget; the clock
is read before the first attempt only when the policy has a total deadline.
"""

cimport cython
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from haperf._native.await_api cimport *


cdef enum:
    MILLI = 1000
    SECOND_NS = 1000000000

cpdef enum RetryCounter:
    COUNT_SUCCESS = 0
    COUNT_FAILURE = 1
    COUNT_RETRY = 2
    COUNT_BUDGET_REJECTION = 3
    COUNT_EXHAUSTED = 4
    COUNT_DEADLINE = 5


cdef class RetryBudgetCore:
    """Token bucket of retries. The facade validates the configuration; the core asserts it."""

    def __cinit__(self, int64_t tokens_max_milli, int64_t deposit_milli, int64_t reserve_per_s,
                  int64_t now_ns):
        assert MILLI <= tokens_max_milli and 0 <= deposit_milli <= tokens_max_milli
        assert 0 <= reserve_per_s <= 1000000
        self.tokens_max_milli = tokens_max_milli
        self.balance_milli = tokens_max_milli
        self.deposit_milli = deposit_milli
        self.reserve_per_s = reserve_per_s
        self.reserve_max_milli = reserve_per_s * MILLI
        self.reserve_milli = self.reserve_max_milli
        self.reserve_at_ns = now_ns

    cdef void deposit_c(self) noexcept:
        self.deposits += 1
        self.balance_milli += self.deposit_milli
        if self.balance_milli > self.tokens_max_milli:
            self.balance_milli = self.tokens_max_milli

    cdef bint withdraw_c(self, int64_t now_ns) noexcept:
        cdef int64_t elapsed, refill
        if self.balance_milli >= MILLI:
            self.balance_milli -= MILLI
            self.withdrawals += 1
            return True
        if self.reserve_per_s > 0:
            # The reserve refills at reserve_per_s tokens per second, up to one second's worth,
            # so a quiet service can still retry a little after its balance ran dry.
            elapsed = now_ns - self.reserve_at_ns
            if elapsed > 0:
                if elapsed >= SECOND_NS:
                    refill = self.reserve_max_milli
                else:
                    refill = elapsed * self.reserve_per_s // (SECOND_NS // MILLI)
                if refill > 0:
                    self.reserve_milli += refill
                    if self.reserve_milli > self.reserve_max_milli:
                        self.reserve_milli = self.reserve_max_milli
                    self.reserve_at_ns = now_ns
            if self.reserve_milli >= MILLI:
                self.reserve_milli -= MILLI
                self.withdrawals += 1
                return True
        self.denials += 1
        return False

    def deposit(self):
        """One success: add `ratio` tokens (capped at tokens_max)."""
        self.deposit_c()

    def try_withdraw(self, int64_t now_ns):
        """Take one token for a retry at `now_ns`: False (and one more denial) when none is left."""
        return self.withdraw_c(now_ns)

    @property
    def tokens(self):
        """Tokens in the balance (not counting the reserve)."""
        return self.balance_milli / <double>MILLI


cdef class RetryBase:
    """Native half of haperf.resilience.Retry: counters and the first attempt."""

    cdef readonly uint64_t calls
    cdef readonly uint64_t successes
    cdef readonly uint64_t failures
    cdef readonly uint64_t retries
    cdef readonly uint64_t retry_budget_rejections
    cdef readonly uint64_t exhausted
    cdef readonly uint64_t deadline_exceeded
    cdef object clock
    cdef object retry_if_result
    cdef RetryBudgetCore budget
    cdef bint timed

    def _setup_native(self, clock, retry_if_result, RetryBudgetCore budget, bint timed):
        self.clock = clock
        self.retry_if_result = retry_if_result
        self.budget = budget
        self.timed = timed

    def _count(self, int counter):
        """Add one to a counter (COUNT_* below) in one C step, atomic under the GIL: the Python
        retry loop uses it, since `self.x += 1` from Python could lose updates between threads."""
        if counter == COUNT_SUCCESS:
            self.successes += 1
        elif counter == COUNT_FAILURE:
            self.failures += 1
        elif counter == COUNT_RETRY:
            self.retries += 1
        elif counter == COUNT_BUDGET_REJECTION:
            self.retry_budget_rejections += 1
        elif counter == COUNT_EXHAUSTED:
            self.exhausted += 1
        elif counter == COUNT_DEADLINE:
            self.deadline_exceeded += 1
        else:
            raise ValueError(f"unknown retry counter {counter}")

    def _guard(self, fn, bint is_async):
        cdef _RetryGuard guard = AsyncRetryGuard() if is_async else SyncRetryGuard()
        guard.policy = self
        guard.fn = fn
        return guard

    cdef inline int64_t start_ns(self) except? -2:
        if self.timed:
            return self.clock()
        return -1

    cdef inline bint accept(self, object result) except -1:
        """A first-attempt result: 1 when it is final (counted as a success), 0 to retry."""
        if self.retry_if_result is not None and self.retry_if_result(result):
            return 0
        self.successes += 1
        if self.budget is not None:
            self.budget.deposit_c()
        return 1


cdef class _RetryGuard:
    # vcall first: its offset is what the type's tp_vectorcall_offset points at.
    cdef vectorcallfunc vcall
    cdef RetryBase policy
    cdef object fn
    cdef dict __dict__

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return PyMethod_New(self, instance)


cdef tuple _args_of(PyObject* const* vargs, size_t nargsf, PyObject* kwnames):
    """(args tuple, kwargs dict) of a vectorcall, built when a retry needs them again."""
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    cdef Py_ssize_t i, nk
    cdef tuple names
    cdef PyObject* t = PyTuple_New(n)
    for i in range(n):
        Py_INCREF(vargs[i])
        PyTuple_SET_ITEM(t, i, vargs[i])
    args = <tuple>t
    Py_DECREF_(t)
    kwargs = {}
    if kwnames != NULL:
        names = <tuple><object>kwnames
        nk = len(names)
        for i in range(nk):
            kwargs[names[i]] = <object>vargs[n + i]
    return args, kwargs


@cython.final
cdef class SyncRetryGuard(_RetryGuard):
    """A sync function with retries. The first attempt runs here; a failure goes to the
    facade's retry loop with the call's arguments."""

    def __cinit__(self):
        self.vcall = _sync_vectorcall

    def __call__(self, *args, **kwargs):
        cdef RetryBase policy = self.policy
        cdef int64_t start = policy.start_ns()
        cdef object failed = None
        policy.calls += 1
        try:
            result = self.fn(*args, **kwargs)
        except BaseException as exc:
            failed = exc
        if failed is not None:
            # Outside the except block, so later attempts' errors do not chain to this one.
            return policy._retry_sync(self.fn, args, kwargs, failed, None, start)
        if policy.accept(result):
            return result
        return policy._retry_sync(self.fn, args, kwargs, None, result, start)


cdef object _sync_vectorcall(object self, PyObject* const* vargs, size_t nargsf,
                             PyObject* kwnames):
    cdef SyncRetryGuard guard = <SyncRetryGuard>self
    cdef RetryBase policy = guard.policy
    cdef int64_t start = policy.start_ns()
    cdef object failed = None
    policy.calls += 1
    try:
        result = PyObject_Vectorcall(guard.fn, vargs, nargsf, kwnames)
    except BaseException as exc:
        failed = exc
    if failed is not None:
        args, kwargs = _args_of(vargs, nargsf, kwnames)
        return policy._retry_sync(guard.fn, args, kwargs, failed, None, start)
    if policy.accept(result):
        return result
    args, kwargs = _args_of(vargs, nargsf, kwnames)
    return policy._retry_sync(guard.fn, args, kwargs, None, result, start)


@cython.final
cdef class AsyncRetryGuard(_RetryGuard):
    """An async function with retries. Calling it returns a GuardedCall (haperf_await.h) that
    awaits the first attempt with no extra coroutine frame; a failed first attempt hands over
    to the facade's Python retry loop (`_retry_async`), which the awaitable then delegates to."""

    def __cinit__(self):
        self.vcall = _async_vectorcall

    def __call__(self, *args, **kwargs):
        coro = self.fn(*args, **kwargs)
        return haperf_await_new(
            GuardedCall, self.policy, coro, <PyObject*>self.fn, <PyObject*>args,
            <PyObject*>kwargs, &_hooks,
        )


cdef object _async_vectorcall(object self, PyObject* const* vargs, size_t nargsf,
                              PyObject* kwnames):
    cdef AsyncRetryGuard guard = <AsyncRetryGuard>self
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    cdef Py_ssize_t i
    coro = PyObject_Vectorcall(guard.fn, vargs, nargsf, kwnames)
    if kwnames != NULL:
        args, kwargs = _args_of(vargs, nargsf, kwnames)
        return haperf_await_new(
            GuardedCall, guard.policy, coro, <PyObject*>guard.fn, <PyObject*>args,
            <PyObject*>kwargs, &_hooks,
        )
    # Positional only (the common case): the tuple is all a retry needs; no dict is built.
    cdef PyObject* t = PyTuple_New(n)
    for i in range(n):
        Py_INCREF(vargs[i])
        PyTuple_SET_ITEM(t, i, vargs[i])
    args = <tuple>t
    Py_DECREF_(t)
    return haperf_await_new(
        GuardedCall, guard.policy, coro, <PyObject*>guard.fn, <PyObject*>args, NULL, &_hooks
    )


cdef int _await_enter(haperf_await* a) except -1:
    cdef RetryBase policy = <RetryBase><object>a.policy
    a.start_ns = policy.start_ns()
    policy.calls += 1
    return 0


cdef object _kwargs_of(haperf_await* a):
    return {} if a.kwargs == NULL else <object>a.kwargs


cdef int _await_result(haperf_await* a, PyObject* result, PyObject** next) except -1:
    cdef RetryBase policy = <RetryBase><object>a.policy
    if policy.accept(<object>result):
        return 0
    slow = policy._retry_async(
        <object>a.fn, <object>a.args, _kwargs_of(a), None, <object>result, a.start_ns
    )
    Py_INCREF(<PyObject*>slow)
    next[0] = <PyObject*>slow
    return 0


cdef int _await_exception(haperf_await* a, PyObject* exc, PyObject** next) except -1:
    cdef RetryBase policy
    if exc == NULL:
        return 0  # closed or dropped during the first attempt: nothing to retry or count
    policy = <RetryBase><object>a.policy
    slow = policy._retry_async(
        <object>a.fn, <object>a.args, _kwargs_of(a), <object>exc, None, a.start_ns
    )
    Py_INCREF(<PyObject*>slow)
    next[0] = <PyObject*>slow
    return 0


cdef haperf_await_hooks _hooks
_hooks.enter = _await_enter
_hooks.result = _await_result
_hooks.exception = _await_exception
GuardedCall = haperf_await_type_new()


cdef int _enable_vectorcall(type cls, _RetryGuard sample) except -1:
    cdef PyTypeObject* t = <PyTypeObject*>cls
    t.tp_vectorcall_offset = <Py_ssize_t>(<char*>&sample.vcall - <char*><void*>sample)
    t.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL
    PyType_Modified(t)
    return 0


_enable_vectorcall(SyncRetryGuard, SyncRetryGuard())
_enable_vectorcall(AsyncRetryGuard, AsyncRetryGuard())
