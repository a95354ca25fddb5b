"""Membership changes: one server at a time (thesis 4.1), non-voting learners that catch up
before promotion (thesis 4.2.1), removing the leader (4.2.2), joint consensus (thesis 4.3), and
the ConfChange entry payload.
"""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native.confchange import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE_NODE,
    ConfChange,
    Membership,
    decode,
)
from haperf._native.raft import LEADER, Config, RawNode
from haperf._native.raftmsg import MSG_VOTE_RESP, ConfState, Message, SnapshotMeta
from haperf.errors import ConfChangeError, ProposalDroppedError
from tests.raft.network import Cluster


def _change(c: Cluster, cc: ConfChange) -> None:
    lead = c.leader()
    proposal = c.hosts[lead].propose_conf_change(cc)
    c.stabilize()
    assert proposal.done and proposal.error is None, proposal


def test_learner_catches_up_then_is_promoted() -> None:
    """Thesis 4.2.1: a new server joins as a non-voting learner, receives the log without
    affecting commitment, and is promoted once caught up."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(10):
        c.propose(f"k{k}=v".encode())
    c.add(4, voters=c.ids)  # joiners start from the bootstrap configuration and replay the log
    _change(c, ConfChange([(CC_ADD_LEARNER, 4)]))
    assert c.nodes[1].membership.learners == (4,)
    c.tick(2)
    progress = c.nodes[1].progress(4)
    assert progress is not None and progress.is_learner
    assert progress.match == c.nodes[1].last_index  # caught up
    assert c.sms[4].data == c.sms[1].data
    # A learner does not count for commitment: with 2 and 3 cut off nothing commits.
    c.isolate(2)
    c.isolate(3)
    c.hosts[1].propose(b"no=quorum")
    c.stabilize()
    assert "no" not in c.sms[1].data
    c.heal()
    c.tick(2)
    _change(c, ConfChange([(CC_ADD_VOTER, 4)]))
    assert c.nodes[1].membership.voters == (1, 2, 3, 4)
    assert all(c.nodes[i].membership.voters == (1, 2, 3, 4) for i in (2, 3, 4))


def test_add_and_remove_one_voter_at_a_time() -> None:
    """Thesis 4.1: single-server changes; the new majority applies as soon as the entry is
    applied (4 voters need 3 acknowledgements)."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.add(4, voters=c.ids)
    _change(c, ConfChange([(CC_ADD_VOTER, 4)]))
    c.tick(2)
    c.isolate(3)
    c.isolate(4)
    c.hosts[1].propose(b"two=of4")
    c.stabilize()
    assert "two" not in c.sms[1].data  # 2 of 4 is not a majority
    c.heal()
    c.tick(2)
    assert c.sms[1].data["two"] == "of4"
    _change(c, ConfChange([(CC_REMOVE_NODE, 3)]))
    assert c.nodes[1].membership.voters == (1, 2, 4)
    # Now {1, 2} is a majority of {1, 2, 4}: the same partition as above commits.
    c.isolate(3)
    c.isolate(4)
    c.hosts[1].propose(b"x=1")
    c.stabilize()
    assert c.sms[1].data["x"] == "1"
    c.heal()
    c.isolate(3)
    c.tick(2)
    assert c.sms[4].data["x"] == "1" and "x" not in c.sms[3].data


def test_a_simple_change_may_change_only_one_voter() -> None:
    """Thesis 4.1: adding or removing two voters at once could allow two disjoint majorities,
    so it must use joint consensus."""
    with pytest.raises(ConfChangeError, match="joint"):
        Membership([1, 2, 3]).apply(ConfChange([(CC_ADD_VOTER, 4), (CC_ADD_VOTER, 5)], joint=False))
    c = Cluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(ConfChangeError):
        c.nodes[1].propose_conf_change(
            ConfChange([(CC_REMOVE_NODE, 1), (CC_REMOVE_NODE, 2), (CC_REMOVE_NODE, 3)])
        )


def test_one_change_in_flight_at_a_time() -> None:
    """Thesis 4.1: a new change starts only after the previous one is applied."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].propose_conf_change(ConfChange([(CC_ADD_LEARNER, 4)]))
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose_conf_change(ConfChange([(CC_ADD_LEARNER, 5)]))


def test_removing_the_leader_makes_it_step_down() -> None:
    """Thesis 4.2.2: a leader removed from the configuration steps down once the change is
    applied, and the remaining servers elect a new leader."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    _change(c, ConfChange([(CC_REMOVE_NODE, 1)]))
    assert c.nodes[1].role != LEADER
    c.tick(40, only=[2, 3])
    assert c.leader() in (2, 3)
    c.propose(b"b=2")
    assert c.sms[2].data["b"] == "2" and "b" not in c.sms[1].data


