"""haperf._native.concurrency: slot accounting and AIMD / gradient limits (see concurrency.pxd).

The limit algorithms follow the published designs of Netflix's concurrency-limits library
(AIMD; Gradient2: a gradient of a long-term to a short-term latency average, plus a queue
allowance of sqrt(limit)); the code and the exact treatment of drops are haperf's own and are
documented in docs/resilience_limits.md.
"""

cimport cython
from libc.math cimport floor, sqrt
from libc.stdint cimport int64_t, uint64_t


@cython.final
cdef class Done:
    """`await DONE` completes at once with None: __await__ returns an iterator that is already
    exhausted, so no coroutine or frame is created."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration

    def send(self, value):
        raise StopIteration

    def throw(self, typ, val=None, tb=None):
        if val is None:
            raise typ
        raise val

    def close(self):
        pass


DONE = Done()


@cython.final
cdef class Slots:
    """`limit` concurrent holders and at most `queue_max` queued waiters (the facade's queue)."""

    def __cinit__(self, Py_ssize_t limit, Py_ssize_t queue_max=0):
        if limit < 1 or queue_max < 0:
            raise ValueError(f"need limit >= 1 and queue_max >= 0, got {limit}, {queue_max}")
        self.limit = limit
        self.queue_max = queue_max

    cdef bint _try_enter(self) noexcept:
        if self.inflight < self.limit and self.queued == 0:
            self.inflight += 1
            self.admitted += 1
            if self.inflight > self.inflight_peak:
                self.inflight_peak = self.inflight
            return True
        self.rejected += 1
        return False

    def try_enter(self):
        """Take a slot if one is free and nobody is queued; a refusal is counted as a rejection."""
        if self.inflight < self.limit and self.queued == 0:
            self.inflight += 1
            self.admitted += 1
            if self.inflight > self.inflight_peak:
                self.inflight_peak = self.inflight
            return True
        self.rejected += 1
        return False

    def try_enter_fast(self):
        """try_enter without counting a refusal (the caller goes on to enter_or_queue)."""
        if self.inflight < self.limit and self.queued == 0:
            self.inflight += 1
            self.admitted += 1
            if self.inflight > self.inflight_peak:
                self.inflight_peak = self.inflight
            return True
        return False

    def enter_or_queue(self):
        """1: slot taken; 0: join the queue (queued += 1, the caller must wait); -1: rejected."""
        if self.inflight < self.limit and self.queued == 0:
            self.inflight += 1
            self.admitted += 1
            if self.inflight > self.inflight_peak:
                self.inflight_peak = self.inflight
            return 1
        if self.queued < self.queue_max:
            self.queued += 1
            return 0
        self.rejected += 1
        return -1

    def leave_queue(self, bint timed_out=True):
        """A queued waiter gave up before it was handed a slot."""
        assert self.queued > 0, "leave_queue with nobody queued"
        self.queued -= 1
        if timed_out:
            self.queue_timeouts += 1
            self.rejected += 1

    def exit(self, int outcome=1):
        """Release a slot after a call that succeeded (outcome 1), failed (0) or never ran (-1).

        True: a waiter is queued, the slot stays held and the caller must hand it over (under
        the facade's lock: handover() if a waiter is still there, else free()).
        """
        assert self.inflight > 0, "exit without a held slot"
        if outcome == 1:
            self.successes += 1
        elif outcome == 0:
            self.failures += 1
        if self.queued > 0 and self.inflight <= self.limit:
            return True
        self.inflight -= 1
        return False

    def handover(self):
        """The held slot passes to the head waiter: it leaves the queue, admitted."""
        assert self.queued > 0 and self.inflight > 0, "handover with nobody queued"
        self.queued -= 1
        self.handovers += 1
        self.admitted += 1

    def free(self):
        """Release a slot kept by exit() for a waiter that has gone meanwhile."""
        assert self.inflight > 0, "free without a held slot"
        self.inflight -= 1

    def set_limit(self, Py_ssize_t limit):
        """Change the limit (adaptive limiter); holders above a lowered limit finish normally."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit


@cython.final
cdef class AimdLimit:
    """Additive increase, multiplicative decrease of a concurrency limit.

    A sample that dropped (error, rejection) or took longer than timeout_ns multiplies the limit
    by backoff_ratio; a good sample adds `increase` but only while the limit is being used
    (inflight >= limit / 2), so an idle service does not inflate its limit without evidence.
    """

    def __cinit__(self, double initial, Py_ssize_t limit_min, Py_ssize_t limit_max,
                  double backoff_ratio, double increase, int64_t timeout_ns):
        if not (1 <= limit_min <= initial <= limit_max):
            raise ValueError("need 1 <= limit_min <= initial <= limit_max")
        if not (0.0 < backoff_ratio < 1.0) or not increase > 0.0 or timeout_ns <= 0:
            raise ValueError("need 0 < backoff_ratio < 1, increase > 0, timeout_ns > 0")
        self.limit = initial
        self.limit_min = limit_min
        self.limit_max = limit_max
        self.backoff_ratio = backoff_ratio
        self.increase = increase
        self.timeout_ns = timeout_ns

    def on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped):
        """Feed one completed call; return the new integer limit."""
        return self._on_sample(rtt_ns, inflight, dropped)

    cdef Py_ssize_t _on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped) noexcept:
        self.samples += 1
        if dropped or rtt_ns > self.timeout_ns:
            self.limit = self.limit * self.backoff_ratio
            self.decreases += 1
        elif inflight * 2 >= self.limit:
            self.limit = self.limit + self.increase
            self.increases += 1
        if self.limit < self.limit_min:
            self.limit = self.limit_min
        elif self.limit > self.limit_max:
            self.limit = self.limit_max
        return <Py_ssize_t>floor(self.limit)


@cython.final
cdef class GradientLimit:
    """Gradient limit: compare a long-term latency average with the latest latency.

    gradient = clamp(rtt_tolerance * long_rtt / short_rtt, 0.5, 1.0); the target is
    limit * gradient + sqrt(limit) (the queue allowance that lets the limit probe upwards), and
    the limit moves `smoothing` of the way to it. long_rtt is an exponential average over
    `long_window` samples; when it is more than twice short_rtt (load has gone away) it is cut
    by 10% per sample so the limit can recover. A dropped sample uses the minimum gradient (0.5):
    an error is the strongest congestion signal. Samples while inflight < limit / 2 do not move
    the limit (the application, not the service, bounds the concurrency).
    """

    def __cinit__(self, double initial, Py_ssize_t limit_min, Py_ssize_t limit_max,
                  double smoothing, double rtt_tolerance, Py_ssize_t long_window):
        if not (1 <= limit_min <= initial <= limit_max):
            raise ValueError("need 1 <= limit_min <= initial <= limit_max")
        if not (0.0 < smoothing <= 1.0) or not rtt_tolerance >= 1.0 or long_window < 1:
            raise ValueError("need 0 < smoothing <= 1, rtt_tolerance >= 1, long_window >= 1")
        self.limit = initial
        self.limit_min = limit_min
        self.limit_max = limit_max
        self.smoothing = smoothing
        self.rtt_tolerance = rtt_tolerance
        self.long_window = long_window

    def on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped):
        """Feed one completed call; return the new integer limit."""
        return self._on_sample(rtt_ns, inflight, dropped)

    cdef Py_ssize_t _on_sample(self, int64_t rtt_ns, Py_ssize_t inflight, bint dropped) noexcept:
        cdef double rtt = <double>(rtt_ns if rtt_ns > 0 else 1)
        cdef double gradient, target, factor
        self.samples += 1
        self.short_rtt_ns = rtt
        if self.samples == 1:
            self.long_rtt_ns = rtt
        else:
            factor = 2.0 / (<double>self.long_window + 1.0)
            self.long_rtt_ns = self.long_rtt_ns * (1.0 - factor) + rtt * factor
        if self.long_rtt_ns / rtt > 2.0:
            self.long_rtt_ns = self.long_rtt_ns * 0.9
        if dropped:
            self.drops += 1
            gradient = 0.5
        else:
            if inflight * 2 < self.limit:
                return <Py_ssize_t>floor(self.limit)
            gradient = self.rtt_tolerance * self.long_rtt_ns / rtt
            if gradient > 1.0:
                gradient = 1.0
            elif gradient < 0.5:
                gradient = 0.5
        if dropped:
            target = self.limit * gradient
        else:
            target = self.limit * gradient + sqrt(self.limit)
        self.limit = self.limit * (1.0 - self.smoothing) + target * self.smoothing
        if self.limit < self.limit_min:
            self.limit = self.limit_min
        elif self.limit > self.limit_max:
            self.limit = self.limit_max
        return <Py_ssize_t>floor(self.limit)


@cython.final
cdef class AdaptiveCore:
    """Admission and feedback of an adaptive limiter in one place: `slots` enforces the limit,
    `algorithm` (an AimdLimit or a GradientLimit) moves it, `clock` (int ns) times each call.

    try_acquire() -> start ns or None; release(start_ns, dropped) -> new limit. Both are one C
    call each, so the adaptive limiter costs about what the bulkhead does.
    """

    def __cinit__(self, Slots slots not None, object algorithm, object clock):
        if isinstance(algorithm, AimdLimit):
            self._aimd = <AimdLimit>algorithm
        elif isinstance(algorithm, GradientLimit):
            self._gradient = <GradientLimit>algorithm
        else:
            raise TypeError(f"algorithm must be an AimdLimit or a GradientLimit, got {algorithm!r}")
        self.slots = slots
        self._clock = clock

    def try_acquire(self):
        """Admit one call: its start time in ns, or None at the limit (counted as rejected)."""
        if self.slots._try_enter():
            return self._clock()
        return None

    def release(self, int64_t start_ns, bint dropped=False):
        """Finish a call admitted at start_ns; feed its latency; return the new limit."""
        return self.on_sample(<int64_t>self._clock() - start_ns, dropped)

    def on_sample(self, int64_t rtt_ns, bint dropped=False):
        """Release one slot with a measured latency; return the new limit."""
        cdef Slots slots = self.slots
        cdef Py_ssize_t inflight = slots.inflight
        cdef Py_ssize_t limit
        assert inflight > 0, "release without an admitted call"
        if dropped:
            slots.failures += 1
        else:
            slots.successes += 1
        slots.inflight -= 1
        if self._aimd is not None:
            limit = self._aimd._on_sample(rtt_ns, inflight, dropped)
        else:
            limit = self._gradient._on_sample(rtt_ns, inflight, dropped)
        slots.limit = limit if limit >= 1 else 1
        return slots.limit
