"""Contract of haperf._native.quorum: majority arithmetic for Raft (commit index, votes, leases).

A configuration is a set of voter ids; joint consensus (Raft thesis 4.3) combines two of them and
a decision needs a majority of each, which the caller composes from these primitives (min of the
two committed indexes; a vote is won only if won in both and lost if lost in either).

Invariants: functions are pure over the arrays they are given, never allocate beyond the named
maximum VOTERS_MAX, never raise. An empty configuration agrees with anything: its committed index
is UINT64_MAX and its vote is won, so a joint rule degenerates to the single-config rule.
"""

from libc.stdint cimport uint64_t

# The most voters one configuration may have (arrays of this size live on the stack).
cdef enum:
    VOTERS_MAX = 64

cdef enum VoteOutcome:
    VOTE_PENDING = 0
    VOTE_WON = 1
    VOTE_LOST = 2

cdef uint64_t majority_value(uint64_t* values, Py_ssize_t n) noexcept nogil
cdef VoteOutcome vote_outcome(Py_ssize_t voters, Py_ssize_t granted, Py_ssize_t rejected) noexcept nogil
cdef VoteOutcome joint_outcome(VoteOutcome incoming, VoteOutcome outgoing) noexcept nogil
