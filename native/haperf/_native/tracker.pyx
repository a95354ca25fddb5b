"""haperf._native.tracker: per-follower replication progress and the in-flight window.

Owns Progress (match/next, PROBE/REPLICATE/SNAPSHOT flow control) and Inflights (a ring of the
last index of each un-acknowledged AppendEntries, bounded by the configured window). The leader
(haperf._native.raft) drives them; nothing here sends messages.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t

globals().update(ProgressState.__members__)
STATE_NAMES = ("probe", "replicate", "snapshot")


@cython.final
cdef class Inflights:
    """A bounded FIFO of the last index sent in each in-flight AppendEntries (flow control)."""

    def __cinit__(self, Py_ssize_t size):
        if size < 1 or size > INFLIGHT_MSGS_MAX:
            raise ValueError(f"inflight window must be in [1, {INFLIGHT_MSGS_MAX}], got {size}")
        self.buf = <uint64_t*>PyMem_Malloc(size * sizeof(uint64_t))
        if self.buf == NULL:
            raise MemoryError()
        self.size = size
        self.start = 0
        self.count = 0

    def __dealloc__(self):
        PyMem_Free(self.buf)

    cdef bint full(self) noexcept:
        return self.count == self.size

    cdef void add(self, uint64_t last_index) noexcept:
        # Callers check full() first (a paused follower gets no entries), so this never overflows.
        cdef Py_ssize_t slot
        if self.count == self.size:
            return
        slot = self.start + self.count
        if slot >= self.size:
            slot -= self.size
        self.buf[slot] = last_index
        self.count += 1

    cdef void free_le(self, uint64_t index) noexcept:
        """Release every in-flight message whose last index is <= `index` (acknowledged)."""
        while self.count > 0 and self.buf[self.start] <= index:
            self.start += 1
            if self.start == self.size:
                self.start = 0
            self.count -= 1
        if self.count == 0:
            self.start = 0

    cdef void free_first_one(self) noexcept:
        """Release the oldest in-flight message (its ack may be lost; a heartbeat got through)."""
        if self.count > 0:
            self.free_le(self.buf[self.start])

    cdef void reset(self) noexcept:
        self.start = 0
        self.count = 0

    def indexes(self):
        """The in-flight last indexes, oldest first (for tests and status)."""
        return [self.buf[(self.start + i) % self.size] for i in range(self.count)]


@cython.final
cdef class Progress:
    """The leader's replication state for one peer."""

    def __init__(self, uint64_t id, Py_ssize_t inflight_msgs_max, bint is_learner=False):
        self.id = id
        self.inflights = Inflights(inflight_msgs_max)
        self.is_learner = is_learner
        self.match = 0
        self.next = 1
        self.state = PROBE

    cdef void reset(self, uint64_t last_index) noexcept:
        """A new leadership term: nothing is known about the follower (Raft 5.3: next = last + 1)."""
        self.match = 0
        self.next = last_index + 1
        self.state = PROBE
        self.probe_sent = False
        self.recent_active = False
        self.pending_snapshot = 0
        self.snap_offset = 0
        self.acked_round = 0
        self.inflights.reset()

    cdef void become_probe(self) noexcept:
        # After a snapshot, resume right after it; otherwise right after the known match.
        if self.state == SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snap_offset = 0
        self.inflights.reset()

    cdef void become_replicate(self) noexcept:
        self.state = REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snap_offset = 0
        self.inflights.reset()

    cdef void become_snapshot(self, uint64_t snapshot_index) noexcept:
        self.state = SNAPSHOT
        self.probe_sent = False
        self.pending_snapshot = snapshot_index
        self.snap_offset = 0
        self.inflights.reset()

    cdef bint maybe_update(self, uint64_t n) noexcept:
        """An acknowledgement up to `n`; False when it is stale (nothing new)."""
        cdef bint updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    cdef bint maybe_decr_to(self, uint64_t rejected, uint64_t match_hint) noexcept:
        """A rejection of the append whose previous index was `rejected`; False when stale.

        Raft 5.3 with the fast backtracking of thesis 3.5 (the follower's conflict hint): jump
        next straight to just past the hint instead of stepping back one entry per round trip.
        """
        if rejected <= self.match:
            # Stale in every state: next never goes back to or below match. When the follower
            # really lost acknowledged entries, resending at once would loop reject -> append
            # without pause (SIM_FINDINGS #1); the next heartbeat response probes again instead.
            self.match_rejects += 1
            return False
        if self.state == REPLICATE:
            self.next = self.match + 1
            return True
        if self.next == 0 or self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    cdef bint is_paused(self) noexcept:
        if self.state == PROBE:
            return self.probe_sent
        if self.state == REPLICATE:
            return self.inflights.full()
        return True

    @property
    def state_name(self):
        return STATE_NAMES[self.state]

    def __repr__(self):
        return (f"Progress(id={self.id}, match={self.match}, next={self.next}, "
                f"state={STATE_NAMES[self.state]}, inflight={self.inflights.count})")
