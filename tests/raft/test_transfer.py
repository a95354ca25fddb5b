"""Leadership transfer (thesis 3.10): the leader brings the target up to date, sends it
TimeoutNow, and the target campaigns at once (bypassing pre-vote and the followers' leader
lease); proposals stop meanwhile and the transfer aborts after an election timeout.
"""

import pytest

from haperf._native.raft import FOLLOWER, LEADER
from haperf._native.raftmsg import MSG_APP, MSG_TIMEOUT_NOW, MSG_VOTE
from haperf.errors import ConfigError, NotLeaderError, ProposalDroppedError
from tests.raft.network import Cluster


def test_transfer_to_an_up_to_date_follower() -> None:
    """Thesis 3.10: TimeoutNow makes the target start an election in the next term and win."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    term = c.nodes[1].term
    c.record = True
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2 and c.nodes[2].term == term + 1
    assert c.nodes[1].role == FOLLOWER and c.nodes[1].lead == 2
    kinds = [(m.type, m.frm, m.to) for m in c.delivered]
    assert (MSG_TIMEOUT_NOW, 1, 2) in kinds
    votes = [m for m in c.delivered if m.type == MSG_VOTE]
    assert votes and all(m.context == b"transfer" for m in votes)


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    """Thesis 3.10 step 2: the leader replicates the missing entries before TimeoutNow."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for k in range(5):
        c.propose(f"k{k}=v".encode())
    c.heal()
    c.record = True
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    first_timeout = next(i for i, m in enumerate(c.delivered) if m.type == MSG_TIMEOUT_NOW)
    assert any(m.type == MSG_APP and m.to == 3 for m in c.delivered[:first_timeout])
    assert c.leader() == 3
    assert c.applied_data(3)[:5] == [f"k{k}=v".encode() for k in range(5)]


def test_proposals_are_refused_during_a_transfer() -> None:
    """Thesis 3.10 step 1: the old leader stops accepting client requests while transferring."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.cut.add((1, 2))
    c.nodes[1].transfer_leader(2)
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"x")


def test_transfer_aborts_after_an_election_timeout() -> None:
    """Thesis 3.10: if the transfer does not complete within an election timeout the leader
    aborts it and accepts requests again."""
    c = Cluster([1, 2, 3], election_tick=10)
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leader(2)
    assert c.nodes[1].lead_transferee == 2
    c.tick(10, only=[1, 3])
    assert c.nodes[1].lead_transferee == 0 and c.nodes[1].role == LEADER
    assert c.propose(b"after=1") > 0


def test_transfer_needs_a_leader_and_a_voter_target() -> None:
    c = Cluster([1, 2, 3], learners=[4])
    c.elect(1)
    with pytest.raises(NotLeaderError):
        c.nodes[2].transfer_leader(3)
    with pytest.raises(ConfigError):
        c.nodes[1].transfer_leader(4)
    c.nodes[1].transfer_leader(1)  # to itself: nothing to do
    assert c.nodes[1].lead_transferee == 0


def test_transfer_bypasses_the_followers_leader_lease() -> None:
    """Thesis 3.10 + 4.2.3: votes marked as a transfer are honoured even while followers still
    hear from the leader (check_quorum lease), otherwise no transfer could succeed."""
    c = Cluster([1, 2, 3, 4, 5], check_quorum=True)
    c.elect(1)
    c.propose(b"a=1")
    c.nodes[1].transfer_leader(4)
    c.stabilize()
    assert c.leader() == 4
