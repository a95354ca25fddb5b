"""haperf._native.raftlog: the in-memory Raft log since the last snapshot (no I/O).

Owns term lookups, the conflict search of Raft 5.3 (AppendEntries consistency check), the
conflict-term hint of thesis 3.5 (fast backtracking), truncation of a conflicting tail, the
unstable/stable split that tells the host what to persist, and the committed/applying/applied
markers that tell it what to apply. See raftlog.pxd for the index layout and invariants.
"""

cimport cython
from libc.stdint cimport uint64_t

from haperf._native.config cimport HAPERF_DEBUG
from haperf._native.raftmsg cimport Entry


# Returned instead of a fresh empty list (callers treat returned lists as read-only).
cdef list _EMPTY = []


cdef inline Py_ssize_t _size(Entry e) except -1:
    # Sizes only steer batching, so a data object without len() counts as empty.
    return len(e.data) if e.data is not None else 0


@cython.final
cdef class RaftLog:
    """Entries since the snapshot at (snap_index, snap_term), with persistence/apply markers."""

    def __init__(self, uint64_t snap_index=0, uint64_t snap_term=0):
        self.entries = []
        self.restore(snap_index, snap_term)

    cdef uint64_t last_index(self) noexcept:
        return self.snap_index + <uint64_t>len(self.entries)

    cdef uint64_t last_term(self) noexcept:
        cdef Py_ssize_t n = len(self.entries)
        if n:
            return (<Entry>self.entries[n - 1]).term
        return self.snap_term

    cdef uint64_t term(self, uint64_t index) noexcept:
        """The term of `index`, or 0 when it is compacted away or beyond the log."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index():
            return 0
        return (<Entry>self.entries[index - self.snap_index - 1]).term

    cdef bint match_term(self, uint64_t index, uint64_t term) noexcept:
        if index < self.snap_index or index > self.last_index():
            return False
        return self.term(index) == term

    cdef bint is_up_to_date(self, uint64_t last_index, uint64_t last_term) noexcept:
        # Raft 5.4.1: compare the last terms, then the lengths.
        cdef uint64_t my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    cdef uint64_t find_conflict(self, list ents) except? 0:
        """The index of the first entry of `ents` that is missing or differs; 0 if none."""
        cdef Entry e
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    cdef uint64_t find_conflict_by_term(self, uint64_t index, uint64_t term) noexcept:
        """The largest index <= `index` whose term is <= `term` (thesis 3.5 backtracking hint).

        Every entry between the result and `index` has a term above `term`, so none of them can
        match a log whose entry at `index` has term `term`: the search skips a whole term at once.
        """
        if index > self.last_index():
            index = self.last_index()
        while index > self.snap_index:
            if self.term(index) <= term:
                break
            index -= 1
        return index

    cdef int append(self, list ents, Py_ssize_t start) except -1:
        """Append ents[start:], truncating any existing entries from the first one's index on."""
        cdef Py_ssize_t n = len(ents)
        cdef uint64_t first
        if start >= n:
            return 0
        first = (<Entry>ents[start]).index
        assert first > self.committed, (
            f"Raft 5.4: entry {first} would overwrite the committed log (commit={self.committed})")
        assert first > self.snap_index and first <= self.last_index() + 1, (
            f"entry {first} leaves a gap after the log end {self.last_index()}")
        if first <= self.last_index():
            del self.entries[first - self.snap_index - 1:]
        if self.stable >= first:
            self.stable = first - 1
        if start == 0:
            self.entries.extend(ents)
        else:
            self.entries.extend(ents[start:])
        if HAPERF_DEBUG:
            self._check_terms()
        return 0

    def _check_terms(self):
        cdef uint64_t prev = self.snap_term
        cdef uint64_t expect = self.snap_index + 1
        cdef Entry e
        for e in self.entries:
            assert e.index == expect, f"log index gap: {e.index} where {expect} was expected"
            assert e.term >= prev, f"log term decreases at index {e.index}"
            prev = e.term
            expect += 1

    cdef int maybe_append(self, uint64_t index, uint64_t log_term, uint64_t commit,
                          list ents, uint64_t* last_new) except -1:
        """Raft 5.3 AppendEntries receiver: 1 if the log matched at (index, log_term), else 0."""
        cdef uint64_t conflict
        if not self.match_term(index, log_term):
            return 0
        last_new[0] = index + <uint64_t>len(ents)
        conflict = self.find_conflict(ents)
        if conflict:
            # Raft 5.3: delete the conflicting entry and all that follow, then append.
            self.append(ents, <Py_ssize_t>(conflict - index - 1))
        # Raft 5.3: commit = min(leaderCommit, index of last new entry).
        self.commit_to(min(commit, last_new[0]))
        return 1

    cdef list slice_from(self, uint64_t lo, Py_ssize_t bytes_max):
        """Entries from index `lo` on, at most `bytes_max` of data but always at least one."""
        cdef Py_ssize_t k, n = len(self.entries), total = 0, end
        if lo > self.last_index() or lo <= self.snap_index:
            return _EMPTY
        k = <Py_ssize_t>(lo - self.snap_index - 1)
        end = k
        while end < n:
            total += _size(<Entry>self.entries[end])
            if total > bytes_max and end > k:
                break
            end += 1
        return self.entries[k:end]

    cdef list unstable(self):
        return self.entries[self.stable - self.snap_index:]

    cdef bint has_next_committed(self) noexcept:
        return self.committed > self.applying

    cdef list next_committed(self, Py_ssize_t bytes_max):
        """Committed entries not yet handed out, at most `bytes_max` bytes (at least one)."""
        cdef Py_ssize_t k, end, total = 0, stop
        cdef list out
        if self.committed <= self.applying:
            return _EMPTY
        k = <Py_ssize_t>(self.applying - self.snap_index)
        stop = <Py_ssize_t>(self.committed - self.snap_index)
        end = k
        while end < stop:
            total += _size(<Entry>self.entries[end])
            if total > bytes_max and end > k:
                break
            end += 1
        out = self.entries[k:end]
        self.applying += <uint64_t>(end - k)
        return out

    cdef void stable_to(self, uint64_t index, uint64_t term) noexcept:
        # Only if the entry is still the one persisted (a newer Ready may have truncated it).
        if index > self.stable and self.match_term(index, term):
            self.stable = index

    cdef int commit_to(self, uint64_t index) except -1:
        if index > self.committed:
            assert index <= self.last_index(), (
                f"commit {index} is beyond the last log index {self.last_index()}")
            self.committed = index
        return 0

    cdef int applied_to(self, uint64_t index) except -1:
        if index > self.applied:
            assert index <= self.committed, f"applied {index} beyond commit {self.committed}"
            self.applied = index
            if self.applying < index:
                self.applying = index
        return 0

    cdef void restore(self, uint64_t index, uint64_t term) noexcept:
        """Replace the whole log by a snapshot at (index, term)."""
        self.entries = []
        self.snap_index = index
        self.snap_term = term
        self.committed = index
        self.applying = index
        self.applied = index
        self.stable = index

    cdef int compact(self, uint64_t index) except -1:
        """Drop entries up to `index` (already applied and persisted): the snapshot covers them."""
        if index <= self.snap_index:
            return 0
        assert index <= self.applied and index <= self.stable, (
            f"compact({index}) beyond applied {self.applied} or stable {self.stable}")
        self.snap_term = self.term(index)
        del self.entries[:index - self.snap_index]
        self.snap_index = index
        return 0

    # Python views for tests and status.
    @property
    def last(self):
        return self.last_index()

    def term_of(self, uint64_t index):
        return self.term(index)
