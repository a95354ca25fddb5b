"""haperf._native.raft: the Raft consensus state machine (RawNode), pure and deterministic.

Owns Config (validated at construction), HardState/SoftState, Ready, and RawNode: roles and
elections (Raft 5.2, pre-vote thesis 9.6, check-quorum thesis 6.2), log replication with
pipelining and flow control (5.3, thesis 3.5 backtracking hints), commitment (5.4.2), linearizable
reads (ReadIndex thesis 6.4, leases thesis 6.4.1), leadership transfer (thesis 3.10), snapshots
in chunks (thesis 5, 7), and membership changes (thesis 4.1, 4.3) applied when committed.

It never performs I/O and never reads a clock or a global RNG: every effect leaves through
Ready (entries and hard state to persist, messages to send, entries to apply), time advances by
tick(), and the randomized election timeout comes from the splitmix64 state `rng_state`.
"""

cimport cython
from libc.stdint cimport UINT64_MAX, uint64_t

from haperf._native.config cimport HAPERF_DEBUG
from haperf._native.confchange cimport (
    CC_ADD_VOTER,
    ConfChange,
    Membership,
    decode as decode_conf_change,
)
from haperf._native.quorum cimport (
    VOTE_LOST,
    VOTE_PENDING,
    VOTE_WON,
    VOTERS_MAX,
    VoteOutcome,
    joint_outcome,
    majority_value,
    vote_outcome,
)
from haperf._native.raftlog cimport RaftLog
from haperf._native.raftmsg cimport (
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    MSG_APP,
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESP,
    MSG_PREVOTE,
    MSG_PREVOTE_RESP,
    MSG_PROP,
    MSG_READ_INDEX,
    MSG_READ_INDEX_RESP,
    MSG_SNAP,
    MSG_SNAP_RESP,
    MSG_TIMEOUT_NOW,
    MSG_VOTE,
    MSG_VOTE_RESP,
    ConfState,
    Entry,
    Message,
    SnapshotMeta,
)
from haperf._native.tracker cimport (
    INFLIGHT_MSGS_MAX,
    PROBE,
    REPLICATE,
    SNAPSHOT,
    Inflights,
    Progress,
)

from haperf.errors import ConfChangeError, ConfigError, NotLeaderError, ProposalDroppedError

ROLE_NAMES = ("follower", "candidate", "leader", "pre_candidate")
FOLLOWER = ROLE_FOLLOWER
CANDIDATE = ROLE_CANDIDATE
LEADER = ROLE_LEADER
PRE_CANDIDATE = ROLE_PRE_CANDIDATE

# MSG_VOTE context that marks a campaign started by TimeoutNow (thesis 3.10): voters grant it
# even while they still hear from the old leader, because the old leader asked for it.
TRANSFER_CONTEXT = b"transfer"
# Bounds on what a Config may ask for.
ELECTION_TICK_MAX = 1_000_000
PROPOSAL_ENTRIES_MAX = 65536
PEERS_MAX = VOTERS_MAX


# Shared empty list for messages without entries and empty Ready fields: one allocation fewer per
# message. Contract (RAFT_API.md): never mutate a Message's or a Ready's lists in place.
cdef list _EMPTY = []


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept:
    # splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator whose whole state is one
    # integer, so the caller can seed it, read it, and replay it.
    cdef uint64_t z
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