def test_joint_consensus_replaces_a_majority_of_voters() -> None:
    """Thesis 4.3: C_old,new then C_new; while joint, commitment needs a majority of both."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for node in (4, 5):
        c.add(node, voters=c.ids)
    cc = ConfChange(
        [(CC_ADD_VOTER, 4), (CC_ADD_VOTER, 5), (CC_REMOVE_NODE, 2), (CC_REMOVE_NODE, 3)],
        auto_leave=False,
    )
    _change(c, cc)
    ms = c.nodes[1].membership
    assert ms.is_joint() and ms.voters == (1, 4, 5) and ms.voters_outgoing == (1, 2, 3)
    # Old majority present, new majority absent: nothing commits.
    c.isolate(4)
    c.isolate(5)
    c.hosts[1].propose(b"joint=1")
    c.stabilize()
    assert "joint" not in c.sms[1].data
    c.heal()
    c.tick(2)
    assert c.sms[1].data["joint"] == "1"
    _change(c, ConfChange())  # leave joint: C_new alone
    ms = c.nodes[1].membership
    assert not ms.is_joint() and ms.voters == (1, 4, 5)
    c.isolate(2)
    c.isolate(3)
    c.propose(b"new=1")
    assert c.sms[5].data["new"] == "1"


def test_joint_consensus_leaves_automatically() -> None:
    """Thesis 4.3: with auto_leave the leader proposes C_new itself once C_old,new applies."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.add(4, voters=c.ids)
    _change(c, ConfChange([(CC_ADD_VOTER, 4), (CC_REMOVE_NODE, 3)]))
    c.tick(2)
    for i in (1, 2, 4):
        ms = c.nodes[i].membership
        assert not ms.is_joint() and ms.voters == (1, 2, 4), (i, ms)


def test_joint_election_needs_both_majorities() -> None:
    """Thesis 4.3: while joint, a candidate needs votes from a majority of C_old and of C_new."""
    conf = ConfState(voters=(1, 4, 5), voters_outgoing=(1, 2, 3))
    n = RawNode(Config(1, [1, 2, 3], pre_vote=False), 1, snapshot=(SnapshotMeta(5, 1, conf), b""))
    n.campaign()
    for voter in (2, 3):
        n.step(Message(MSG_VOTE_RESP, to=1, frm=voter, term=n.term))
    assert n.role != LEADER
    n.step(Message(MSG_VOTE_RESP, to=1, frm=4, term=n.term))
    assert n.role == LEADER


def test_membership_rules() -> None:
    m = Membership([1, 2, 3], [4])
    assert m.apply(ConfChange([(CC_ADD_VOTER, 4)])).voters == (1, 2, 3, 4)
    with pytest.raises(ConfChangeError, match="demoting"):
        m.apply(ConfChange([(CC_ADD_LEARNER, 2)]))
    with pytest.raises(ConfChangeError, match="not joint"):
        m.apply(ConfChange())
    with pytest.raises(ConfChangeError, match="no voters"):
        Membership([1]).apply(ConfChange([(CC_REMOVE_NODE, 1)]))
    joint = m.apply(ConfChange([(CC_ADD_VOTER, 5)], joint=True))
    assert joint.is_joint()
    with pytest.raises(ConfChangeError, match="left"):
        joint.apply(ConfChange([(CC_ADD_VOTER, 6)]))


changes = st.lists(
    st.tuples(
        st.sampled_from([CC_ADD_VOTER, CC_REMOVE_NODE, CC_ADD_LEARNER]), st.integers(1, 2**64 - 1)
    ),
    max_size=8,
)


@given(changes, st.sampled_from([None, True]), st.booleans())
def test_payload_round_trips(items: list[tuple[int, int]], joint: bool | None, auto: bool) -> None:
    cc = ConfChange(items, joint=joint, auto_leave=auto)
    assert decode(cc.encode()) == cc


@given(st.binary(max_size=64))
def test_decoding_garbage_raises_conf_change_error(data: bytes) -> None:
    try:
        cc = decode(data)
    except ConfChangeError:
        return
    assert cc.encode() == data


