"""Contract of haperf._native.lincheck: the linearizability search core (Wing & Gong, Lowe).

Search holds one partition's history as integer arrays (see haperf.chaos.lincheck.Problem for
the encoding) and runs the search in slices of at most `steps_max` steps, so the caller can look
at its clock between slices; nothing here reads a clock.

Invariants:
- Entries form a doubly linked list with the head at index 0; a successor of 0 means the end.
  A lifted (linearized) operation's call entry, and its return entry when it has one, are out
  of the list; undo puts them back in the reverse order, restoring the exact previous links.
- `bits` is the set of linearized operations and `hash` the XOR of their Zobrist keys; both are
  updated with every lift and undo, so the cache key is never recomputed from scratch.
- Completed operations own bits 0..completed-1 (in operation order), operations without a
  return own the words after them. In the completed region, `lo` is the first word that is not
  all ones and `hi` one past the last nonzero word (lo <= hi <= cwords). The cache stores words
  lo..hi-1 and the whole pending region, with lo: completed operations are linearized roughly in
  history order, so the window stays a few words wide however long the history is, and
  (lo, window, pending words) is a canonical form of the whole set.
- Every (bits, state) pair in the cache was reached by a sequence of legal steps; a pair is
  explored at most once while it stays cached. The cache's memory never exceeds
  cache_bytes_max (plus, during an eviction, a transient copy of the surviving slots): when
  it is full, the states whose window is farthest from the current one are evicted (a lost
  entry can only cost repeated work, never a wrong verdict); only when eviction cannot free a
  quarter of the entries does run() return VERDICT_OUT_OF_MEMORY.
- A KIND_STEP answer is asked of the caller once per (state, operation) pair and remembered
  (the step function must be deterministic); that memo counts towards cache_bytes_max too.
- `remaining` is the number of return entries still in the list; 0 means every completed
  operation is linearized, which is success (operations without a return may never happen).
"""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint64_t


cdef enum:
    KIND_READ = 0
    KIND_WRITE = 1
    KIND_CAS = 2
    KIND_CAS_FAILED = 3
    KIND_STEP = 4


cdef struct CacheSlot:
    uint64_t hash      # Zobrist hash of the bitset mixed with the state
    int64_t state
    int64_t offset     # first stored word in the arena; -1 = empty slot
    int32_t lo         # words below lo are all ones (not stored)
    int32_t length     # words lo .. lo+length-1 are stored; all words above are zero


cdef struct StepSlot:
    int64_t state      # -1 = empty slot
    int64_t op
    int64_t result     # what step(state, op) answered (-1 = illegal)


@cython.final
cdef class Search:
    cdef int32_t n               # operations
    cdef int32_t words           # uint64 words per bitset: cwords + pwords
    cdef int32_t cwords          # words of completed operations' bits (bits 0 .. completed-1)
    cdef int32_t pwords          # words of the operations without a return (stored whole)
    cdef int32_t* bit_of         # operation -> its bit in `bits`
    cdef int32_t* op_of          # entry -> operation
    cdef char* is_call           # entry -> 1 for a call entry
    cdef int32_t* nxt
    cdef int32_t* prv
    cdef int32_t* ret_entry      # operation -> its return entry, 0 when it has none
    cdef int32_t* kinds
    cdef int64_t* a
    cdef int64_t* b
    cdef uint64_t* zobrist
    cdef uint64_t* bits
    cdef int32_t lo
    cdef int32_t hi
    cdef uint64_t hash
    cdef int64_t state
    cdef int32_t entry           # where the walk is
    cdef int32_t remaining
    cdef int32_t depth
    cdef int32_t* stack_entry
    cdef int64_t* stack_state
    cdef object step_fn
    cdef CacheSlot* table
    cdef uint64_t capacity       # slots, a power of two
    cdef uint64_t count
    cdef uint64_t* arena
    cdef uint64_t arena_words
    cdef uint64_t arena_used
    cdef uint64_t cache_bytes_max
    cdef int32_t* best_ops
    cdef int32_t best_depth
    cdef int32_t best_progress   # completed operations linearized at the deepest point
    cdef int32_t completed       # operations with a return entry
    cdef int64_t best_state_
    cdef int32_t stuck_
    cdef int64_t steps_
    cdef StepSlot* memo          # step(state, op) answers, so the callback runs once per pair
    cdef uint64_t memo_capacity  # slots, a power of two (0 = no KIND_STEP operations)
    cdef uint64_t memo_count
    cdef int64_t evictions_
    cdef int verdict

    cdef int64_t _apply(self, int64_t state, int32_t i) except? -2
    cdef int _cache_insert(self, int64_t state) noexcept
    cdef int _cache_insert_once(self, int64_t state) noexcept
    cdef int _evict(self) noexcept
    cdef int64_t _step(self, int64_t state, int32_t i) except? -2
    cdef uint64_t _cache_bytes(self) noexcept
    cdef int _grow(self) noexcept
    cdef void _set_bit(self, int32_t i) noexcept
    cdef void _clear_bit(self, int32_t i) noexcept
    cdef void _lift(self, int32_t e) noexcept
    cdef void _unlift(self, int32_t e) noexcept
