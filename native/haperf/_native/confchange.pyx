"""haperf._native.confchange: Raft membership changes (thesis 4.1, 4.2.1, 4.3) and their payload.

Owns ConfChange (what a membership-change log entry says), its byte encoding, and Membership
(the configuration: voters, learners, outgoing voters while joint) with the validation rules:
a simple change changes at most one voter (thesis 4.1: any two majorities of C_old and C_new
then overlap); larger changes go through joint consensus (thesis 4.3), where decisions need a
majority of both C_old and C_new until the leave-joint entry commits. See confchange.pxd.
"""

cimport cython

from haperf._native.quorum cimport VOTERS_MAX

from haperf.errors import ConfChangeError

globals().update(ConfChangeOp.__members__)

OP_NAMES = {CC_ADD_VOTER: "add_voter", CC_REMOVE_NODE: "remove_node",
            CC_ADD_LEARNER: "add_learner"}
_MAGIC = b"CC"
_VERSION = 1
_FLAG_JOINT = 1
_FLAG_AUTO_LEAVE = 2
_HEADER = 6
_ITEM = 9


@cython.final
cdef class ConfChange:
    """A membership change: `changes` is a sequence of (op, node_id); see the module contract."""

    def __init__(self, changes=(), joint=None, bint auto_leave=True):
        cdef list out = []
        for item in changes:
            op, node = item
            if op not in OP_NAMES:
                raise ConfChangeError(f"unknown membership op {op!r}: use CC_ADD_VOTER, "
                                      "CC_REMOVE_NODE or CC_ADD_LEARNER")
            if not isinstance(node, int) or node <= 0 or node >= 2**64:
                raise ConfChangeError(f"node id must be an int in [1, 2**64), got {node!r}")
            out.append((int(op), int(node)))
        if len(out) > CONF_CHANGES_MAX:
            raise ConfChangeError(f"at most {CONF_CHANGES_MAX} changes per ConfChange, got {len(out)}")
        if joint is not None and not isinstance(joint, bool):
            raise ConfChangeError(f"joint must be None, True or False, got {joint!r}")
        if not out and joint is False:
            raise ConfChangeError("an empty ConfChange leaves joint consensus; it cannot be simple")
        self.changes = tuple(out)
        self.joint = joint
        self.auto_leave = auto_leave

    cpdef bint is_leave_joint(self) except -1:
        return len(self.changes) == 0

    cpdef bytes encode(self):
        cdef int flags = (_FLAG_JOINT if self.joint else 0) | (_FLAG_AUTO_LEAVE if self.auto_leave else 0)
        parts = [_MAGIC, bytes((_VERSION, flags)), len(self.changes).to_bytes(2, "big")]
        for op, node in self.changes:
            parts.append(bytes((op,)))
            parts.append(node.to_bytes(8, "big"))
        return b"".join(parts)

    def __eq__(self, other):
        if not isinstance(other, ConfChange):
            return NotImplemented
        cdef ConfChange o = other
        return (self.changes == o.changes and self.joint == o.joint
                and self.auto_leave == o.auto_leave)

    __hash__ = None

    def __repr__(self):
        ops = ", ".join(f"{OP_NAMES[op]}({node})" for op, node in self.changes)
        return f"ConfChange([{ops}], joint={self.joint}, auto_leave={self.auto_leave})"


cpdef ConfChange decode(object data):
    """Parse a ConfChange payload; ConfChangeError names what is wrong with bad bytes."""
    cdef bytes b = bytes(data)
    cdef Py_ssize_t n = len(b), count, i, off
    if n < _HEADER or b[:2] != _MAGIC:
        raise ConfChangeError(f"not a ConfChange payload ({n} bytes, bad magic or too short)")
    if b[2] != _VERSION:
        raise ConfChangeError(f"ConfChange payload version {b[2]} is not supported (expected 1)")
    flags = b[3]
    if flags & ~(_FLAG_JOINT | _FLAG_AUTO_LEAVE):
        raise ConfChangeError(f"ConfChange payload has unknown flags {flags:#x}")
    count = int.from_bytes(b[4:6], "big")
    if count > CONF_CHANGES_MAX or n != _HEADER + _ITEM * count:
        raise ConfChangeError(f"ConfChange payload of {n} bytes does not hold {count} changes")
    changes = []
    for i in range(count):
        off = _HEADER + _ITEM * i
        changes.append((b[off], int.from_bytes(b[off + 1:off + 9], "big")))
    # The joint flag is only ever set explicitly; None lets apply() pick simple vs joint.
    return ConfChange(changes, joint=True if flags & _FLAG_JOINT else None,
                      auto_leave=bool(flags & _FLAG_AUTO_LEAVE))


