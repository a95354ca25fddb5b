"""Leader election: Raft 5.2 (randomized timeouts, one vote per term), 5.4.1 (election
restriction), thesis 9.6 (pre-vote), thesis 6.2 (check-quorum) and 4.2.3 (disruptive servers).

Each test drives RawNodes through the in-process network (tests/raft/network.py) or by hand.
"""

import pytest

from haperf._native.raft import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRE_CANDIDATE,
    Config,
    HardState,
    RawNode,
)
from haperf._native.raftmsg import (
    MSG_APP,
    MSG_HEARTBEAT,
    MSG_PREVOTE,
    MSG_VOTE,
    MSG_VOTE_RESP,
    Entry,
    Message,
)
from haperf.errors import ConfigError
from tests.raft.network import Cluster


def test_a_follower_campaigns_after_its_randomized_timeout() -> None:
    """Raft 5.2: a follower that hears nothing for its election timeout starts an election, and
    the timeout is drawn from [election_tick, 2 * election_tick)."""
    c = Cluster([1, 2, 3], election_tick=10)
    timeouts = {c.nodes[i].randomized_election_timeout for i in c.ids}
    assert all(10 <= t < 20 for t in timeouts)
    first = min(c.ids, key=lambda i: c.nodes[i].randomized_election_timeout)
    c.tick(c.nodes[first].randomized_election_timeout)
    assert c.leader() != 0
    assert sum(c.nodes[i].role == LEADER for i in c.ids) == 1


def test_the_timeout_comes_from_the_caller_seeded_rng() -> None:
    """Raft 5.2 randomized timeouts, made reproducible: same seed, same timeouts; the state is
    readable and settable."""
    cfg = Config(1, [1, 2, 3], pre_vote=False)
    seq_a, seq_b = [], []
    a, b = RawNode(cfg, 42), RawNode(cfg, 42)
    for _ in range(20):
        a.campaign()
        b.campaign()
        seq_a.append(a.randomized_election_timeout)
        seq_b.append(b.randomized_election_timeout)
    assert seq_a == seq_b and len(set(seq_a)) > 1
    assert a.rng_state == b.rng_state
    c = RawNode(cfg, 7)
    c.rng_state = a.rng_state
    a.campaign()
    c.campaign()
    assert c.randomized_election_timeout == a.randomized_election_timeout


def test_one_vote_per_term_first_come_first_served() -> None:
    """Raft 5.2: each server votes for at most one candidate in a given term."""
    n = RawNode(Config(1, [1, 2, 3], pre_vote=False), 1)
    n.step(Message(MSG_VOTE, to=1, frm=2, term=5, index=0, log_term=0))
    n.step(Message(MSG_VOTE, to=1, frm=3, term=5, index=0, log_term=0))
    resps = [m for m in n.ready().messages if m.type == MSG_VOTE_RESP]
    assert [(m.to, m.reject) for m in resps] == [(2, False), (3, True)]
    assert (n.term, n.vote) == (5, 2)


def test_vote_only_for_an_up_to_date_log() -> None:
    """Raft 5.4.1: a vote is granted only to a candidate whose log is at least as up-to-date
    (higher last term, or same last term and at least as long)."""
    ents = [Entry(1, 1, b"a"), Entry(2, 2, b"b")]
    for index, log_term, granted in ((2, 2, True), (5, 1, False), (1, 2, False), (1, 3, True)):
        # check_quorum off: this restarted node would otherwise ignore votes for one timeout.
        cfg = Config(1, [1, 2, 3], check_quorum=False)
        n = RawNode(cfg, 1, hard_state=HardState(2, 0, 0), entries=ents)
        n.step(Message(MSG_VOTE, to=1, frm=2, term=3, index=index, log_term=log_term))
        (resp,) = [m for m in n.ready().messages if m.type == MSG_VOTE_RESP]
        assert resp.reject is (not granted), (index, log_term)


def test_election_safety_one_leader_per_term() -> None:
    """Raft 5.2 Election Safety: at most one leader per term, over many elections."""
    c = Cluster([1, 2, 3, 4, 5], seed=3)
    leaders_by_term: dict[int, set[int]] = {}
    for _round in range(6):
        c.tick(25)
        lead = c.leader()
        assert lead
        leaders_by_term.setdefault(c.nodes[lead].term, set()).add(lead)
        c.isolate(lead)
        c.tick(25)
        c.heal()
    assert all(len(ls) == 1 for ls in leaders_by_term.values())
    assert len(leaders_by_term) >= 3


def test_candidate_returns_to_follower_on_append_from_leader_of_its_term() -> None:
    """Raft 5.2: a candidate that receives AppendEntries from a leader of its term steps down."""
    for pre_vote in (False, True):
        n = RawNode(Config(3, [1, 2, 3], pre_vote=pre_vote), 1)
        n.campaign()
        assert n.role == (PRE_CANDIDATE if pre_vote else CANDIDATE)
        n.step(Message(MSG_APP, to=3, frm=1, term=max(n.term, 1), index=0, log_term=0))
        assert n.role == FOLLOWER and n.lead == 1


