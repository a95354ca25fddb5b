"""haperf._native.quorum: majority arithmetic for Raft (commit index, vote tallies, leases).

Owns the one place where "a majority" is computed (Raft 5.2 elections, 5.3/5.4.2 commitment,
thesis 4.3 joint consensus, thesis 6.4 read confirmation). Invariant: a value agreed by a
majority is the largest v such that more than half of the voters report >= v.
"""

from libc.stdint cimport UINT64_MAX, uint64_t


cdef uint64_t majority_value(uint64_t* values, Py_ssize_t n) noexcept nogil:
    """The largest value that more than half of `values` are >= (sorts `values` in place)."""
    cdef Py_ssize_t i, j
    cdef uint64_t v
    if n <= 0:
        return UINT64_MAX
    # Insertion sort, descending: configurations are tiny (<= VOTERS_MAX), so this beats qsort.
    for i in range(1, n):
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] < v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v
    # With n voters a majority is n // 2 + 1 of them: the (n // 2)-th largest (0-based).
    return values[n // 2]


cdef VoteOutcome vote_outcome(Py_ssize_t voters, Py_ssize_t granted, Py_ssize_t rejected) noexcept nogil:
    cdef Py_ssize_t q = voters // 2 + 1
    if voters == 0 or granted >= q:
        return VOTE_WON
    if voters - rejected < q:
        return VOTE_LOST
    return VOTE_PENDING


cdef VoteOutcome joint_outcome(VoteOutcome incoming, VoteOutcome outgoing) noexcept nogil:
    if incoming == VOTE_LOST or outgoing == VOTE_LOST:
        return VOTE_LOST
    if incoming == VOTE_WON and outgoing == VOTE_WON:
        return VOTE_WON
    return VOTE_PENDING


def committed_index(values):
    """Python entry for tests: the value a majority of `values` has reached (UINT64_MAX if empty)."""
    cdef uint64_t buf[VOTERS_MAX]
    cdef Py_ssize_t n = len(values), i
    if n > VOTERS_MAX:
        raise ValueError(f"at most {VOTERS_MAX} voters per configuration, got {n}")
    for i in range(n):
        buf[i] = values[i]
    return majority_value(buf, n)


def vote_result(Py_ssize_t voters, Py_ssize_t granted, Py_ssize_t rejected):
    """Python entry for tests: 0 pending, 1 won, 2 lost."""
    return <int>vote_outcome(voters, granted, rejected)
