"""Contract of haperf._native.raft: the Raft state machine behind the etcd-raft RawNode contract.

RawNode is pure: no I/O, no clock (time is tick()), no global randomness (a splitmix64 state the
caller seeds and can read as `rng_state`). The caller feeds events (tick, step, propose,
read_index, transfer_leader, ...) and drains effects through has_ready()/ready()/advance().
See docs/raft.md and briefs' RAFT_API.md for the full contract and the ordering rules.

Invariants (asserted at state transitions): the term never decreases; at most one vote per term;
commit <= last log index and never decreases; a leader only counts replicas for entries of its
own term when advancing commit (Raft 5.4.2); a committed entry is never truncated.
"""

cimport cython
from libc.stdint cimport uint64_t

from haperf._native.confchange cimport Membership
from haperf._native.raftlog cimport RaftLog
from haperf._native.raftmsg cimport Message, SnapshotMeta
from haperf._native.tracker cimport Progress

cdef enum Role:
    ROLE_FOLLOWER = 0
    ROLE_CANDIDATE = 1
    ROLE_LEADER = 2
    ROLE_PRE_CANDIDATE = 3

# Ring of heartbeat-round send ticks kept for lease reads (rounds older than this expire a lease).
cdef enum:
    ROUND_SLOTS = 64


@cython.final
cdef class Config:
    cdef readonly uint64_t id
    cdef readonly tuple voters
    cdef readonly tuple learners
    cdef readonly int election_tick
    cdef readonly int heartbeat_tick
    cdef readonly bint pre_vote
    cdef readonly bint check_quorum
    cdef readonly Py_ssize_t inflight_msgs_max
    cdef readonly Py_ssize_t msg_bytes_max
    cdef readonly Py_ssize_t committed_bytes_max
    cdef readonly bint lease_read
    cdef readonly int lease_drift_ticks
    cdef readonly bint forward_proposals
    cdef readonly Py_ssize_t snapshot_chunk_bytes
    cdef readonly Py_ssize_t snapshot_bytes_max
    cdef readonly Py_ssize_t pending_reads_max
    cdef readonly Py_ssize_t uncommitted_entries_max


@cython.final
cdef class HardState:
    cdef readonly uint64_t term
    cdef readonly uint64_t vote
    cdef readonly uint64_t commit


@cython.final
cdef class SoftState:
    cdef readonly uint64_t leader
    cdef readonly int role


@cython.final
cdef class Ready:
    cdef readonly SoftState soft_state
    cdef readonly HardState hard_state
    cdef readonly list entries
    cdef readonly tuple snapshot
    cdef readonly list committed_entries
    cdef readonly list messages
    cdef readonly list read_states
    cdef readonly bint must_sync


@cython.final
cdef class RawNode:
    cdef readonly Config config
    cdef readonly uint64_t id
    cdef readonly uint64_t term
    cdef readonly uint64_t vote
    cdef readonly uint64_t lead
    cdef readonly uint64_t lead_transferee
    cdef readonly int role
    cdef readonly RaftLog log
    cdef readonly Membership membership
    cdef dict prs
    cdef list peer_list
    cdef list voter_prs
    cdef list outgoing_prs
    cdef dict votes
    cdef list msgs
    cdef list read_states
    cdef uint64_t rng
    cdef int election_tick
    cdef int heartbeat_tick
    cdef int election_elapsed
    cdef int heartbeat_elapsed
    cdef readonly int randomized_election_timeout
    cdef readonly uint64_t tick_count
    cdef bint restart_guard
    cdef uint64_t pending_conf_index
    # Index of the entry (proposed by this leader) that removes it from the voters; 0 = none.
    # From then on the leader refuses new proposals (thesis 4.2.2, see _maybe_leave).
    cdef readonly uint64_t removal_index
    # This node is a voter of its configuration (incoming or outgoing); set by _set_membership.
    cdef bint is_voter
    # Read-only queries (thesis 6.4): heartbeat rounds, their send ticks, waiting requests.
    cdef uint64_t read_round
    cdef uint64_t round_tick[ROUND_SLOTS]
    cdef list pending_reads
    cdef list reads_waiting_commit
    # Snapshots: the latest local one (to send), an incoming one being received, one to install.
    cdef SnapshotMeta snap_meta
    cdef object snap_data
    cdef SnapshotMeta recv_meta
    cdef bytearray recv_buf
    cdef tuple pending_snapshot
    # What the last Ready reported, to detect changes.
    cdef uint64_t prev_lead
    cdef int prev_role
    cdef uint64_t prev_term
    cdef uint64_t prev_vote
    cdef uint64_t prev_commit

    cdef int _send(self, Message m) except -1
    cdef Message _msg(self, int type, uint64_t to, uint64_t term)
    cdef int _reset_timeout(self) except -1
    cdef int _reset(self, uint64_t term) except -1
    cdef int _become_follower(self, uint64_t term, uint64_t lead) except -1
    cdef int _become_pre_candidate(self) except -1
    cdef int _become_candidate(self) except -1
    cdef int _become_leader(self) except -1
    cdef int _maybe_leave(self) except -1
    cdef int _refuse_if_leaving(self) except -1
    cdef int _hup(self, bint transfer) except -1
    cdef int _campaign(self, bint pre, bint transfer) except -1
    cdef int _poll(self, uint64_t id, bint granted) except -1
    cdef bint _promotable(self) except -1
    cdef int _tick_election(self) except -1
    cdef int _tick_heartbeat(self) except -1
    cdef int _step_leader(self, Message m) except -1
    cdef int _step_candidate(self, Message m) except -1
    cdef int _step_follower(self, Message m) except -1
    cdef object _propose(self, list datas)
    cdef int _append_entries(self, list ents) except -1
    cdef bint _maybe_commit(self) except -1
    cdef uint64_t _quorum_match(self) except? 0
    cdef uint64_t _quorum_round(self) except? 0
    cdef bint _quorum_active(self) except -1
    cdef bint _send_append(self, Progress pr, bint send_if_empty) except -1
    cdef int _bcast_append(self) except -1
    cdef int _bcast_heartbeat(self) except -1
    cdef int _send_snapshot_chunk(self, Progress pr) except -1
    cdef int _handle_append(self, Message m) except -1
    cdef int _handle_heartbeat(self, Message m) except -1
    cdef int _handle_snapshot(self, Message m) except -1
    cdef int _handle_app_resp(self, Progress pr, Message m) except -1
    cdef int _handle_read(self, uint64_t frm, bytes ctx) except -1
    cdef int _answer_read(self, uint64_t frm, uint64_t index, bytes ctx) except -1
    cdef int _release_reads(self) except -1
    cdef bint _lease_valid(self) except -1
    cdef int _set_membership(self, Membership ms) except -1
    cdef bint _restore(self, SnapshotMeta meta, object data) except -1