def test_higher_term_makes_a_leader_step_down() -> None:
    """Raft 5.1: a server that sees a higher term becomes follower of that term."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    vote = Message(MSG_VOTE, to=1, frm=2, term=9, index=0, log_term=0, context=b"transfer")
    c.nodes[1].step(vote)
    assert c.nodes[1].role == FOLLOWER and c.nodes[1].term == 9


def test_prevote_keeps_a_partitioned_node_from_raising_its_term() -> None:
    """Thesis 9.6: with pre-vote, an isolated node cannot win a pre-election, so its term stays
    and it does not disrupt the cluster when it returns."""
    c = Cluster([1, 2, 3], pre_vote=True)
    c.elect(1)
    term = c.nodes[1].term
    c.isolate(3)
    c.tick(60)
    assert c.nodes[3].term == term
    assert c.nodes[3].role == PRE_CANDIDATE
    c.heal()
    c.tick(3)
    assert c.leader() == 1 and c.nodes[1].term == term
    assert c.nodes[3].role == FOLLOWER and c.nodes[3].lead == 1


def test_without_prevote_a_returning_node_forces_a_new_term() -> None:
    """Thesis 9.6 (the problem pre-vote solves): without it the isolated node's term grows and
    its return deposes the leader. Control for the test above."""
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.elect(1)
    term = c.nodes[1].term
    c.isolate(3)
    c.tick(60)
    assert c.nodes[3].term > term
    c.heal()
    c.tick(3)
    assert c.nodes[1].term > term


def test_check_quorum_partitioned_leader_steps_down() -> None:
    """Thesis 6.2: a leader that hears from no majority for an election timeout steps down."""
    c = Cluster([1, 2, 3], check_quorum=True)
    c.elect(1)
    c.partition([1], [2, 3])
    c.tick(25, only=[1])
    assert c.nodes[1].role == FOLLOWER


def test_without_check_quorum_a_partitioned_leader_stays() -> None:
    """Control for thesis 6.2: without check-quorum the isolated leader keeps leading."""
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.partition([1], [2, 3])
    c.tick(25, only=[1])
    assert c.nodes[1].role == LEADER


def test_votes_are_ignored_while_a_leader_is_heard() -> None:
    """Thesis 4.2.3: a server that heard from a leader within the minimum election timeout does
    not grant (or even consider) a vote, so a removed or partitioned server cannot disrupt."""
    c = Cluster([1, 2, 3], check_quorum=True)
    c.elect(1)
    c.nodes[2].step(Message(MSG_VOTE, to=2, frm=3, term=50, index=100, log_term=50))
    assert c.nodes[2].term == 1 and c.nodes[2].vote != 3


def test_prevote_is_granted_without_recording_a_vote() -> None:
    """Thesis 9.6: granting a pre-vote changes neither term nor vote."""
    n = RawNode(Config(1, [1, 2, 3], check_quorum=False), 1, hard_state=HardState(4, 0, 0))
    n.step(Message(MSG_PREVOTE, to=1, frm=2, term=5, index=0, log_term=0))
    (resp,) = n.ready().messages
    assert not resp.reject and resp.term == 5
    assert (n.term, n.vote) == (4, 0)


def test_restart_keeps_term_and_vote() -> None:
    """Raft 5.1 / Figure 2: currentTerm and votedFor are persistent; after a restart the node
    refuses a second vote in the same term."""
    c = Cluster([1, 2, 3], pre_vote=False)
    c.nodes[2].campaign()
    c.stabilize()
    assert c.nodes[1].vote == 2
    c.restart(1)
    assert (c.nodes[1].term, c.nodes[1].vote) == (c.nodes[2].term, 2)
    c.nodes[1].step(Message(MSG_VOTE, to=1, frm=3, term=c.nodes[1].term, index=9, log_term=9))
    (resp,) = [m for m in c.nodes[1].ready().messages if m.type == MSG_VOTE_RESP]
    assert resp.reject


def test_learners_never_campaign() -> None:
    """Thesis 4.2.1: non-voting members do not start elections."""
    c = Cluster([1, 2, 3], learners=[4])
    c.isolate(4)
    c.tick(100, only=[4])
    assert c.nodes[4].role == FOLLOWER and c.nodes[4].term == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"election_tick": 1, "heartbeat_tick": 1},
        {"heartbeat_tick": 0},
        {"inflight_msgs_max": 0},
        {"lease_read": True, "check_quorum": False},
        {"lease_drift_ticks": 10},
    ],
)
def test_bad_config_raises_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Config(1, [1, 2, 3], **kwargs)  # type: ignore[arg-type]


def test_bad_ids_raise() -> None:
    with pytest.raises(ConfigError):
        Config(0, [1])
    with pytest.raises(ConfigError):
        Config(1, [1, 1])
    with pytest.raises(ConfigError):
        Config(1, [1, 2], [2])


def test_heartbeats_keep_followers_from_campaigning() -> None:
    """Raft 5.2: the leader sends periodic heartbeats (every heartbeat_tick) and a follower
    that keeps receiving them never starts an election."""
    c = Cluster([1, 2, 3], heartbeat_tick=2, election_tick=10)
    c.elect(1)
    term = c.nodes[1].term
    c.record = True
    c.tick(100)
    heartbeats = [m for m in c.delivered if m.type == MSG_HEARTBEAT and m.frm == 1]
    assert len(heartbeats) == 2 * (100 // 2)
    assert c.leader() == 1 and all(c.nodes[i].term == term for i in c.ids)
