"""Linearizable reads: ReadIndex (thesis 6.4) and leases (thesis 6.4.1).

ReadIndex: the leader records its commit index, confirms it is still leader with a heartbeat
round acknowledged by a majority, and the read is served once the state machine has applied that
index. A lease lets the leader skip the round trip while a majority acknowledged it recently.
"""

from haperf._native.raft import Config, RawNode
from haperf._native.raftmsg import (
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESP,
    MSG_READ_INDEX,
    MSG_READ_INDEX_RESP,
    MSG_VOTE,
    MSG_VOTE_RESP,
    Message,
)
from haperf.errors import NotLeaderError
from tests.raft.network import Cluster


def test_read_index_waits_for_a_majority_heartbeat_round() -> None:
    """Thesis 6.4 steps 2-3: the read is answered only after a majority acknowledges a
    heartbeat round sent after the request."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.record = True
    request = c.hosts[1].read(b"q1")
    c.process()
    assert not request.ready
    c.stabilize()
    assert request.ready and request.error is None and request.index == c.nodes[1].commit
    assert any(m.type == MSG_HEARTBEAT and m.to in (2, 3) for m in c.delivered)


def test_an_isolated_leader_cannot_serve_a_read() -> None:
    """Thesis 6.4: a deposed or partitioned leader must not answer with stale data."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(1)
    request = c.hosts[1].read(b"q")
    c.stabilize()
    assert not request.ready
    c.tick(5)
    assert not request.ready


def test_one_ack_of_a_majority_is_enough() -> None:
    """Thesis 6.4: a majority (leader + one of three) confirms leadership."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    request = c.hosts[1].read(b"q")
    c.stabilize()
    assert request.ready


def test_a_new_leader_waits_for_its_first_commit() -> None:
    """Thesis 6.4 step 1: a new leader's commit index is only current after an entry of its own
    term commits, so a read waits for the no-op entry before its confirmation round starts."""
    n = RawNode(Config(1, [1, 2, 3], pre_vote=False), 1)
    n.campaign()
    n.step(Message(MSG_VOTE_RESP, to=1, frm=2, term=n.term))
    n.ready()
    n.read_index(b"early")
    rd = n.ready()
    assert rd.read_states == [] and not [m for m in rd.messages if m.type == MSG_HEARTBEAT]
    n.step(Message(MSG_APP_RESP, to=1, frm=2, term=n.term, index=1))
    heartbeats = [m for m in n.ready().messages if m.type == MSG_HEARTBEAT]
    assert {m.to for m in heartbeats} == {2, 3}
    n.step(Message(MSG_HEARTBEAT_RESP, to=1, frm=3, term=n.term, context=heartbeats[0].context))
    assert n.ready().read_states == [(1, b"early")]


def test_follower_read_goes_through_the_leader() -> None:
    """Thesis 6.4: a follower asks the leader for the read index and serves the read locally
    once it has applied that index."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.record = True
    request = c.hosts[2].read(b"f")
    c.stabilize()
    assert request.ready and request.index == c.nodes[1].commit
    types = {(m.type, m.frm, m.to) for m in c.delivered}
    assert (MSG_READ_INDEX, 2, 1) in types and (MSG_READ_INDEX_RESP, 1, 2) in types
    assert c.sms[2].data["a"] == "1"


def test_read_without_a_leader_raises_not_leader() -> None:
    c = Cluster([1, 2, 3])
    try:
        c.hosts[2].read(b"x")
    except NotLeaderError as exc:
        assert exc.leader_id == 0
    else:
        raise AssertionError("read without a leader was accepted")
    assert c.hosts[2].reads == {}


def test_lease_read_needs_no_round_trip() -> None:
    """Thesis 6.4.1: within its lease the leader answers from its commit index at once."""
    c = Cluster([1, 2, 3], lease_read=True)
    c.elect(1)
    c.propose(b"a=1")
    c.tick(1)  # a heartbeat round acknowledged by all: the lease starts
    assert c.nodes[1].lease_valid()
    request = c.hosts[1].read(b"lease")
    c.process()
    assert request.ready
    assert not c.queue, "a lease read sends nothing"


def test_lease_expires_without_acknowledgements() -> None:
    """Thesis 6.4.1: the lease lasts election_tick - lease_drift_ticks leader ticks after the
    acknowledged round was sent; then reads fall back to ReadIndex (and block when isolated)."""
    c = Cluster([1, 2, 3], lease_read=True, election_tick=10, lease_drift_ticks=2)
    c.elect(1)
    c.propose(b"a=1")
    c.tick(1)
    c.isolate(1)
    ticks = 0
    while c.nodes[1].lease_valid():
        c.tick(1, only=[1])
        ticks += 1
    assert 1 <= ticks <= 10 - 2
    request = c.hosts[1].read(b"late")
    c.stabilize()
    assert not request.ready


def test_no_lease_reads_during_leadership_transfer() -> None:
    """Thesis 3.10 + 6.4.1: the transfer target may win before the lease ends, so the leader
    stops lease reads while transferring."""
    c = Cluster([1, 2, 3], lease_read=True)
    c.elect(1)
    c.propose(b"a=1")
    c.tick(1)
    c.cut.add((1, 2))
    c.nodes[1].transfer_leader(2)
    request = c.hosts[1].read(b"t")
    c.process()
    assert not request.ready


def test_unconfirmed_reads_fail_when_the_leader_changes() -> None:
    """Thesis 6.4: a read is confirmed by the leadership of one term; when leadership moves
    before confirmation the host fails it (retry) instead of leaving it waiting forever."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(1)
    request = c.hosts[1].read(b"q")
    c.stabilize()
    c.tick(25)  # check-quorum: node 1 steps down
    assert request.ready and request.error is not None
    assert c.hosts[1].reads == {}


def test_a_restarted_follower_honours_the_lease_for_an_election_timeout() -> None:
    """Thesis 6.4.1 + 4.2.3: a follower that crashed right after acknowledging the leader must
    not help elect another leader before the lease it granted has run out."""
    c = Cluster([1, 2, 3], lease_read=True, pre_vote=False)
    c.elect(1)
    c.propose(b"a=1")
    c.tick(1)
    c.restart(2)
    term = c.nodes[2].term
    c.nodes[2].step(Message(MSG_VOTE, to=2, frm=3, term=term + 1, index=100, log_term=term + 1))
    assert c.nodes[2].term == term and c.nodes[2].vote == 1  # ignored
    for _ in range(10):
        c.nodes[2].tick()
    c.nodes[2].step(Message(MSG_VOTE, to=2, frm=3, term=term + 1, index=100, log_term=term + 1))
    assert c.nodes[2].term == term + 1 and c.nodes[2].vote == 3  # the guard has expired


def test_the_read_queue_is_bounded() -> None:
    """Every queue has a named maximum: beyond pending_reads_max the leader refuses a read (the
    host turns the refusal into an error) instead of growing without bound."""
    c = Cluster([1, 2, 3], pending_reads_max=1)
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(1)
    first = c.hosts[1].read(b"one")
    second = c.hosts[1].read(b"two")
    c.stabilize()
    assert not first.ready
    assert second.ready and second.error is not None