def _ids(values, str what):
    out = []
    for v in values:
        if not isinstance(v, int) or v <= 0 or v >= 2**64:
            raise ConfigError(f"{what} must hold node ids in [1, 2**64), got {v!r}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"{what} has duplicate node ids: {out}")
    if len(out) > PEERS_MAX:
        raise ConfigError(f"{what} has {len(out)} nodes; at most {PEERS_MAX} are supported")
    return tuple(sorted(out))


@cython.final
cdef class Config:
    """RawNode configuration; every value is checked here (ConfigError says which and why)."""

    def __init__(
        self,
        uint64_t id,
        voters=(),
        learners=(),
        *,
        int election_tick=10,
        int heartbeat_tick=1,
        bint pre_vote=True,
        bint check_quorum=True,
        Py_ssize_t inflight_msgs_max=256,
        Py_ssize_t msg_bytes_max=1 << 20,
        Py_ssize_t committed_bytes_max=64 << 20,
        bint lease_read=False,
        int lease_drift_ticks=2,
        bint forward_proposals=True,
        Py_ssize_t snapshot_chunk_bytes=1 << 20,
        Py_ssize_t snapshot_bytes_max=1 << 30,
        Py_ssize_t pending_reads_max=4096,
        Py_ssize_t uncommitted_entries_max=1 << 20,
    ):
        if id == 0:
            raise ConfigError("Config.id must be a node id >= 1 (0 means 'none' in Raft messages)")
        self.id = id
        self.voters = _ids(voters, "voters")
        self.learners = _ids(learners, "learners")
        if set(self.voters) & set(self.learners):
            raise ConfigError(f"nodes {sorted(set(self.voters) & set(self.learners))} are both "
                              "voters and learners; list each node once")
        if heartbeat_tick < 1:
            raise ConfigError(f"heartbeat_tick must be >= 1, got {heartbeat_tick}")
        if election_tick <= heartbeat_tick or election_tick > ELECTION_TICK_MAX:
            raise ConfigError(f"election_tick must be in (heartbeat_tick={heartbeat_tick}, "
                              f"{ELECTION_TICK_MAX}], got {election_tick}")
        if inflight_msgs_max < 1 or inflight_msgs_max > INFLIGHT_MSGS_MAX:
            raise ConfigError(f"inflight_msgs_max must be in [1, {INFLIGHT_MSGS_MAX}], "
                              f"got {inflight_msgs_max}")
        for name, value in (("msg_bytes_max", msg_bytes_max),
                            ("committed_bytes_max", committed_bytes_max),
                            ("snapshot_chunk_bytes", snapshot_chunk_bytes),
                            ("snapshot_bytes_max", snapshot_bytes_max),
                            ("pending_reads_max", pending_reads_max),
                            ("uncommitted_entries_max", uncommitted_entries_max)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if lease_read and not check_quorum:
            raise ConfigError("lease_read needs check_quorum=True: a lease is only safe while "
                              "followers refuse votes during their election timeout")
        if lease_drift_ticks < 1 or lease_drift_ticks >= election_tick:
            raise ConfigError(f"lease_drift_ticks must be in [1, election_tick={election_tick}), "
                              f"got {lease_drift_ticks}")
        self.election_tick = election_tick
        self.heartbeat_tick = heartbeat_tick
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        self.inflight_msgs_max = inflight_msgs_max
        self.msg_bytes_max = msg_bytes_max
        self.committed_bytes_max = committed_bytes_max
        self.lease_read = lease_read
        self.lease_drift_ticks = lease_drift_ticks
        self.forward_proposals = forward_proposals
        self.snapshot_chunk_bytes = snapshot_chunk_bytes
        self.snapshot_bytes_max = snapshot_bytes_max
        self.pending_reads_max = pending_reads_max
        self.uncommitted_entries_max = uncommitted_entries_max


@cython.final
@cython.freelist(16)
cdef class HardState:
    """What must be durable before messages go out: current term, vote in it, commit index."""

    def __init__(self, uint64_t term=0, uint64_t vote=0, uint64_t commit=0):
        self.term = term
        self.vote = vote
        self.commit = commit

    def __eq__(self, other):
        if not isinstance(other, HardState):
            return NotImplemented
        cdef HardState o = other
        return self.term == o.term and self.vote == o.vote and self.commit == o.commit

    __hash__ = None

    def __repr__(self):
        return f"HardState(term={self.term}, vote={self.vote}, commit={self.commit})"


@cython.final
@cython.freelist(16)
cdef class SoftState:
    """Volatile state worth reporting: the known leader (0 = none) and this node's role."""

    def __init__(self, uint64_t leader=0, int role=ROLE_FOLLOWER):
        self.leader = leader
        self.role = role

    @property
    def role_name(self):
        return ROLE_NAMES[self.role]

    def __eq__(self, other):
        if not isinstance(other, SoftState):
            return NotImplemented
        cdef SoftState o = other
        return self.leader == o.leader and self.role == o.role

    __hash__ = None

    def __repr__(self):
        return f"SoftState(leader={self.leader}, role={ROLE_NAMES[self.role]})"


@cython.final
@cython.freelist(16)
cdef class Ready:
    """One batch of effects; the host handles it in order and then calls advance(ready)."""

    def __repr__(self):
        return (f"Ready(soft={self.soft_state!r}, hard={self.hard_state!r}, "
                f"entries={len(self.entries)}, snapshot={self.snapshot is not None}, "
                f"committed={len(self.committed_entries)}, messages={len(self.messages)}, "
                f"read_states={self.read_states!r}, must_sync={self.must_sync})")


cdef Entry _entry(uint64_t term, uint64_t index, object data, int type):
    cdef Entry e = Entry.__new__(Entry)
    e.term = term
    e.index = index
    e.data = data
    e.type = type
    return e


cdef inline bytes _round_ctx(uint64_t r):
    return (<object>r).to_bytes(8, "big")


@cython.final
cdef class RawNode:
    """A Raft peer as a pure state machine (the etcd-raft RawNode contract); see raft.pxd."""

    def __init__(self, Config config, uint64_t rng_seed, *, HardState hard_state=None,
                 tuple snapshot=None, entries=(), uint64_t applied=0):
        cdef SnapshotMeta meta = None
        cdef Entry e
        cdef list ents = list(entries)
        cdef uint64_t expect
        self.config = config
        self.id = config.id
        self.election_tick = config.election_tick
        self.heartbeat_tick = config.heartbeat_tick
        self.rng = rng_seed
        self.prs = {}
        self.peer_list = []
        self.voter_prs = []
        self.outgoing_prs = []
        self.votes = {}
        self.msgs = []
        self.read_states = []
        self.pending_reads = []
        self.reads_waiting_commit = []
        self.log = RaftLog()
        self.snap_meta = None
        self.snap_data = None
        if snapshot is not None:
            meta, self.snap_data = snapshot
            if meta is None or meta.conf is None:
                raise ConfigError("snapshot must be a (SnapshotMeta, data) pair with a ConfState")
            self.snap_meta = meta
            self.log.restore(meta.index, meta.term)
            membership = Membership(meta.conf.voters, meta.conf.learners,
                                    meta.conf.voters_outgoing, meta.conf.auto_leave)
        else:
            membership = Membership(config.voters, config.learners)
        if ents:
            expect = self.log.snap_index + 1
            for e in ents:
                if e.index != expect:
                    raise ConfigError(f"entries must be contiguous from index {self.log.snap_index + 1}"
                                      f" (after the snapshot); found {e.index} where {expect} belongs")
                expect += 1
            self.log.entries = ents
            self.log.stable = self.log.last_index()
        self.term = 0
        self.vote = 0
        if hard_state is not None:
            self.term = hard_state.term
            self.vote = hard_state.vote
            # A restarted node may have heard from a leader just before it crashed: keep refusing
            # disruptive votes for one election timeout, as if it still did (thesis 4.2.3), so
            # check-quorum and leader leases also hold across follower restarts.
            self.restart_guard = hard_state.term > 0
            # The commit index is volatile state (Raft Figure 2): if a crash kept the hard state
            # but lost unsynced entries, commit only what this log still holds; the leader will
            # send the rest again.
            self.log.committed = max(self.log.snap_index,
                                     min(hard_state.commit, self.log.last_index()))
        if applied:
            if applied < self.log.snap_index or applied > self.log.committed:
                raise ConfigError(f"applied {applied} is outside [snapshot {self.log.snap_index}, "
                                  f"commit {self.log.committed}]")
            self.log.applied = applied
            self.log.applying = applied
        self.membership = Membership()
        self._set_membership(membership)
        self.role = ROLE_FOLLOWER
        self._become_follower(self.term, 0)
        self.prev_lead = 0
        self.prev_role = ROLE_FOLLOWER
        self.prev_term = self.term
        self.prev_vote = self.vote
        self.prev_commit = self.log.committed

    # ---------------------------------------------------------------- small helpers

    @property
    def rng_state(self):
        """The splitmix64 state; same seed and same inputs give the same behaviour."""
        return self.rng

    @rng_state.setter
    def rng_state(self, uint64_t value):
        self.rng = value

    @property
    def commit(self):
        return self.log.committed

    @property
    def applied(self):
        return self.log.applied

    @property
    def last_index(self):
        return self.log.last_index()

    @property
    def role_name(self):
        return ROLE_NAMES[self.role]

    cdef Message _msg(self, int type, uint64_t to, uint64_t term):
        cdef Message m = Message.__new__(Message)
        m.type = type
        m.to = to
        m.frm = self.id
        m.term = term
        m.entries = _EMPTY
        m.context = b""
        m.snap_data = b""
        return m

    cdef int _send(self, Message m) except -1:
        self.msgs.append(m)
        return 0

    cdef int _reset_timeout(self) except -1:
        # Raft 5.2: a randomized election timeout in [election_tick, 2 * election_tick).
        self.randomized_election_timeout = (
            self.election_tick + <int>(_splitmix64(&self.rng) % <uint64_t>self.election_tick))
        return 0

    cdef bint _promotable(self) except -1:
        # Learners and removed nodes never campaign (thesis 4.2.1).
        return self.is_voter

    # ---------------------------------------------------------------- membership

    cdef int _set_membership(self, Membership ms) except -1:
        cdef dict prs = {}
        cdef Progress pr
        cdef uint64_t last = self.log.last_index()
        learners = set(ms.learners)
        for node in ms.all_ids():
            pr = self.prs.get(node)
            if pr is None:
                pr = Progress(node, self.config.inflight_msgs_max)
                pr.reset(last)
                pr.match = 0
                pr.next = last + 1
                if node == self.id:
                    pr.match = last
                # A new peer counts as active until the next check-quorum round, as in etcd.
                pr.recent_active = True
            pr.is_learner = node in learners
            prs[node] = pr
        self.prs = prs
        self.peer_list = [prs[node] for node in sorted(prs) if node != self.id]
        # Progress objects of each voter set, so quorum math walks lists, not dict lookups.
        self.voter_prs = [prs[node] for node in ms.voters]
        self.outgoing_prs = [prs[node] for node in ms.voters_outgoing]
        self.membership = ms
        self.is_voter = self.id in ms.voters or self.id in ms.voters_outgoing
        return 0

    def apply_conf_change(self, object change):
        """Apply a committed membership change (thesis 4.1/4.3); returns the new ConfState.

        Call it when the host applies an ENTRY_CONF_CHANGE entry (pass the entry data or a
        ConfChange). The new configuration takes effect at once for quorums and replication.
        """
        cdef ConfChange cc = change if isinstance(change, ConfChange) else decode_conf_change(change)
        cdef Membership ms = self.membership.apply(cc)
        self._set_membership(ms)
        if self.role == ROLE_LEADER:
            if self.lead_transferee and self.lead_transferee not in ms.voters:
                self.lead_transferee = 0
            if self._maybe_commit():
                self._bcast_append()
            else:
                for pr in self.peer_list:
                    self._send_append(<Progress>pr, False)
            # A removed leader keeps leading until the remaining voters hold its log (thesis
            # 4.2.2; see _maybe_leave), so they can elect without it.
            self._maybe_leave()
        return self.conf_state()

    cdef int _maybe_leave(self) except -1:
        """Step down as a leader removed from the configuration, once it is safe and live.

        Thesis 4.2.2: a removed leader manages a cluster that does not include itself: it
        replicates but does not count itself in majorities (it is not in voter_prs) and appends
        no proposals of its own. Stepping down as soon as the change applies is not live here,
        because followers apply a configuration only once they learn it committed: a survivor
        that has not learned it still counts this node, which refuses it its vote if this node's
        log is longer (Raft 5.4.1; SIM_FINDINGS #2). So the leader keeps leading until a
        majority of the new configuration (each side when joint) has matched its whole log and
        that log is committed; every such voter is then at least as up to date as this node and
        as every other survivor, so it can win whichever configuration it counts. The leader
        then hands over at once with MSG_TIMEOUT_NOW (thesis 3.10) and steps down.
        """
        cdef Progress pr, best = None
        cdef uint64_t last
        if self.role != ROLE_LEADER or self._promotable():
            return 0
        last = self.log.last_index()
        if self.log.committed < last or (self.voter_prs and self._quorum_match() < last):
            return 0
        for pr in self.voter_prs:
            if pr.match >= last and (best is None
                                     or (pr.recent_active and not best.recent_active)):
                best = pr
        if best is not None:
            self._send(self._msg(MSG_TIMEOUT_NOW, best.id, self.term))
        self._become_follower(self.term, 0)
        return 0

    cdef int _refuse_if_leaving(self) except -1:
        if self.removal_index or not self._promotable():
            raise ProposalDroppedError(
                f"leader {self.id} is leaving the configuration (its removal is at index "
                f"{self.removal_index or self.pending_conf_index}); retry on the next leader")
        return 0

    def conf_state(self):
        cdef Membership ms = self.membership
        return ConfState(ms.voters, ms.learners, ms.voters_outgoing, ms.auto_leave)

    def propose_conf_change(self, ConfChange cc):
        """Propose a membership change on the leader; returns its log index.

        Raises NotLeaderError on a follower, ProposalDroppedError while another change is not yet
        applied (one change at a time) or once this leader appended its own removal,
        ConfChangeError if it is invalid for the configuration. After proposing its own removal
        the leader refuses every proposal and steps down once a majority of the new voters hold
        its committed log (docs/raft.md, "Removing the leader").
        """
        cdef Membership new_ms
        if self.role != ROLE_LEADER:
            raise NotLeaderError(self.lead, self.id)
        if self.lead_transferee:
            raise ProposalDroppedError(f"leadership transfer to node {self.lead_transferee} in "
                                       "progress; propose again after it finishes")
        self._refuse_if_leaving()
        if self.pending_conf_index > self.log.applied:
            raise ProposalDroppedError(
                f"membership change at index {self.pending_conf_index} is not applied yet "
                f"(applied={self.log.applied}); propose the next one after it applies")
        new_ms = self.membership.apply(cc)  # validation; raises ConfChangeError
        for op, node in cc.changes:
            if op == CC_ADD_VOTER and node in self.membership.learners:
                pr = self.prs[node]
                if (<Progress>pr).match < self.log.committed:
                    # Thesis 4.2.1: promote a learner only once it has caught up, so the new
                    # voter does not stall commitment while it copies the log.
                    raise ProposalDroppedError(
                        f"learner {node} is not caught up (match {(<Progress>pr).match} < commit "
                        f"{self.log.committed}); promote it once it has replicated the log")
        self._append_entries([_entry(0, 0, cc.encode(), ENTRY_CONF_CHANGE)])
        self.pending_conf_index = self.log.last_index()
        if self.id not in new_ms.voters and self.id not in new_ms.voters_outgoing:
            # Thesis 4.2.2: our own removal; no new proposals from here, so the log the
            # remaining voters must match before we step down stops growing.
            self.removal_index = self.pending_conf_index
        self._bcast_append()
        return self.pending_conf_index

    # ---------------------------------------------------------------- role changes

    cdef int _reset(self, uint64_t term) except -1:
        cdef Progress pr
        cdef uint64_t last = self.log.last_index()
        if term != self.term:
            assert term > self.term, f"term goes back from {self.term} to {term}"
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_timeout()
        self.lead_transferee = 0
        self.removal_index = 0
        self.votes = {}
        for pr in self.prs.values():
            pr.reset(last)
            if pr.id == self.id:
                pr.match = last
        # Pending reads die with the leadership that confirmed them; clients retry.
        self.pending_reads = []
        self.reads_waiting_commit = []
        return 0

    cdef int _become_follower(self, uint64_t term, uint64_t lead) except -1:
        self._reset(term)
        self.lead = lead
        self.role = ROLE_FOLLOWER
        return 0

    cdef int _become_pre_candidate(self) except -1:
        assert self.role != ROLE_LEADER, "a leader cannot become a pre-candidate"
        # Thesis 9.6: a pre-candidate keeps its term and vote; it only asks whether it could win.
        self.votes = {}
        self.lead = 0
        self.role = ROLE_PRE_CANDIDATE
        return 0

    cdef int _become_candidate(self) except -1:
        assert self.role != ROLE_LEADER, "a leader cannot become a candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = ROLE_CANDIDATE
        return 0

    cdef int _become_leader(self) except -1:
        cdef Progress pr
        assert self.role != ROLE_FOLLOWER, "a follower cannot become leader without an election"
        self._reset(self.term)
        self.lead = self.id
        self.role = ROLE_LEADER
        pr = self.prs.get(self.id)
        if pr is not None:
            pr.become_replicate()
            pr.match = self.log.last_index()
            pr.next = pr.match + 1
            pr.recent_active = True
        # Conservatively assume a membership change may be pending in the uncommitted tail.
        self.pending_conf_index = self.log.last_index()
        # Raft 5.4.2 / thesis 6.4: an empty entry of the new term, so earlier entries commit and
        # the leader learns the commit index it needs to serve reads.
        self._append_entries([_entry(0, 0, b"", ENTRY_NORMAL)])
        return 0

    cdef int _hup(self, bint transfer) except -1:
        cdef Entry e
        cdef Py_ssize_t k
        if self.role == ROLE_LEADER or not self._promotable():
            return 0
        # A node must not campaign with a committed but unapplied membership change: it may not
        # know the configuration it would lead.
        for k in range(<Py_ssize_t>(self.log.applied - self.log.snap_index),
                       <Py_ssize_t>(self.log.committed - self.log.snap_index)):
            e = self.log.entries[k]
            if e.type == ENTRY_CONF_CHANGE:
                return 0
        if transfer:
            return self._campaign(False, True)
        return self._campaign(self.config.pre_vote, False)

    cdef int _campaign(self, bint pre, bint transfer) except -1:
        cdef Message m
        cdef uint64_t term
        cdef int vote_type
        if pre:
            self._become_pre_candidate()
            vote_type = MSG_PREVOTE
            term = self.term + 1
        else:
            self._become_candidate()
            vote_type = MSG_VOTE
            term = self.term
        if self._poll(self.id, True) == VOTE_WON:
            # A single-voter configuration wins at once.
            if pre:
                return self._campaign(False, transfer)
            self._become_leader()
            return 0
        for node in self.membership.all_ids():
            if node == self.id or (node not in self.membership.voters
                                   and node not in self.membership.voters_outgoing):
                continue
            m = self._msg(vote_type, node, term)
            m.index = self.log.last_index()
            m.log_term = self.log.last_term()
            if transfer:
                m.context = TRANSFER_CONTEXT
            self._send(m)
        return 0

    cdef int _poll(self, uint64_t id, bint granted) except -1:
        cdef Py_ssize_t g = 0, r = 0
        cdef VoteOutcome inc, out
        if id not in self.votes:
            self.votes[id] = granted
        for node in self.membership.voters:
            v = self.votes.get(node)
            if v is True:
                g += 1
            elif v is False:
                r += 1
        inc = vote_outcome(len(self.membership.voters), g, r)
        g = 0
        r = 0
        for node in self.membership.voters_outgoing:
            v = self.votes.get(node)
            if v is True:
                g += 1
            elif v is False:
                r += 1
        out = vote_outcome(len(self.membership.voters_outgoing), g, r)
        return <int>joint_outcome(inc, out)

    # ---------------------------------------------------------------- time

    def tick(self):
        """Advance logical time by one tick (heartbeats, election and check-quorum timeouts)."""
        self.tick_count += 1
        if self.role == ROLE_LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    cdef int _tick_election(self) except -1:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._hup(False)
        return 0

    cdef int _tick_heartbeat(self) except -1:
        cdef Progress pr
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                # Thesis 6.2: a leader that has not heard from a majority within an election
                # timeout steps down, so a partitioned leader stops serving stale reads.
                if not self._quorum_active():
                    self._become_follower(self.term, 0)
                    return 0
                for pr in self.peer_list:
                    pr.recent_active = False
            if self.lead_transferee:
                # Thesis 3.10: abort a transfer that did not finish within an election timeout.
                self.lead_transferee = 0
        if self.heartbeat_elapsed >= self.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()
        return self._maybe_leave()

    # ---------------------------------------------------------------- public inputs

    def campaign(self):
        """Start an election now (as if the election timeout fired)."""
        self._hup(False)

    def propose(self, object data):
        """Propose one command; returns its log index on the leader, 0 when forwarded.

        On a follower the proposal is forwarded to the known leader (Config.forward_proposals),
        otherwise NotLeaderError(leader_id) is raised (leader 0 = unknown).
        """
        return self._propose([data])

    def propose_batch(self, list datas):
        """Propose several commands as one batch (one append, one broadcast); first index."""
        return self._propose(datas)

    cdef object _propose(self, list datas):
        cdef list ents
        cdef Message m
        cdef Py_ssize_t n = len(datas)
        cdef uint64_t first
        if n == 0 or n > PROPOSAL_ENTRIES_MAX:
            raise ConfigError(f"a batch holds 1 to {PROPOSAL_ENTRIES_MAX} commands, got {n}")
        for data in datas:
            if data is None or len(data) == 0:
                raise ConfigError("a command must be non-empty bytes (empty entries are the "
                                  "leader's no-op)")
        ents = [_entry(0, 0, data, ENTRY_NORMAL) for data in datas]
        if self.role == ROLE_LEADER:
            self._refuse_if_leaving()
            if self.lead_transferee:
                raise ProposalDroppedError(
                    f"leadership transfer to node {self.lead_transferee} in progress; "
                    "retry on the new leader")
            if (self.log.last_index() - self.log.committed + <uint64_t>n
                    > <uint64_t>self.config.uncommitted_entries_max):
                # Flow control for clients: a leader that cannot commit (no quorum) must not
                # grow its log without bound.
                raise ProposalDroppedError(
                    f"{self.log.last_index() - self.log.committed} entries are not committed yet "
                    f"(uncommitted_entries_max={self.config.uncommitted_entries_max}); retry "
                    "once the cluster catches up")
            first = self.log.last_index() + 1
            self._append_entries(ents)
            self._bcast_append()
            return first
        if self.lead == 0 or not self.config.forward_proposals:
            raise NotLeaderError(self.lead, self.id)
        m = self._msg(MSG_PROP, self.lead, 0)
        m.entries = ents
        self._send(m)
        return 0

    def read_index(self, bytes ctx):
        """Ask for a linearizable read point (thesis 6.4); answered as a read state (index, ctx).

        Serve the read once the local state machine has applied at least that index. On a
        follower the request goes to the leader (MSG_READ_INDEX); NotLeaderError when none.
        """
        cdef Message m
        if self.role == ROLE_LEADER:
            self._handle_read(self.id, ctx)
            return
        if self.lead == 0:
            raise NotLeaderError(0, self.id)
        m = self._msg(MSG_READ_INDEX, self.lead, 0)
        m.context = ctx
        self._send(m)

    def transfer_leader(self, uint64_t to):
        """Hand leadership to voter `to` (thesis 3.10); proposals are refused meanwhile."""
        cdef Progress pr
        if self.role != ROLE_LEADER:
            raise NotLeaderError(self.lead, self.id)
        if to == self.id:
            return
        if to not in self.membership.voters:
            raise ConfigError(f"node {to} is not a voter of the current configuration "
                              f"{self.membership.voters}; only voters can lead")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        # The transfer must finish within one election timeout or it is abandoned.
        self.election_elapsed = 0
        pr = self.prs[to]
        if pr.match == self.log.last_index():
            self._send(self._msg(MSG_TIMEOUT_NOW, to, self.term))
        else:
            self._send_append(pr, True)

    def report_unreachable(self, uint64_t id):
        """The transport could not reach `id`: stop pipelining to it (back to probing)."""
        cdef Progress pr
        if self.role != ROLE_LEADER:
            return
        pr = self.prs.get(id)
        if pr is not None and pr.state == REPLICATE:
            pr.become_probe()

    def report_snapshot(self, uint64_t id, bint ok):
        """An externally streamed snapshot to `id` finished (ok) or failed: resume probing."""
        cdef Progress pr
        if self.role != ROLE_LEADER:
            return
        pr = self.prs.get(id)
        if pr is None or pr.state != SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the next heartbeat response before probing again.
        pr.probe_sent = True

    def compact(self, uint64_t index, object data):
        """Record the application's snapshot at `index` (== applied) and drop the log up to it.

        Returns the SnapshotMeta (index, term, membership) to persist with `data`; followers
        whose next entry was dropped receive this snapshot in chunks (MSG_SNAP).
        """
        cdef SnapshotMeta meta
        if index != self.log.applied:
            raise ConfigError(f"compact({index}): the snapshot must be taken at the applied index "
                              f"{self.log.applied}, where the membership is known")
        if index <= self.log.snap_index:
            raise ConfigError(f"compact({index}): the log is already compacted to "
                              f"{self.log.snap_index}")
        meta = SnapshotMeta(index, self.log.term(index), self.conf_state())
        self.log.compact(index)
        self.snap_meta = meta
        self.snap_data = data
        return meta

    def step(self, Message m):
        """Feed one received message (Raft 5.1: every RPC carries the sender's term)."""
        cdef bint force, in_lease
        cdef bint can_vote
        cdef Message r
        cdef int t = m.type
        if m.term == 0:
            pass  # MSG_PROP and MSG_READ_INDEX forwarded by a follower carry no term
        elif m.term > self.term:
            if t == MSG_VOTE or t == MSG_PREVOTE:
                force = m.context == TRANSFER_CONTEXT
                in_lease = self.config.check_quorum and (
                    (self.lead != 0 and self.election_elapsed < self.election_tick)
                    or (self.restart_guard and self.tick_count < <uint64_t>self.election_tick))
                if in_lease and not force:
                    # Thesis 4.2.3: ignore a disruptive candidate while a leader is heard from.
                    return
            if t == MSG_PREVOTE or (t == MSG_PREVOTE_RESP and not m.reject):
                pass  # thesis 9.6: pre-votes never change terms
            elif t == MSG_APP or t == MSG_HEARTBEAT or t == MSG_SNAP:
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, 0)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and (
                    t == MSG_APP or t == MSG_HEARTBEAT):
                # Tell a stale leader about the newer term, so it steps down (and so a node that
                # bumped its term while partitioned does not stay cut off, thesis 9.6).
                self._send(self._msg(MSG_APP_RESP, m.frm, self.term))
            elif t == MSG_PREVOTE:
                r = self._msg(MSG_PREVOTE_RESP, m.frm, self.term)
                r.reject = True
                self._send(r)
            return
        if t == MSG_VOTE or t == MSG_PREVOTE:
            # Raft 5.2: one vote per term, first come first served; thesis 9.6: a pre-vote is
            # granted to any up-to-date candidate for a future term without recording a vote.
            can_vote = (self.vote == m.frm or (self.vote == 0 and self.lead == 0)
                        or (t == MSG_PREVOTE and m.term > self.term))
            # Raft 5.4.1: only to a candidate whose log is at least as up-to-date as ours.
            if can_vote and self.log.is_up_to_date(m.index, m.log_term):
                r = self._msg(MSG_VOTE_RESP if t == MSG_VOTE else MSG_PREVOTE_RESP, m.frm, m.term)
                self._send(r)
                if t == MSG_VOTE:
                    assert self.vote == 0 or self.vote == m.frm, "second vote in one term"
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                r = self._msg(MSG_VOTE_RESP if t == MSG_VOTE else MSG_PREVOTE_RESP, m.frm,
                              self.term)
                r.reject = True
                self._send(r)
            return
        if self.role == ROLE_LEADER:
            self._step_leader(m)
        elif self.role == ROLE_FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # ---------------------------------------------------------------- step functions

    cdef int _step_leader(self, Message m) except -1:
        cdef int t = m.type
        cdef Progress pr
        cdef Entry e
        if t == MSG_PROP:
            if (self.lead_transferee or not m.entries or self.removal_index
                    or not self._promotable()):
                return 0  # forwarded proposals are dropped during a transfer or while leaving
            if (self.log.last_index() - self.log.committed + <uint64_t>len(m.entries)
                    > <uint64_t>self.config.uncommitted_entries_max):
                return 0  # and beyond the uncommitted bound (the client times out and retries)
            for e in m.entries:
                if e.type == ENTRY_CONF_CHANGE:
                    # Membership changes must go through propose_conf_change on the leader.
                    e.type = ENTRY_NORMAL
                    e.data = b""
            self._append_entries(m.entries)
            self._bcast_append()
            return 0
        if t == MSG_READ_INDEX:
            self._handle_read(m.frm, m.context)
            return 0
        pr = self.prs.get(m.frm)
        if pr is None:
            return 0
        if t == MSG_APP_RESP:
            return self._handle_app_resp(pr, m)
        if t == MSG_HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == REPLICATE and pr.inflights.full():
                # The follower is reachable but acks may have been lost: open the window by one.
                pr.inflights.free_first_one()
            if pr.state == SNAPSHOT:
                # Retransmit the chunk the follower expects: chunks may be lost.
                self._send_snapshot_chunk(pr)
            elif pr.match < self.log.last_index():
                self._send_append(pr, True)
            if len(m.context) == 8:
                r = int.from_bytes(m.context, "big")
                if r <= self.read_round and r > pr.acked_round:
                    pr.acked_round = r
                    if self.pending_reads:
                        self._release_reads()
            return 0
        if t == MSG_SNAP_RESP:
            pr.recent_active = True
            if pr.state != SNAPSHOT or m.index != pr.pending_snapshot:
                return 0
            if m.reject or m.snap_offset > pr.snap_offset:
                pr.snap_offset = m.snap_offset
                self._send_snapshot_chunk(pr)
            return 0
        return 0

    cdef int _step_candidate(self, Message m) except -1:
        cdef int t = m.type
        cdef int res
        if t == MSG_APP or t == MSG_HEARTBEAT or t == MSG_SNAP:
            # Raft 5.2: a candidate that hears from a leader of its term returns to follower.
            self._become_follower(m.term, m.frm)
            return self._step_follower(m)
        if (t == MSG_PREVOTE_RESP and self.role == ROLE_PRE_CANDIDATE) or (
                t == MSG_VOTE_RESP and self.role == ROLE_CANDIDATE):
            res = self._poll(m.frm, not m.reject)
            if res == VOTE_WON:
                if self.role == ROLE_PRE_CANDIDATE:
                    self._campaign(False, False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif res == VOTE_LOST:
                self._become_follower(self.term, 0)
        return 0

    cdef int _step_follower(self, Message m) except -1:
        cdef int t = m.type
        if t == MSG_APP:
            self.election_elapsed = 0
            self.lead = m.frm
            return self._handle_append(m)
        if t == MSG_HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            return self._handle_heartbeat(m)
        if t == MSG_SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            return self._handle_snapshot(m)
        if t == MSG_PROP or t == MSG_READ_INDEX:
            if self.lead == 0 or (t == MSG_PROP and not self.config.forward_proposals):
                return 0
            m.to = self.lead
            self._send(m)
            return 0
        if t == MSG_TIMEOUT_NOW:
            # Thesis 3.10: the leader asks us to campaign at once, skipping pre-vote.
            return self._hup(True)
        if t == MSG_READ_INDEX_RESP:
            # Index 0 tells the host the leader refused the read (its queue was full).
            self.read_states.append((0 if m.reject else m.index, m.context))
            return 0
        return 0

    # ---------------------------------------------------------------- replication (leader)

    cdef int _append_entries(self, list ents) except -1:
        cdef Entry e
        cdef uint64_t index = self.log.last_index()
        cdef Progress pr
        for e in ents:
            index += 1
            e.term = self.term
            e.index = index
        self.log.append(ents, 0)
        pr = self.prs.get(self.id)
        if pr is not None:
            pr.maybe_update(index)
        self._maybe_commit()
        return 0

    cdef uint64_t _quorum_match(self) except? 0:
        cdef uint64_t vals[VOTERS_MAX]
        cdef uint64_t a, b
        cdef Py_ssize_t n = 0
        cdef Progress pr
        for pr in self.voter_prs:
            vals[n] = pr.match
            n += 1
        a = majority_value(vals, n)
        if not self.outgoing_prs:
            return a
        n = 0
        for pr in self.outgoing_prs:
            vals[n] = pr.match
            n += 1
        b = majority_value(vals, n)
        return a if a < b else b

    cdef bint _maybe_commit(self) except -1:
        cdef uint64_t mci = self._quorum_match()
        # Raft 5.4.2: only entries of the current term commit by counting replicas.
        if mci > self.log.committed and mci != UINT64_MAX and self.log.term(mci) == self.term:
            self.log.commit_to(mci)
            if self.reads_waiting_commit:
                waiting = self.reads_waiting_commit
                self.reads_waiting_commit = []
                for frm, ctx in waiting:
                    self._handle_read(frm, ctx)
            return True
        return False

    cdef bint _quorum_active(self) except -1:
        cdef Py_ssize_t g, r
        cdef Progress pr
        cdef VoteOutcome res = VOTE_WON
        for cfg in (self.membership.voters, self.membership.voters_outgoing):
            g = 0
            r = 0
            for node in cfg:
                pr = self.prs[node]
                if node == self.id or pr.recent_active:
                    g += 1
                else:
                    r += 1
            res = joint_outcome(res, vote_outcome(len(cfg), g, r))
        return res == VOTE_WON

    cdef bint _send_append(self, Progress pr, bint send_if_empty) except -1:
        cdef uint64_t prev
        cdef list ents
        cdef Message m
        cdef Entry last
        if pr.is_paused():
            return False
        prev = pr.next - 1
        if prev < self.log.snap_index:
            # The entries the follower needs are compacted: send the snapshot (thesis 5.2).
            if not pr.recent_active or self.snap_meta is None:
                return False
            pr.become_snapshot(self.snap_meta.index)
            self._send_snapshot_chunk(pr)
            return True
        ents = self.log.slice_from(pr.next, self.config.msg_bytes_max)
        if not ents and not send_if_empty:
            return False
        m = self._msg(MSG_APP, pr.id, self.term)
        m.index = prev
        m.log_term = self.log.term(prev)
        m.entries = ents
        m.commit = self.log.committed
        if ents:
            if pr.state == REPLICATE:
                # Pipelining: advance next optimistically, bounded by the in-flight window.
                last = ents[len(ents) - 1]
                pr.next = last.index + 1
                pr.inflights.add(last.index)
            elif pr.state == PROBE:
                pr.probe_sent = True
        self._send(m)
        return True

    cdef int _bcast_append(self) except -1:
        for pr in self.peer_list:
            self._send_append(<Progress>pr, True)
        return 0

    cdef int _bcast_heartbeat(self) except -1:
        cdef Progress pr
        cdef Message m
        cdef bytes ctx
        # Every heartbeat opens a new round; acks of round r confirm leadership after r was sent
        # (ReadIndex, thesis 6.4) and date the lease (thesis 6.4.1).
        self.read_round += 1
        self.round_tick[self.read_round % ROUND_SLOTS] = self.tick_count
        ctx = _round_ctx(self.read_round)
        for pr in self.peer_list:
            m = self._msg(MSG_HEARTBEAT, pr.id, self.term)
            # Never tell a follower to commit past what it is known to hold.
            m.commit = min(pr.match, self.log.committed)
            m.context = ctx
            self._send(m)
        return 0

    cdef int _send_snapshot_chunk(self, Progress pr) except -1:
        cdef Message m
        cdef Py_ssize_t n = len(self.snap_data), off, end
        if self.snap_meta is None or pr.pending_snapshot != self.snap_meta.index:
            # A newer local snapshot replaced the one being sent: start over with it.
            if self.snap_meta is None:
                pr.become_probe()
                return 0
            pr.become_snapshot(self.snap_meta.index)
        off = <Py_ssize_t>pr.snap_offset
        if off > n:
            off = 0
            pr.snap_offset = 0
        end = min(n, off + self.config.snapshot_chunk_bytes)
        m = self._msg(MSG_SNAP, pr.id, self.term)
        m.snapshot = self.snap_meta
        m.snap_offset = off
        m.snap_data = bytes(self.snap_data[off:end])
        m.snap_done = end >= n
        self._send(m)
        return 0

    cdef int _handle_app_resp(self, Progress pr, Message m) except -1:
        cdef bint old_paused
        cdef uint64_t hint
        cdef Py_ssize_t rounds
        pr.recent_active = True
        if m.reject:
            # Thesis 3.5: jump back using the follower's conflict hint (index and its term).
            hint = m.reject_hint
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.hint_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == REPLICATE:
                    pr.become_probe()
                self._send_append(pr, True)
            return 0
        if m.index > self.log.last_index():
            return 0  # acknowledges entries this leader never had: not from this term's log
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return 0
        if pr.state == PROBE:
            pr.become_replicate()
        elif pr.state == SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif old_paused:
            self._send_append(pr, True)
        # Fill the window: keep sending while entries remain and the follower is not paused.
        rounds = 0
        while rounds < self.config.inflight_msgs_max and self._send_append(pr, False):
            rounds += 1
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            # Thesis 3.10: the target is up to date; tell it to start an election now.
            self._send(self._msg(MSG_TIMEOUT_NOW, m.frm, self.term))
        return self._maybe_leave()

    # ---------------------------------------------------------------- follower handlers

    cdef int _handle_append(self, Message m) except -1:
        cdef uint64_t last_new = 0, hint
        cdef Message r = self._msg(MSG_APP_RESP, m.frm, self.term)
        if m.index < self.log.committed:
            r.index = self.log.committed
            return self._send(r)
        if self.log.maybe_append(m.index, m.log_term, m.commit, m.entries, &last_new):
            r.index = last_new
            return self._send(r)
        # Raft 5.3 consistency check failed; thesis 3.5: say where our log could match.
        hint = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        r.index = m.index
        r.reject = True
        r.reject_hint = hint
        r.hint_term = self.log.term(hint)
        return self._send(r)

    cdef int _handle_heartbeat(self, Message m) except -1:
        cdef Message r
        self.log.commit_to(min(m.commit, self.log.last_index()))
        r = self._msg(MSG_HEARTBEAT_RESP, m.frm, self.term)
        r.context = m.context
        return self._send(r)

    cdef int _handle_snapshot(self, Message m) except -1:
        cdef SnapshotMeta meta = m.snapshot
        cdef Message r
        cdef Py_ssize_t have
        if meta is None:
            return 0
        if meta.index <= self.log.committed:
            # Stale: we already have everything it covers (thesis 5.2); report our commit.
            self.recv_buf = None
            self.recv_meta = None
            r = self._msg(MSG_APP_RESP, m.frm, self.term)
            r.index = self.log.committed
            return self._send(r)
        if m.snap_offset == 0:
            # The first chunk (re)starts a transfer; a late duplicate only costs a resend.
            self.recv_buf = bytearray()
            self.recv_meta = meta
        same = (self.recv_meta is not None and self.recv_buf is not None
                and self.recv_meta.index == meta.index and self.recv_meta.term == meta.term)
        have = len(self.recv_buf) if same and self.recv_buf is not None else 0
        if not same or <Py_ssize_t>m.snap_offset != have:
            # A gap or a duplicate: tell the leader which offset we expect next.
            r = self._msg(MSG_SNAP_RESP, m.frm, self.term)
            r.index = meta.index
            r.snap_offset = have
            r.reject = <Py_ssize_t>m.snap_offset > have or not same
            return self._send(r)
        if have + len(m.snap_data) > self.config.snapshot_bytes_max:
            raise ConfigError(f"incoming snapshot exceeds snapshot_bytes_max="
                              f"{self.config.snapshot_bytes_max}; raise it on this node")
        self.recv_buf += m.snap_data
        if not m.snap_done:
            r = self._msg(MSG_SNAP_RESP, m.frm, self.term)
            r.index = meta.index
            r.snap_offset = len(self.recv_buf)
            return self._send(r)
        data = bytes(self.recv_buf)
        self.recv_buf = None
        self.recv_meta = None
        self._restore(meta, data)
        r = self._msg(MSG_APP_RESP, m.frm, self.term)
        r.index = self.log.last_index()
        return self._send(r)

    cdef bint _restore(self, SnapshotMeta meta, object data) except -1:
        cdef ConfState cs = meta.conf
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            # Our log already holds the snapshot's last entry: just fast-forward the commit.
            self.log.commit_to(meta.index)
            return False
        self.log.restore(meta.index, meta.term)
        self.snap_meta = meta
        self.snap_data = data
        self.pending_snapshot = (meta, data)
        self._set_membership(Membership(cs.voters, cs.learners, cs.voters_outgoing, cs.auto_leave))
        return True

    # ---------------------------------------------------------------- reads

    cdef bint _lease_valid(self) except -1:
        cdef uint64_t r = self._quorum_round()
        if r == 0 or r == UINT64_MAX or self.read_round - r >= ROUND_SLOTS:
            return False
        # Followers refuse votes for election_tick of their ticks after hearing round r; the
        # leader trusts the lease for lease_drift_ticks fewer of its own (docs/raft.md).
        return self.tick_count < (self.round_tick[r % ROUND_SLOTS] + <uint64_t>self.election_tick
                                  - <uint64_t>self.config.lease_drift_ticks)

    cdef uint64_t _quorum_round(self) except? 0:
        cdef uint64_t vals[VOTERS_MAX]
        cdef uint64_t a, b
        cdef Py_ssize_t n = 0
        for node in self.membership.voters:
            vals[n] = self.read_round if node == self.id else (<Progress>self.prs[node]).acked_round
            n += 1
        a = majority_value(vals, n)
        if not self.membership.voters_outgoing:
            return a
        n = 0
        for node in self.membership.voters_outgoing:
            vals[n] = self.read_round if node == self.id else (<Progress>self.prs[node]).acked_round
            n += 1
        b = majority_value(vals, n)
        return a if a < b else b

    cdef int _handle_read(self, uint64_t frm, bytes ctx) except -1:
        if self.log.term(self.log.committed) != self.term:
            # Thesis 6.4 step 1: the leader's commit index is only current once an entry of its
            # own term has committed; wait for that.
            if len(self.reads_waiting_commit) >= self.config.pending_reads_max:
                return self._answer_read(frm, 0, ctx)
            self.reads_waiting_commit.append((frm, ctx))
            return 0
        if (len(self.membership.voters) == 1 and not self.membership.voters_outgoing
                and self.membership.voters[0] == self.id):
            return self._answer_read(frm, self.log.committed, ctx)
        if self.config.lease_read and not self.lead_transferee and self._lease_valid():
            # Thesis 6.4.1: within the lease no other leader can exist; no round trip needed.
            return self._answer_read(frm, self.log.committed, ctx)
        if len(self.pending_reads) >= self.config.pending_reads_max:
            return self._answer_read(frm, 0, ctx)
        # Thesis 6.4 steps 2-3: record the commit index, then confirm leadership by a heartbeat
        # round acknowledged by a majority.
        self._bcast_heartbeat()
        self.pending_reads.append((self.read_round, self.log.committed, frm, ctx))
        return 0

    cdef int _answer_read(self, uint64_t frm, uint64_t index, bytes ctx) except -1:
        # index 0 means "refused" (queue full): a read state (0, ctx) locally, reject=True remotely.
        cdef Message m
        if frm == self.id:
            self.read_states.append((index, ctx))
            return 0
        m = self._msg(MSG_READ_INDEX_RESP, frm, self.term)
        m.index = index
        m.context = ctx
        m.reject = index == 0
        return self._send(m)

    cdef int _release_reads(self) except -1:
        cdef uint64_t q = self._quorum_round()
        cdef Py_ssize_t k = 0, n = len(self.pending_reads)
        while k < n:
            rnd, index, frm, ctx = self.pending_reads[k]
            if rnd > q:
                break
            self._answer_read(frm, index, ctx)
            k += 1
        if k:
            del self.pending_reads[:k]
        return 0

    # ---------------------------------------------------------------- Ready

    def has_ready(self):
        """True when ready() has something: state to persist, messages, entries to apply, ..."""
        cdef RaftLog log = self.log
        cdef bint pending = (
            len(self.msgs) > 0 or len(self.read_states) > 0
            or log.stable < log.last_index() or log.committed > log.applying
            or self.pending_snapshot is not None
            or self.lead != self.prev_lead or self.role != self.prev_role
            or self.term != self.prev_term or self.vote != self.prev_vote
            or log.committed != self.prev_commit)
        return pending

    def ready(self):
        """Take the pending effects; handle them in order (docs/raft.md), then advance(ready)."""
        cdef Ready rd = Ready.__new__(Ready)
        cdef RaftLog log = self.log
        rd.entries = log.unstable() if log.stable < log.last_index() else _EMPTY
        rd.committed_entries = (log.next_committed(self.config.committed_bytes_max)
                                if log.committed > log.applying else _EMPTY)
        if self.msgs:
            rd.messages = self.msgs
            self.msgs = []
        else:
            rd.messages = _EMPTY
        if self.read_states:
            rd.read_states = self.read_states
            self.read_states = []
        else:
            rd.read_states = _EMPTY
        rd.snapshot = self.pending_snapshot
        cdef SoftState ss
        cdef HardState hs
        if self.lead != self.prev_lead or self.role != self.prev_role:
            ss = SoftState.__new__(SoftState)
            ss.leader = self.lead
            ss.role = self.role
            rd.soft_state = ss
            self.prev_lead = self.lead
            self.prev_role = self.role
        rd.must_sync = bool(rd.entries) or self.term != self.prev_term or self.vote != self.prev_vote
        if rd.must_sync or log.committed != self.prev_commit:
            hs = HardState.__new__(HardState)
            hs.term = self.term
            hs.vote = self.vote
            hs.commit = log.committed
            rd.hard_state = hs
            self.prev_term = self.term
            self.prev_vote = self.vote
            self.prev_commit = log.committed
        if rd.snapshot is not None:
            rd.must_sync = True
        if HAPERF_DEBUG:
            assert log.committed <= log.last_index(), "commit beyond the last log index"
        return rd

    def advance(self, Ready rd):
        """The host persisted, sent and applied `rd`: move the stable and applied markers."""
        cdef Entry e
        cdef Py_ssize_t n
        if rd.snapshot is not None and self.pending_snapshot is rd.snapshot:
            self.pending_snapshot = None
        n = len(rd.entries)
        if n:
            e = rd.entries[n - 1]
            self.log.stable_to(e.index, e.term)
        n = len(rd.committed_entries)
        if n:
            e = rd.committed_entries[n - 1]
            self.log.applied_to(e.index)
        if (self.role == ROLE_LEADER and self.membership.auto_leave and self.membership.is_joint()
                and self.pending_conf_index <= self.log.applied and not self.lead_transferee):
            # Thesis 4.3: once C_old,new is applied, the leader proposes C_new by itself.
            self._append_entries([_entry(0, 0, ConfChange().encode(), ENTRY_CONF_CHANGE)])
            self.pending_conf_index = self.log.last_index()
            if self.id not in self.membership.voters:
                self.removal_index = self.pending_conf_index  # C_new leaves us out (4.2.2)
            self._bcast_append()

    def status(self):
        """A snapshot of this node's state as plain Python values (for tests and operators)."""
        cdef Progress pr
        progress = {}
        if self.role == ROLE_LEADER:
            for pr in self.prs.values():
                progress[pr.id] = {"match": pr.match, "next": pr.next, "state": pr.state_name,
                                   "learner": pr.is_learner, "inflight": pr.inflights.count,
                                   "recent_active": pr.recent_active,
                                   "match_rejects": pr.match_rejects}
        return {
            "id": self.id,
            "role": ROLE_NAMES[self.role],
            "term": self.term,
            "vote": self.vote,
            "leader": self.lead,
            "commit": self.log.committed,
            "applied": self.log.applied,
            "last_index": self.log.last_index(),
            "snapshot_index": self.log.snap_index,
            "voters": self.membership.voters,
            "learners": self.membership.learners,
            "voters_outgoing": self.membership.voters_outgoing,
            "lead_transferee": self.lead_transferee,
            "removal_index": self.removal_index,
            "progress": progress,
        }

    def progress(self, uint64_t id):
        """The leader's Progress for `id` (None on a follower or for an unknown node)."""
        if self.role != ROLE_LEADER:
            return None
        return self.prs.get(id)

    def lease_valid(self):
        """True while this leader holds a read lease (thesis 6.4.1; needs lease_read)."""
        return self.role == ROLE_LEADER and self.config.lease_read and self._lease_valid()


def apply_entries(list entries, uint64_t applied, object apply, object apply_conf_change,
                  dict proposals, object resolve):
    """The host's apply loop, natively: apply `entries` above index `applied`, in order.

    ENTRY_CONF_CHANGE entries go to apply_conf_change(data); an empty entry is the leader's
    no-op (result None); any other entry goes to apply(index, data as bytes). When `index` is a
    key of `proposals`, resolve(index, term, result) is called right after it applies. Returns
    the new applied index. An exception from a callback propagates (fail-stop: the state machine
    is in an unknown state and the node must restart from storage).
    """
    cdef Entry e
    cdef object data, result
    cdef bint track = len(proposals) > 0
    for e in entries:
        if e.index <= applied:
            continue
        data = e.data
        if e.type == ENTRY_CONF_CHANGE:
            result = apply_conf_change(data)
        elif data is None or len(data) == 0:
            result = None
        else:
            if type(data) is not bytes:
                data = bytes(data)
            result = apply(e.index, data)
        applied = e.index
        if track and e.index in proposals:
            resolve(e.index, e.term, result)
    return applied