def test_a_learner_is_promoted_only_once_caught_up() -> None:
    """Thesis 4.2.1: a learner that has not replicated the log yet is not made a voter (it would
    stall commitment); the leader refuses and says why."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.add(4, voters=c.ids)
    _change(c, ConfChange([(CC_ADD_LEARNER, 4)]))
    c.isolate(4)
    for k in range(5):
        c.propose(f"k{k}=v".encode())
    with pytest.raises(ProposalDroppedError, match="not caught up"):
        c.nodes[1].propose_conf_change(ConfChange([(CC_ADD_VOTER, 4)]))
    c.heal()
    c.tick(2)
    _change(c, ConfChange([(CC_ADD_VOTER, 4)]))
    assert 4 in c.nodes[1].membership.voters


def _joint_cluster() -> Cluster:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for node in (4, 5):
        c.add(node, voters=c.ids)
    cc = ConfChange(
        [(CC_ADD_VOTER, 4), (CC_ADD_VOTER, 5), (CC_REMOVE_NODE, 2), (CC_REMOVE_NODE, 3)],
        auto_leave=False,
    )
    _change(c, cc)
    c.tick(2)
    assert c.nodes[1].membership.is_joint()
    return c


def test_joint_read_index_needs_both_majorities() -> None:
    """Thesis 4.3 + 6.4: while joint, confirming leadership for a read needs a majority of
    C_old and of C_new."""
    c = _joint_cluster()
    c.isolate(4)
    c.isolate(5)
    request = c.hosts[1].read(b"j")
    c.stabilize()
    assert not request.ready  # C_old (1, 2, 3) acknowledged, C_new (1, 4, 5) did not
    c.heal()
    c.tick(1)
    assert request.ready and request.error is None


def test_joint_check_quorum_needs_both_majorities() -> None:
    """Thesis 4.3 + 6.2: a joint leader that hears from a majority of only one configuration
    steps down after an election timeout."""
    c = _joint_cluster()
    c.isolate(4)
    c.isolate(5)
    c.tick(25, only=[1, 2, 3])
    assert c.nodes[1].role != LEADER


ops = st.lists(
    st.tuples(st.sampled_from([CC_ADD_VOTER, CC_REMOVE_NODE, CC_ADD_LEARNER]), st.integers(1, 7)),
    min_size=0,
    max_size=4,
)


@given(st.lists(st.tuples(ops, st.sampled_from([None, True])), max_size=12))
def test_membership_rules_hold_for_any_change_sequence(steps: list[tuple[Any, Any]]) -> None:
    """Thesis 4.1/4.2.1/4.3 as invariants: after any sequence of accepted changes, voters and
    learners never overlap, a voter set is never empty, a simple change moves at most one voter,
    and a joint configuration keeps the previous voters as C_old until it is left."""
    m = Membership([1, 2, 3])
    for items, joint in steps:
        try:
            cc = ConfChange(items, joint=joint)
            nxt = m.apply(cc)
        except ConfChangeError:
            continue
        assert nxt.voters and not set(nxt.learners) & (set(nxt.voters) | set(nxt.voters_outgoing))
        if cc.is_leave_joint():
            assert m.is_joint() and not nxt.is_joint() and nxt.voters == m.voters
        elif nxt.is_joint():
            assert nxt.voters_outgoing == m.voters
        else:
            assert len(set(nxt.voters) ^ set(m.voters)) <= 1
        m = nxt


def test_a_configuration_beyond_voters_max_is_refused_not_overflowed() -> None:
    """The quorum code counts in arrays of VOTERS_MAX (64): a 65th voter, added one change at a
    time, is refused with ConfChangeError at proposal (and if it reached apply); before this
    check, committing with 65+ voters wrote past the array."""
    node = RawNode(Config(1, voters=[1]), 7)
    node.campaign()
    for i in range(2, 65):
        node.apply_conf_change(ConfChange([(CC_ADD_VOTER, i)]))
    assert len(node.membership.voters) == 64
    with pytest.raises(ConfChangeError, match="at most 64 voters"):
        node.propose_conf_change(ConfChange([(CC_ADD_VOTER, 65)]))
    with pytest.raises(ConfChangeError, match="at most 64 voters"):
        node.apply_conf_change(ConfChange([(CC_ADD_VOTER, 65)]))
    with pytest.raises(ConfChangeError, match="at most 64 voters"):
        Membership(voters=range(1, 66))
    assert len(node.membership.voters) == 64
    node.propose(b"x")  # the configuration in force still works
