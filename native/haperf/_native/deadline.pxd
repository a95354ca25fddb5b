"""Contract of haperf._native.deadline: the deadline queue behind haperf's async timeouts.

A DeadlineQueue holds (deadline_ns, object) entries in a C binary min-heap with a slot table,
so an asyncio loop needs one timer for all the timeouts running on it (armed at the earliest
live deadline) instead of one timer handle per call. Handles are generation-tagged slot numbers:
removing an entry is O(1) (its heap node goes stale and is skipped or compacted away later), and
a stale handle can never touch a reused slot. Equal deadlines expire in the order they were
added (ties break on an insertion sequence number), so expiry order is deterministic. Invariants: live <= heap_len <= entries_max;
a slot is FIRED only after pop_expired handed its object out, and remove() reports that.
`armed_ns` is the deadline the owner's timer is armed for (INT64_MAX: none); add_after()
reports a deadline earlier than it, so the owner re-arms only then.
"""

from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef struct HeapNode:
    int64_t deadline_ns
    uint64_t seq
    uint32_t slot
    uint32_t gen


cdef class DeadlineQueue:
    cdef HeapNode* _heap
    cdef Py_ssize_t _heap_len
    cdef Py_ssize_t _heap_cap
    cdef uint32_t* _gen
    cdef unsigned char* _state
    cdef int64_t* _slot_deadline
    cdef uint32_t* _free
    cdef Py_ssize_t _free_len
    cdef Py_ssize_t _slots_cap
    cdef list _objs
    cdef readonly Py_ssize_t entries_max
    cdef readonly Py_ssize_t live
    cdef readonly uint64_t added
    cdef readonly uint64_t expired
    cdef readonly uint64_t removed
    cdef readonly uint64_t compactions
    cdef uint64_t _seq
    cdef public int64_t armed_ns

    cdef int _grow_slots(self) except -1
    cdef int _push(self, int64_t deadline_ns, uint32_t slot, uint32_t gen) except -1
    cdef bint _before(self, HeapNode* a, HeapNode* b) noexcept
    cdef void _pop_root(self) noexcept
    cdef void _sift_down(self, Py_ssize_t i) noexcept
    cdef void _compact(self) noexcept
    cdef bint _node_live(self, HeapNode* node) noexcept
