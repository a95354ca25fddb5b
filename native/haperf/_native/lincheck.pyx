"""haperf._native.lincheck: the linearizability search core, Wing & Gong's algorithm with Lowe's
memo cache (the same algorithm as haperf.chaos.lincheck.ReferenceSearch, in C).

Owns Search: the entry list of one partition's history, the linearize/undo walk, the cache of
(linearized set, state) pairs (an open-addressing hash table over a bitset arena, keyed by an
incrementally maintained Zobrist hash), and the record of the deepest point the search reached,
from which the facade explains a violation.

Invariants: see lincheck.pxd. States are non-negative int64 ids chosen by the caller; an
operation kind decides legality and the next state in C, except KIND_STEP, which asks the
caller's step(state, op) (a negative answer = illegal). Nothing here reads a clock: the caller
bounds each run() by a number of steps.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy, memmove, memset

from haperf._native.lincheck cimport (
    KIND_CAS,
    KIND_CAS_FAILED,
    KIND_READ,
    KIND_STEP,
    KIND_WRITE,
    CacheSlot,
    StepSlot,
)

K_READ = KIND_READ
K_WRITE = KIND_WRITE
K_CAS = KIND_CAS
K_CAS_FAILED = KIND_CAS_FAILED
K_STEP = KIND_STEP

VERDICT_LINEARIZABLE = 1
VERDICT_VIOLATION = 0
VERDICT_RUNNING = -1
VERDICT_OUT_OF_MEMORY = -2

# A partition's operation count is an int32 index with room for the entry list (two per op).
OPERATIONS_MAX = (1 << 30) - 1
DEFAULT_CACHE_BYTES_MAX = 512 << 20
_INITIAL_SLOTS = 1024


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    # splitmix64's finalizer: spreads a state id over all 64 bits.
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t _memo_hash(int64_t state, int64_t op) noexcept nogil:
    return _mix(<uint64_t>state * <uint64_t>0x100000001B3 + <uint64_t>op)


cdef inline int32_t _distance(int32_t a, int32_t b) noexcept nogil:
    return a - b if a >= b else b - a


cdef int _by_offset(const void* x, const void* y) noexcept nogil:
    cdef int64_t a = (<const CacheSlot*>x).offset
    cdef int64_t b = (<const CacheSlot*>y).offset
    return (a > b) - (a < b)


cdef inline void* _alloc(size_t n) except NULL:
    cdef void* p = PyMem_Malloc(n if n else 1)
    if p == NULL:
        raise MemoryError()
    return p


@cython.final
cdef class Search:
    """One partition's linearizability search. run(steps_max) advances it; see the module doc.

    Search(kinds, a, b, calls, rets, initial, step=None, cache_bytes_max=...): operation i has
    kind kinds[i] (K_READ, K_WRITE, K_CAS, K_CAS_FAILED, K_STEP) and arguments a[i], b[i];
    it is invoked at event position calls[i] and returns at rets[i] (-1: never returns, so it
    may take effect any time after its call, or never). `initial` is the first state.
    """

    def __cinit__(self, kinds, a, b, calls, rets, int64_t initial, step=None,
                  cache_bytes_max=DEFAULT_CACHE_BYTES_MAX):
        self.table = NULL
        self.arena = NULL
        n = len(kinds)
        if not (len(a) == len(b) == len(calls) == len(rets) == n):
            raise ValueError("kinds, a, b, calls and rets must have the same length")
        if n > OPERATIONS_MAX:
            raise ValueError(f"{n} operations is over OPERATIONS_MAX ({OPERATIONS_MAX})")
        if initial < 0:
            raise ValueError(f"states are non-negative ids, got initial {initial}")
        if cache_bytes_max < 1 << 16:
            raise ValueError(f"cache_bytes_max must be at least 64 KiB, got {cache_bytes_max}")
        self.n = n
        events = []
        cdef Py_ssize_t i
        for i in range(n):
            kind = kinds[i]
            if not KIND_READ <= kind <= KIND_STEP:
                raise ValueError(f"operation {i}: unknown kind {kind}")
            if kind == KIND_STEP and step is None:
                raise ValueError(f"operation {i} is K_STEP but no step function was given")
            if rets[i] >= 0 and rets[i] <= calls[i]:
                raise ValueError(f"operation {i} returns at {rets[i]}, not after its call {calls[i]}")
            events.append((calls[i], 0, i))
            if rets[i] >= 0:
                events.append((rets[i], 1, i))
        events.sort()
        cdef int32_t count = len(events)
        self.op_of = <int32_t*>_alloc((count + 1) * sizeof(int32_t))
        self.is_call = <char*>_alloc(count + 1)
        self.nxt = <int32_t*>_alloc((count + 1) * sizeof(int32_t))
        self.prv = <int32_t*>_alloc((count + 1) * sizeof(int32_t))
        self.ret_entry = <int32_t*>_alloc((n + 1) * sizeof(int32_t))
        self.kinds = <int32_t*>_alloc((n + 1) * sizeof(int32_t))
        self.a = <int64_t*>_alloc((n + 1) * sizeof(int64_t))
        self.b = <int64_t*>_alloc((n + 1) * sizeof(int64_t))
        self.zobrist = <uint64_t*>_alloc((n + 1) * sizeof(uint64_t))
        # Bit positions: completed operations first (a dense prefix once linearized), then,
        # from a word boundary, the operations without a return (they may stay unlinearized
        # for ever, so they must not sit inside the completed region's window).
        cdef int32_t completed_ops = 0
        for i in range(n):
            if rets[i] >= 0:
                completed_ops += 1
        self.cwords = (completed_ops + 63) // 64
        self.pwords = (n - completed_ops + 63) // 64
        self.words = self.cwords + self.pwords if n else 1
        self.bit_of = <int32_t*>_alloc((n + 1) * sizeof(int32_t))
        cdef int32_t next_completed = 0
        cdef int32_t next_pending = self.cwords * 64
        for i in range(n):
            if rets[i] >= 0:
                self.bit_of[i] = next_completed
                next_completed += 1
            else:
                self.bit_of[i] = next_pending
                next_pending += 1
        self.bits = <uint64_t*>_alloc(self.words * sizeof(uint64_t))
        self.stack_entry = <int32_t*>_alloc((n + 1) * sizeof(int32_t))
        self.stack_state = <int64_t*>_alloc((n + 1) * sizeof(int64_t))
        self.best_ops = <int32_t*>_alloc((n + 1) * sizeof(int32_t))
        memset(self.bits, 0, self.words * sizeof(uint64_t))
        memset(self.ret_entry, 0, (n + 1) * sizeof(int32_t))
        cdef uint64_t seed = 0x9E3779B97F4A7C15
        self.remaining = 0
        for i in range(n):
            self.kinds[i] = kinds[i]
            self.a[i] = a[i]
            self.b[i] = b[i]
            seed += <uint64_t>0x9E3779B97F4A7C15
            self.zobrist[i] = _mix(seed)
        self.op_of[0] = -1
        self.is_call[0] = 0
        cdef int32_t e
        for e in range(1, count + 1):
            _, is_return, op = events[e - 1]
            self.op_of[e] = op
            self.is_call[e] = 0 if is_return else 1
            if is_return:
                self.ret_entry[op] = e
                self.remaining += 1
        self.completed = self.remaining
        self.best_progress = 0
        for e in range(count + 1):
            self.nxt[e] = e + 1 if e < count else 0
            self.prv[e] = e - 1 if e > 0 else count
        self.step_fn = step
        self.state = initial
        self.hash = 0
        self.lo = 0
        self.hi = 0
        self.entry = self.nxt[0]
        self.depth = 0
        self.cache_bytes_max = cache_bytes_max
        self.capacity = _INITIAL_SLOTS
        self.table = <CacheSlot*>_alloc(self.capacity * sizeof(CacheSlot))
        cdef uint64_t s
        for s in range(self.capacity):
            self.table[s].offset = -1
        self.count = 0
        self.arena_words = 4 * _INITIAL_SLOTS
        self.arena = <uint64_t*>_alloc(self.arena_words * sizeof(uint64_t))
        self.arena_used = 0
        self.best_depth = 0
        self.best_state_ = initial
        self.stuck_ = -1
        self.steps_ = 0
        self.verdict = VERDICT_RUNNING

    def __dealloc__(self):
        PyMem_Free(self.op_of)
        PyMem_Free(self.is_call)
        PyMem_Free(self.nxt)
        PyMem_Free(self.prv)
        PyMem_Free(self.ret_entry)
        PyMem_Free(self.kinds)
        PyMem_Free(self.a)
        PyMem_Free(self.b)
        PyMem_Free(self.zobrist)
        PyMem_Free(self.bits)
        PyMem_Free(self.bit_of)
        PyMem_Free(self.stack_entry)
        PyMem_Free(self.stack_state)
        PyMem_Free(self.best_ops)
        PyMem_Free(self.table)
        PyMem_Free(self.arena)
        PyMem_Free(self.memo)

    cdef int64_t _apply(self, int64_t state, int32_t i) except? -2:
        """The state after operation i from `state`, or -1 when i is illegal there."""
        cdef int32_t kind = self.kinds[i]
        if kind == KIND_READ:
            return state if state == self.a[i] else -1
        if kind == KIND_WRITE:
            return self.a[i]
        if kind == KIND_CAS:
            return self.b[i] if state == self.a[i] else -1
        if kind == KIND_CAS_FAILED:
            return state if state != self.a[i] else -1
        return self._step(state, i)

    cdef int64_t _step(self, int64_t state, int32_t i) except? -2:
        """step_fn(state, i), memoised in an open-addressing table that doubles at half load."""
        cdef uint64_t mask, j, s, capacity
        cdef StepSlot* memo
        cdef int64_t result
        if (self.memo_count + 1) * 2 > self.memo_capacity:
            capacity = self.memo_capacity * 2 if self.memo_capacity else 256
            if capacity * sizeof(StepSlot) + self._cache_bytes() > self.cache_bytes_max:
                result = self.step_fn(state, i)  # no room to remember: just ask
                return result if result >= 0 else -1
            memo = <StepSlot*>_alloc(capacity * sizeof(StepSlot))
            mask = capacity - 1
            for s in range(capacity):
                memo[s].state = -1
            for s in range(self.memo_capacity):
                if self.memo[s].state >= 0:
                    j = _memo_hash(self.memo[s].state, self.memo[s].op) & mask
                    while memo[j].state >= 0:
                        j = (j + 1) & mask
                    memo[j] = self.memo[s]
            PyMem_Free(self.memo)
            self.memo = memo
            self.memo_capacity = capacity
        mask = self.memo_capacity - 1
        j = _memo_hash(state, i) & mask
        while self.memo[j].state >= 0:
            if self.memo[j].state == state and self.memo[j].op == i:
                return self.memo[j].result
            j = (j + 1) & mask
        result = self.step_fn(state, i)
        if result < 0:
            result = -1
        self.memo[j].state = state
        self.memo[j].op = i
        self.memo[j].result = result
        self.memo_count += 1
        return result

    cdef uint64_t _cache_bytes(self) noexcept:
        return (self.capacity * sizeof(CacheSlot) + self.arena_words * 8
                + self.memo_capacity * sizeof(StepSlot))

    cdef int _grow(self) noexcept:
        """Double the slot table (0), or 1 when that would pass cache_bytes_max or fails."""
        cdef uint64_t capacity = self.capacity * 2
        cdef uint64_t mask = capacity - 1
        if self._cache_bytes() + self.capacity * sizeof(CacheSlot) > self.cache_bytes_max:
            return 1
        cdef CacheSlot* table = <CacheSlot*>PyMem_Malloc(capacity * sizeof(CacheSlot))
        if table == NULL:
            return 1
        cdef uint64_t s, j
        for s in range(capacity):
            table[s].offset = -1
        for s in range(self.capacity):
            if self.table[s].offset >= 0:
                j = self.table[s].hash & mask
                while table[j].offset >= 0:
                    j = (j + 1) & mask
                table[j] = self.table[s]
        PyMem_Free(self.table)
        self.table = table
        self.capacity = capacity
        return 0

    cdef int _cache_insert(self, int64_t state) noexcept:
        """Add (bits, state): 1 when new, 0 when already cached, 2 when out of memory.

        When the cache is full, the cached states farthest from the current one are evicted
        (see _evict) and the insert is tried again; only when that frees too little is the
        answer 2. Eviction never changes a verdict: the cache only prunes repeated work.
        """
        cdef int result = self._cache_insert_once(state)
        if result != 2 or self._evict():
            return result
        return self._cache_insert_once(state)

    cdef int _cache_insert_once(self, int64_t state) noexcept:
        cdef uint64_t h = self.hash ^ _mix(<uint64_t>state)
        cdef uint64_t mask = self.capacity - 1
        cdef uint64_t j = h & mask
        cdef int32_t lo = self.lo
        cdef int32_t window = self.hi - self.lo
        cdef int32_t length = window + self.pwords
        cdef size_t window_bytes = window * sizeof(uint64_t)
        cdef size_t pending_bytes = self.pwords * sizeof(uint64_t)
        cdef const uint64_t* pending = self.bits + self.cwords
        cdef CacheSlot* slot
        while True:
            slot = &self.table[j]
            if slot.offset < 0:
                break
            if (slot.hash == h and slot.state == state and slot.lo == lo
                    and slot.length == length
                    and memcmp(self.arena + slot.offset, self.bits + lo, window_bytes) == 0
                    and memcmp(self.arena + slot.offset + window, pending, pending_bytes) == 0):
                return 0
            j = (j + 1) & mask
        if (self.count + 1) * 2 > self.capacity:
            if self._grow():
                return 2
            mask = self.capacity - 1
            j = h & mask
            while self.table[j].offset >= 0:
                j = (j + 1) & mask
            slot = &self.table[j]
        cdef uint64_t words
        cdef uint64_t* arena
        if self.arena_used + length > self.arena_words:
            words = self.arena_words * 2
            while words < self.arena_used + length:
                words *= 2
            if self._cache_bytes() + (words - self.arena_words) * 8 > self.cache_bytes_max:
                return 2
            arena = <uint64_t*>PyMem_Realloc(self.arena, words * sizeof(uint64_t))
            if arena == NULL:
                return 2
            self.arena = arena
            self.arena_words = words
        memcpy(self.arena + self.arena_used, self.bits + lo, window_bytes)
        memcpy(self.arena + self.arena_used + window, pending, pending_bytes)
        slot.hash = h
        slot.state = state
        slot.offset = <int64_t>self.arena_used
        slot.lo = lo
        slot.length = length
        self.arena_used += length
        self.count += 1
        return 1

    cdef int _evict(self) noexcept:
        """Drop the cached states whose window starts farthest from the current one, keeping at
        most three quarters of them: 0 when done, 1 when that would free nothing useful.

        A state far behind the current window is only met again if the search backtracks that
        far, and one far ahead only if it advances that far, so the near ones are the likely
        hits. The table and arena keep their size; the arena is compacted in place.
        """
        if self.count < 16:
            return 1
        cdef uint64_t* counts = <uint64_t*>PyMem_Malloc((self.cwords + 1) * sizeof(uint64_t))
        if counts == NULL:
            return 1
        memset(counts, 0, (self.cwords + 1) * sizeof(uint64_t))
        cdef uint64_t s, kept = 0, budget = self.count * 3 // 4
        cdef int32_t d, limit = -1
        for s in range(self.capacity):
            if self.table[s].offset >= 0:
                counts[_distance(self.table[s].lo, self.lo)] += 1
        for d in range(self.cwords + 1):
            if kept + counts[d] > budget:
                break
            kept += counts[d]
            limit = d
        PyMem_Free(counts)
        if limit < 0 or kept == 0:
            return 1
        cdef CacheSlot* survivors = <CacheSlot*>PyMem_Malloc(kept * sizeof(CacheSlot))
        if survivors == NULL:
            return 1
        cdef uint64_t k = 0
        for s in range(self.capacity):
            if self.table[s].offset >= 0 and _distance(self.table[s].lo, self.lo) <= limit:
                survivors[k] = self.table[s]
                k += 1
            self.table[s].offset = -1
        qsort(survivors, k, sizeof(CacheSlot), _by_offset)
        cdef uint64_t used = 0, j, mask = self.capacity - 1
        for s in range(k):
            # Offsets only decrease, in increasing order, so memmove never overwrites a
            # survivor that is still to be moved.
            memmove(self.arena + used, self.arena + survivors[s].offset,
                    survivors[s].length * sizeof(uint64_t))
            survivors[s].offset = <int64_t>used
            used += survivors[s].length
            j = survivors[s].hash & mask
            while self.table[j].offset >= 0:
                j = (j + 1) & mask
            self.table[j] = survivors[s]
        PyMem_Free(survivors)
        self.arena_used = used
        self.count = k
        self.evictions_ += 1
        return 0

    cdef void _set_bit(self, int32_t i) noexcept:
        cdef int32_t b = self.bit_of[i]
        cdef int32_t w = b >> 6
        self.bits[w] |= (<uint64_t>1) << (b & 63)
        self.hash ^= self.zobrist[i]
        if w >= self.cwords:
            return  # the pending region is stored whole
        if w >= self.hi:
            self.hi = w + 1
        while self.lo < self.cwords and self.bits[self.lo] == <uint64_t>0xFFFFFFFFFFFFFFFF:
            self.lo += 1

    cdef void _clear_bit(self, int32_t i) noexcept:
        cdef int32_t b = self.bit_of[i]
        cdef int32_t w = b >> 6
        self.bits[w] &= ~((<uint64_t>1) << (b & 63))
        self.hash ^= self.zobrist[i]
        if w >= self.cwords:
            return
        if w < self.lo:
            self.lo = w
        while self.hi > self.lo and self.bits[self.hi - 1] == 0:
            self.hi -= 1

    cdef void _lift(self, int32_t e) noexcept:
        cdef int32_t* nxt = self.nxt
        cdef int32_t* prv = self.prv
        nxt[prv[e]] = nxt[e]
        prv[nxt[e]] = prv[e]
        cdef int32_t r = self.ret_entry[self.op_of[e]]
        if r:
            nxt[prv[r]] = nxt[r]
            prv[nxt[r]] = prv[r]

    cdef void _unlift(self, int32_t e) noexcept:
        cdef int32_t* nxt = self.nxt
        cdef int32_t* prv = self.prv
        cdef int32_t r = self.ret_entry[self.op_of[e]]
        if r:
            nxt[prv[r]] = r
            prv[nxt[r]] = r
        nxt[prv[e]] = e
        prv[nxt[e]] = e

    def run(self, int64_t steps_max):
        """Search for at most steps_max steps; returns a VERDICT_* (RUNNING: call again).

        Once the verdict is decided, further calls return it without doing anything.
        """
        if self.verdict != VERDICT_RUNNING:
            return self.verdict
        cdef int64_t done = 0
        cdef int32_t e, i, c, k
        cdef int64_t new_state
        cdef int inserted
        while done < steps_max:
            if self.remaining == 0:
                self.verdict = VERDICT_LINEARIZABLE
                break
            done += 1
            e = self.entry
            i = self.op_of[e]
            if self.is_call[e]:
                new_state = self._apply(self.state, i)
                if new_state >= 0:
                    self._set_bit(i)
                    inserted = self._cache_insert(new_state)
                    if inserted == 1:
                        self.stack_entry[self.depth] = e
                        self.stack_state[self.depth] = self.state
                        self.depth += 1
                        self.state = new_state
                        self._lift(e)
                        if self.ret_entry[i]:
                            self.remaining -= 1
                        self.entry = self.nxt[0]
                        continue
                    self._clear_bit(i)
                    if inserted == 2:
                        self.verdict = VERDICT_OUT_OF_MEMORY
                        break
                self.entry = self.nxt[e]
                continue
            # A return entry: operation i returned before being linearized. Remember the
            # deepest point (for the explanation), then undo the last choice. Depth counts
            # completed operations only: linearizing an info operation is optional, so a
            # path that spent its depth on those explains less.
            if self.completed - self.remaining > self.best_progress or self.stuck_ < 0:
                self.best_progress = self.completed - self.remaining
                for k in range(self.depth):
                    self.best_ops[k] = self.op_of[self.stack_entry[k]]
                self.best_depth = self.depth
                self.best_state_ = self.state
                self.stuck_ = i
            if self.depth == 0:
                self.verdict = VERDICT_VIOLATION
                break
            self.depth -= 1
            c = self.stack_entry[self.depth]
            self.state = self.stack_state[self.depth]
            k = self.op_of[c]
            self._clear_bit(k)
            self._unlift(c)
            if self.ret_entry[k]:
                self.remaining += 1
            self.entry = self.nxt[c]
        if self.remaining == 0 and self.verdict == VERDICT_RUNNING:
            self.verdict = VERDICT_LINEARIZABLE
        self.steps_ += done
        return self.verdict

    @property
    def steps(self):
        """Search steps taken so far (one per entry visited)."""
        return self.steps_

    @property
    def cache_entries(self):
        """(linearized set, state) pairs in the memo cache."""
        return self.count

    @property
    def evictions(self):
        """How many times a full cache dropped its farthest states to go on."""
        return self.evictions_

    @property
    def cache_bytes(self):
        """Bytes held by the memo cache (slot table, bitset arena, step memo)."""
        return self._cache_bytes()

    @property
    def best(self):
        """Operations of the longest linearizable prefix found, in linearization order."""
        return [self.best_ops[k] for k in range(self.best_depth)]

    @property
    def best_state(self):
        """The state after `best`."""
        return self.best_state_

    @property
    def stuck(self):
        """The operation whose return ended the deepest path (-1 before any backtrack)."""
        return self.stuck_

    @property
    def depth_now(self):
        """Operations linearized on the current path."""
        return self.depth
