"""Contract of haperf._native.raftlog: the in-memory Raft log since the last snapshot.

Indexes: `entries[k]` has index `snap_index + 1 + k`; the snapshot stands in for everything up to
`snap_index` (whose term is `snap_term`). Markers, always ordered
    snap_index <= applied <= applying <= committed <= last_index()
    snap_index <= stable <= last_index()       (entries above `stable` are not yet persisted)
`applying` is the last index handed out in a Ready; `applied` the last one the host confirmed.

Invariants (checked where cheap): a committed entry is never overwritten (Raft 5.4 Leader
Completeness relies on it); terms are non-decreasing along the log; commit never moves back.
"""

cimport cython
from libc.stdint cimport uint64_t


@cython.final
cdef class RaftLog:
    cdef public list entries
    cdef public uint64_t snap_index
    cdef public uint64_t snap_term
    cdef public uint64_t committed
    cdef public uint64_t applying
    cdef public uint64_t applied
    cdef public uint64_t stable

    cdef uint64_t last_index(self) noexcept
    cdef uint64_t last_term(self) noexcept
    cdef uint64_t term(self, uint64_t index) noexcept
    cdef bint match_term(self, uint64_t index, uint64_t term) noexcept
    cdef bint is_up_to_date(self, uint64_t last_index, uint64_t last_term) noexcept
    cdef uint64_t find_conflict(self, list ents) except? 0
    cdef uint64_t find_conflict_by_term(self, uint64_t index, uint64_t term) noexcept
    cdef int append(self, list ents, Py_ssize_t start) except -1
    cdef int maybe_append(self, uint64_t index, uint64_t log_term, uint64_t commit,
                          list ents, uint64_t* last_new) except -1
    cdef list slice_from(self, uint64_t lo, Py_ssize_t bytes_max)
    cdef list unstable(self)
    cdef list next_committed(self, Py_ssize_t bytes_max)
    cdef bint has_next_committed(self) noexcept
    cdef void stable_to(self, uint64_t index, uint64_t term) noexcept
    cdef int commit_to(self, uint64_t index) except -1
    cdef int applied_to(self, uint64_t index) except -1
    cdef void restore(self, uint64_t index, uint64_t term) noexcept
    cdef int compact(self, uint64_t index) except -1
