"""haperf._native.raftmsg: the Raft Message, Entry, ConfState and SnapshotMeta types.

Owns construction, equality and repr of the shared message types (the layout is in the .pxd).
Invariant: objects are plain data; no method here does I/O or validates protocol rules (the core
checks protocol invariants, the codec checks wire bounds).
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t

# Module-level names for Python callers (cpdef enum members live on the enum class).
globals().update(MsgType.__members__)
globals().update(EntryType.__members__)

MSG_TYPE_NAMES = {
    MSG_PROP: "MSG_PROP",
    MSG_APP: "MSG_APP",
    MSG_APP_RESP: "MSG_APP_RESP",
    MSG_VOTE: "MSG_VOTE",
    MSG_VOTE_RESP: "MSG_VOTE_RESP",
    MSG_PREVOTE: "MSG_PREVOTE",
    MSG_PREVOTE_RESP: "MSG_PREVOTE_RESP",
    MSG_HEARTBEAT: "MSG_HEARTBEAT",
    MSG_HEARTBEAT_RESP: "MSG_HEARTBEAT_RESP",
    MSG_SNAP: "MSG_SNAP",
    MSG_SNAP_RESP: "MSG_SNAP_RESP",
    MSG_TIMEOUT_NOW: "MSG_TIMEOUT_NOW",
    MSG_READ_INDEX: "MSG_READ_INDEX",
    MSG_READ_INDEX_RESP: "MSG_READ_INDEX_RESP",
}


def _bytes_of(object data):
    return None if data is None else bytes(data)


# Entries are created by the hundred per decoded AppendEntries and kept by the thousand in the
# in-memory log. A freelist skips malloc/free for them; no_gc drops the cyclic-GC header and
# the track/untrack on every create and free (together 3.3 -> 2.2 us for a 100-entry decode).
# Safe because an Entry holds only ints and `data`, a bytes-like payload, which cannot refer
# back to it: do not store containers in Entry.data.
@cython.final
@cython.freelist(1024)
@cython.no_gc
cdef class Entry:
    def __init__(self, uint64_t term=0, uint64_t index=0, object data=b"", uint8_t type=ENTRY_NORMAL):
        self.term = term
        self.index = index
        self.type = type
        self.data = data

    def __eq__(self, other):
        if not isinstance(other, Entry):
            return NotImplemented
        cdef Entry o = other
        return (self.term == o.term and self.index == o.index and self.type == o.type
                and _bytes_of(self.data) == _bytes_of(o.data))

    __hash__ = None

    def __repr__(self):
        return f"Entry(term={self.term}, index={self.index}, type={self.type}, data={_bytes_of(self.data)!r})"


@cython.final
cdef class ConfState:
    def __init__(self, voters=(), learners=(), voters_outgoing=(), bint auto_leave=False):
        self.voters = tuple(voters)
        self.learners = tuple(learners)
        self.voters_outgoing = tuple(voters_outgoing)
        self.auto_leave = auto_leave

    def __eq__(self, other):
        if not isinstance(other, ConfState):
            return NotImplemented
        cdef ConfState o = other
        return (self.voters == o.voters and self.learners == o.learners
                and self.voters_outgoing == o.voters_outgoing and self.auto_leave == o.auto_leave)

    __hash__ = None

    def __repr__(self):
        return (f"ConfState(voters={self.voters}, learners={self.learners}, "
                f"voters_outgoing={self.voters_outgoing}, auto_leave={self.auto_leave})")


@cython.final
cdef class SnapshotMeta:
    def __init__(self, uint64_t index=0, uint64_t term=0, ConfState conf=None):
        self.index = index
        self.term = term
        self.conf = ConfState() if conf is None else conf

    def __eq__(self, other):
        if not isinstance(other, SnapshotMeta):
            return NotImplemented
        cdef SnapshotMeta o = other
        return self.index == o.index and self.term == o.term and self.conf == o.conf

    __hash__ = None

    def __repr__(self):
        return f"SnapshotMeta(index={self.index}, term={self.term}, conf={self.conf!r})"


@cython.final
cdef class Message:
    def __init__(
        self,
        uint8_t type=0,
        uint64_t to=0,
        uint64_t frm=0,
        uint64_t term=0,
        uint64_t log_term=0,
        uint64_t index=0,
        uint64_t commit=0,
        bint reject=False,
        uint64_t reject_hint=0,
        uint64_t hint_term=0,
        list entries=None,
        bytes context=b"",
        SnapshotMeta snapshot=None,
        uint64_t snap_offset=0,
        object snap_data=b"",
        bint snap_done=False,
    ):
        self.type = type
        self.to = to
        self.frm = frm
        self.term = term
        self.log_term = log_term
        self.index = index
        self.commit = commit
        self.reject = reject
        self.reject_hint = reject_hint
        self.hint_term = hint_term
        self.entries = [] if entries is None else entries
        self.context = context
        self.snapshot = snapshot
        self.snap_offset = snap_offset
        self.snap_data = snap_data
        self.snap_done = snap_done

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        cdef Message o = other
        return (
            self.type == o.type and self.to == o.to and self.frm == o.frm
            and self.term == o.term and self.log_term == o.log_term and self.index == o.index
            and self.commit == o.commit and self.reject == o.reject
            and self.reject_hint == o.reject_hint and self.hint_term == o.hint_term
            and self.entries == o.entries and self.context == o.context
            and self.snapshot == o.snapshot and self.snap_offset == o.snap_offset
            and _bytes_of(self.snap_data) == _bytes_of(o.snap_data)
            and self.snap_done == o.snap_done
        )

    __hash__ = None

    def __repr__(self):
        name = MSG_TYPE_NAMES.get(self.type, str(self.type))
        return (f"Message({name}, to={self.to}, frm={self.frm}, term={self.term}, "
                f"log_term={self.log_term}, index={self.index}, commit={self.commit}, "
                f"reject={self.reject}, reject_hint={self.reject_hint}, hint_term={self.hint_term}, "
                f"entries={len(self.entries)}, context={self.context!r}, snapshot={self.snapshot!r}, "
                f"snap_offset={self.snap_offset}, snap_done={self.snap_done})")
