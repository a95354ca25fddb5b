"""Contract of haperf._native.confchange: Raft membership changes and their log payload.

A ConfChange is a list of (op, node_id) changes plus a transition:
    one voter added or removed, nothing else     -> simple change (Raft thesis 4.1, one server at
                                                    a time), unless joint=True
    several voters changed, or joint=True        -> enter joint consensus C_old,new (thesis 4.3)
    no changes at all                            -> leave joint consensus (C_new alone)
Learners (non-voting members, thesis 4.2.1) can be added, removed, and promoted (ADD_VOTER of a
learner). Demoting a voter to learner is refused while it would need the etcd "learners next"
set (which ConfState cannot carry): remove the voter, then add it back as a learner.

Payload layout (big-endian): b"CC", version u8 (1), flags u8 (bit0 joint, bit1 auto_leave),
count u16, then count x (op u8, node_id u64). decode() rejects anything else with ConfChangeError.

Membership is a Membership value: voters, learners, voters_outgoing (non-empty only while joint),
auto_leave; apply() returns a new one or raises ConfChangeError, never mutating its input.
"""

cimport cython

cpdef enum ConfChangeOp:
    CC_ADD_VOTER = 1
    CC_REMOVE_NODE = 2
    CC_ADD_LEARNER = 3

# Most changes one ConfChange may carry (named bound for the decoder).
cdef enum:
    CONF_CHANGES_MAX = 64


@cython.final
cdef class ConfChange:
    cdef readonly tuple changes
    cdef readonly object joint
    cdef readonly bint auto_leave

    cpdef bytes encode(self)
    cpdef bint is_leave_joint(self) except -1


@cython.final
cdef class Membership:
    cdef readonly tuple voters
    cdef readonly tuple learners
    cdef readonly tuple voters_outgoing
    cdef readonly bint auto_leave

    cpdef bint is_joint(self) except -1
    cpdef Membership apply(self, ConfChange cc)
    cpdef tuple all_ids(self)

cpdef ConfChange decode(object data)
