"""haperf._native.ratelimit: token buckets, single and keyed (see ratelimit.pxd for the contract).

Invariants: 0 <= tokens <= burst after every refill; time never runs backwards for a bucket (an
earlier now_ns than the last one refills nothing); a request for n tokens succeeds only when n
tokens are there, and takes exactly n; put_back never raises tokens above burst. Counters only
grow. Tokens are doubles: a wait computed by wait_ns() is rounded up to a whole ns and the
comparison allows TOKEN_EPSILON, so a waiter that sleeps exactly wait_ns() is always served.
"""

cimport cython
from libc.math cimport ceil
from libc.stdint cimport INT64_MAX, int64_t, uint64_t

from haperf._native.concurrency cimport Done

TOKEN_EPSILON = 1e-9
cdef double _EPS = 1e-9


# An already-complete awaitable (the type is concurrency.Done; it holds no state).
cdef Done _READY = Done()



@cython.final
cdef class TokenBucket:
    """A token bucket holding at most `burst` tokens, refilled at `rate_per_s` tokens per second.

    It starts full at `now_ns`. `clock` (a callable returning int ns) is used only by the *_now
    methods; the pure methods take now_ns.
    """

    def __cinit__(self, double rate_per_s, double burst, int64_t now_ns, object clock=None):
        if not rate_per_s > 0.0 or not burst >= 1.0:
            raise ValueError(f"rate_per_s must be > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._per_ns = rate_per_s / 1e9
        self._tokens = burst
        self._last_ns = now_ns
        self._clock = clock
        self.queued = 0

    cdef void _refill(self, int64_t now_ns) noexcept:
        cdef double t
        if now_ns > self._last_ns:
            t = self._tokens + <double>(now_ns - self._last_ns) * self._per_ns
            self._tokens = t if t < self.burst else self.burst
            self._last_ns = now_ns

    cdef bint _take(self, int64_t now_ns, double n) noexcept:
        # A non-positive request would mint tokens: refuse it (the facade validates n first).
        if not n > 0.0:
            return False
        self._refill(now_ns)
        if self._tokens + _EPS >= n:
            self._tokens -= n
            if self._tokens < 0.0:
                self._tokens = 0.0
            self.granted += 1
            return True
        return False

    def try_acquire(self, int64_t now_ns, double n=1.0):
        """Take n tokens at now_ns if they are there and nobody is queued; True if taken."""
        if self.queued == 0 and self._take(now_ns, n):
            return True
        self.rejected += 1
        return False

    def try_acquire_now(self, double n=1.0):
        """try_acquire at the injected clock's time."""
        if self.queued == 0 and self._take(<int64_t>self._clock(), n):
            return True
        self.rejected += 1
        return False

    def try_take_now(self, double n=1.0):
        """Like try_acquire_now but a refusal is not counted (the caller is about to queue)."""
        return self.queued == 0 and self._take(<int64_t>self._clock(), n)

    def set_slow_path(self, object slow):
        """`slow(n)` returns the awaitable acquire() hands out when it cannot take n now."""
        self._slow = slow

    def acquire(self, double n=1.0):
        """An awaitable for n tokens: a done one if they are taken now, else slow(n)."""
        if self.queued == 0 and self._take(<int64_t>self._clock(), n):
            return _READY
        return self._slow(n)

    def take_queued(self, int64_t now_ns, double n):
        """Take n tokens for the head of the queue (ignores `queued`); True if taken."""
        return self._take(now_ns, n)

    def wait_ns(self, int64_t now_ns, double n=1.0):
        """Nanoseconds from now_ns until n tokens are there (0: now). n must be <= burst."""
        cdef double missing
        self._refill(now_ns)
        missing = n - self._tokens
        if missing <= _EPS:
            return 0
        return <int64_t>ceil(missing / self._per_ns)

    def put_back(self, int64_t now_ns, double n):
        """Return n tokens taken earlier (a cancelled grant); never above burst."""
        self._refill(now_ns)
        self._tokens += n
        if self._tokens > self.burst:
            self._tokens = self.burst
        self.refunded += 1

    def tokens(self, int64_t now_ns):
        """Tokens available at now_ns (refills first)."""
        self._refill(now_ns)
        return self._tokens

    def is_full(self, int64_t now_ns):
        self._refill(now_ns)
        return self._tokens + _EPS >= self.burst


@cython.final
cdef class KeyedBuckets:
    """One TokenBucket per key, at most `keys_max` keys, least recently used evicted first.

    A bucket that has refilled to full is indistinguishable from a new one, so evicting it loses
    nothing; evicting one that is not full hands that key a fresh burst later, which is counted
    in `evictions_lossy` (size keys_max above the number of keys active within burst/rate).
    """

    def __cinit__(self, double rate_per_s, double burst, Py_ssize_t keys_max, object clock):
        if not rate_per_s > 0.0 or not burst >= 1.0 or keys_max < 1:
            raise ValueError(
                f"need rate_per_s > 0, burst >= 1, keys_max >= 1; got {rate_per_s}, {burst}, "
                f"{keys_max}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.keys_max = keys_max
        self._table = {}
        self._clock = clock

    def try_acquire(self, object key, double n=1.0):
        """Take n tokens from key's bucket at the clock's time; True if taken."""
        cdef int64_t now_ns = <int64_t>self._clock()
        cdef TokenBucket bucket
        cdef dict table = self._table
        found = table.pop(key, None)
        if found is None:
            bucket = TokenBucket(self.rate_per_s, self.burst, now_ns)
            if len(table) >= self.keys_max:
                self._evict_oldest(now_ns)
        else:
            bucket = <TokenBucket>found
        # Re-inserting moves the key to the end: dict order is the LRU order.
        table[key] = bucket
        if bucket._take(now_ns, n):
            self.granted += 1
            return True
        self.rejected += 1
        return False

    cdef int _evict_oldest(self, int64_t now_ns) except -1:
        oldest = next(iter(self._table))
        bucket = <TokenBucket>self._table.pop(oldest)
        self.evictions += 1
        if not bucket.is_full(now_ns):
            self.evictions_lossy += 1
        return 0

    def evict_idle(self):
        """Drop every bucket that has refilled to full (lossless); return how many."""
        cdef int64_t now_ns = <int64_t>self._clock()
        full = [k for k, b in self._table.items() if (<TokenBucket>b).is_full(now_ns)]
        for k in full:
            del self._table[k]
        self.evictions += len(full)
        return len(full)

    def tokens(self, object key):
        """Tokens key has now (burst for an unknown key); does not touch the LRU order."""
        found = self._table.get(key)
        if found is None:
            return self.burst
        return (<TokenBucket>found).tokens(<int64_t>self._clock())

    def __len__(self):
        return len(self._table)

    def __contains__(self, key):
        return key in self._table