def _sorted_tuple(ids):
    return tuple(sorted(ids))


@cython.final
cdef class Membership:
    """A Raft configuration: voters, learners, and the outgoing voters while joint."""

    def __init__(self, voters=(), learners=(), voters_outgoing=(), bint auto_leave=False):
        self.voters = _sorted_tuple(set(voters))
        self.learners = _sorted_tuple(set(learners))
        self.voters_outgoing = _sorted_tuple(set(voters_outgoing))
        self.auto_leave = auto_leave
        overlap = set(self.learners) & (set(self.voters) | set(self.voters_outgoing))
        if overlap:
            raise ConfChangeError(f"nodes {sorted(overlap)} are both voters and learners")
        # The quorum code counts votes in fixed arrays of VOTERS_MAX; every configuration
        # (bootstrap, change, snapshot) is built here, so this one check bounds them all.
        if len(self.voters) > VOTERS_MAX or len(self.voters_outgoing) > VOTERS_MAX:
            raise ConfChangeError(
                f"a configuration may have at most {VOTERS_MAX} voters, got "
                f"{len(self.voters)} (outgoing {len(self.voters_outgoing)}); add learners instead"
            )

    cpdef bint is_joint(self) except -1:
        return len(self.voters_outgoing) > 0

    cpdef tuple all_ids(self):
        return _sorted_tuple(set(self.voters) | set(self.learners) | set(self.voters_outgoing))

    cpdef Membership apply(self, ConfChange cc):
        """The configuration after `cc`, or ConfChangeError if `cc` is not valid here."""
        if cc.is_leave_joint():
            if not self.is_joint():
                raise ConfChangeError("cannot leave joint consensus: the configuration is not joint")
            return Membership(self.voters, self.learners, (), False)
        if self.is_joint():
            raise ConfChangeError("a joint configuration must be left (empty ConfChange) "
                                  "before another membership change")
        voters = set(self.voters)
        learners = set(self.learners)
        for op, node in cc.changes:
            if op == CC_ADD_VOTER:
                # Promotion of a learner, or a new voter (thesis 4.2.1: add it as a learner first
                # so it catches up without hurting availability).
                learners.discard(node)
                voters.add(node)
            elif op == CC_ADD_LEARNER:
                if node in voters:
                    raise ConfChangeError(f"node {node} is a voter: demoting a voter to learner "
                                          "is not supported; remove it, then add it as a learner")
                learners.add(node)
            else:
                voters.discard(node)
                learners.discard(node)
        if not voters:
            raise ConfChangeError("the change would leave no voters; keep at least one")
        changed = set(self.voters) ^ voters
        joint = cc.joint if cc.joint is not None else len(changed) > 1
        if not joint:
            if len(changed) > 1:
                raise ConfChangeError(
                    f"a simple change may add or remove one voter (thesis 4.1), this one changes "
                    f"{sorted(changed)}: use joint=True (joint consensus, thesis 4.3)")
            return Membership(voters, learners, (), False)
        return Membership(voters, learners, self.voters, cc.auto_leave)

    def __eq__(self, other):
        if not isinstance(other, Membership):
            return NotImplemented
        cdef Membership o = other
        return (self.voters == o.voters and self.learners == o.learners
                and self.voters_outgoing == o.voters_outgoing and self.auto_leave == o.auto_leave)

    __hash__ = None

    def __repr__(self):
        return (f"Membership(voters={self.voters}, learners={self.learners}, "
                f"voters_outgoing={self.voters_outgoing}, auto_leave={self.auto_leave})")
