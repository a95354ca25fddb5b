"""Contract of haperf._native.tracker: the leader's view of each follower (Raft 5.3, thesis 3.5).

Progress holds match (highest index known replicated), next (next index to send), the flow-control
state and the Inflights window. States (etcd-raft's design):
    PROBE      one AppendEntries at a time until the follower's match is found (probe_sent pauses)
    REPLICATE  optimistic pipelining: next advances on send, at most inflight_msgs_max un-acked
               AppendEntries carrying entries (the Inflights ring)
    SNAPSHOT   the follower needs the snapshot; appends pause until it is installed

Invariants: match < next; a rejection at or below match never moves next (it is stale, or the
follower lost acknowledged state: counted in match_rejects, probing stays heartbeat-paced);
inflight indexes are increasing; the ring never holds more than its size.
"""

cimport cython
from libc.stdint cimport uint64_t

cpdef enum ProgressState:
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2

# Largest window a Config may ask for (bounds the ring allocation).
cdef enum:
    INFLIGHT_MSGS_MAX = 65536


@cython.final
cdef class Inflights:
    cdef uint64_t* buf
    cdef Py_ssize_t start
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t size

    cdef bint full(self) noexcept
    cdef void add(self, uint64_t last_index) noexcept
    cdef void free_le(self, uint64_t index) noexcept
    cdef void free_first_one(self) noexcept
    cdef void reset(self) noexcept


@cython.final
cdef class Progress:
    cdef public uint64_t id
    cdef public uint64_t match
    cdef public uint64_t next
    cdef public int state
    cdef public bint probe_sent
    cdef public bint recent_active
    cdef public bint is_learner
    cdef public uint64_t pending_snapshot
    cdef public uint64_t snap_offset
    cdef public uint64_t acked_round
    # Rejections of an append at or below match: the follower lost entries it had acknowledged
    # (a wiped or lying disk), or a reject delayed past a later ack. Never reset.
    cdef public uint64_t match_rejects
    cdef public Inflights inflights

    cdef void reset(self, uint64_t last_index) noexcept
    cdef void become_probe(self) noexcept
    cdef void become_replicate(self) noexcept
    cdef void become_snapshot(self, uint64_t snapshot_index) noexcept
    cdef bint maybe_update(self, uint64_t n) noexcept
    cdef bint maybe_decr_to(self, uint64_t rejected, uint64_t match_hint) noexcept
    cdef bint is_paused(self) noexcept
