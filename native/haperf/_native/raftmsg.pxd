"""Contract of haperf._native.raftmsg: the Raft message and entry types every layer shares.

One Message class carries every Raft message (the etcd-raft raftpb shape): `type` says which
fields mean something. The core (haperf._native.raft) builds and reads them through cimport; the
codec (haperf._native.codec) encodes and decodes them; the simulator and the TCP runtime only move
encoded bytes. Terms and indexes are uint64_t; node ids are uint64_t and 0 means "none".

Field use by type (fields not listed stay at their zero defaults and are not encoded):
    all            type, to, frm, term
    MSG_PROP       entries (data only; term/index are assigned by the leader)
    MSG_APP        log_term, index (of the entry before `entries`), entries, commit
    MSG_APP_RESP   index (last matching/appended index), reject, reject_hint (conflict index),
                   hint_term (term of the conflict index on the follower, 0 if it has none)
    MSG_VOTE, MSG_PREVOTE   log_term, index (candidate's last entry), context (b"transfer"
                   when campaigning after TimeoutNow, so it bypasses the leader lease)
    MSG_VOTE_RESP, MSG_PREVOTE_RESP   reject
    MSG_HEARTBEAT  commit, context (ReadIndex round it confirms, may be empty)
    MSG_HEARTBEAT_RESP   context
    MSG_SNAP       snapshot (metadata), snap_offset, snap_data, snap_done
    MSG_SNAP_RESP  index (snapshot index), snap_offset (next expected offset), reject
    MSG_TIMEOUT_NOW   (nothing more)
    MSG_READ_INDEX    context (the request id, opaque bytes)
    MSG_READ_INDEX_RESP  index (the read index), context, reject (not leader)
"""

from libc.stdint cimport uint8_t, uint64_t


cpdef enum MsgType:
    MSG_PROP = 1
    MSG_APP = 2
    MSG_APP_RESP = 3
    MSG_VOTE = 4
    MSG_VOTE_RESP = 5
    MSG_PREVOTE = 6
    MSG_PREVOTE_RESP = 7
    MSG_HEARTBEAT = 8
    MSG_HEARTBEAT_RESP = 9
    MSG_SNAP = 10
    MSG_SNAP_RESP = 11
    MSG_TIMEOUT_NOW = 12
    MSG_READ_INDEX = 13
    MSG_READ_INDEX_RESP = 14


cpdef enum EntryType:
    ENTRY_NORMAL = 0
    ENTRY_CONF_CHANGE = 1


cdef class Entry:
    """One log entry. `data` is bytes, or a memoryview into a received frame (zero-copy)."""
    cdef public uint64_t term
    cdef public uint64_t index
    cdef public uint8_t type
    cdef public object data


cdef class ConfState:
    """Membership as of a snapshot: voters, learners, and the outgoing voters of a joint config."""
    cdef public tuple voters
    cdef public tuple learners
    cdef public tuple voters_outgoing
    cdef public bint auto_leave


cdef class SnapshotMeta:
    """What a snapshot covers: the last included index and term, and the membership there."""
    cdef public uint64_t index
    cdef public uint64_t term
    cdef public ConfState conf


cdef class Message:
    """Any Raft message; see the module docstring for which fields each type uses."""
    cdef public uint8_t type
    cdef public uint64_t to
    cdef public uint64_t frm
    cdef public uint64_t term
    cdef public uint64_t log_term
    cdef public uint64_t index
    cdef public uint64_t commit
    cdef public bint reject
    cdef public uint64_t reject_hint
    cdef public uint64_t hint_term
    cdef public list entries
    cdef public bytes context
    cdef public SnapshotMeta snapshot
    cdef public uint64_t snap_offset
    cdef public object snap_data
    cdef public bint snap_done
