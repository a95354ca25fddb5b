"""Regression tests for the two core bugs the deterministic simulator found (SIM_FINDINGS.md),
reproduced directly on the in-process Cluster rather than through the simulator.

#1 Append storm (Raft 5.3, thesis 3.5 flow control): a rejection at or below a follower's match
   index is stale in every progress state; probing a follower that lost acknowledged entries
   stays paced by heartbeats (at most one MSG_APP per heartbeat response) and each such rejection
   is counted in the leader's Progress.match_rejects / status()["progress"][id]["match_rejects"].
#2 Removing the leader (thesis 4.2.2, 3.10): a leader that removes itself refuses new
   proposals, keeps replicating without counting itself until a majority of the new
   configuration holds its whole committed log, then sends MSG_TIMEOUT_NOW to such a voter and
   steps down; the survivors elect a leader and commit, even if none of them learned from the
   old leader that the removal committed (seed 3251's shape).
"""

import pytest

from haperf._native.confchange import CC_ADD_VOTER, CC_REMOVE_NODE, ConfChange
from haperf._native.raft import LEADER
from haperf._native.raftmsg import MSG_APP, MSG_APP_RESP, MSG_TIMEOUT_NOW, Message
from haperf.errors import NotLeaderError, ProposalDroppedError
from tests.raft.network import Cluster

TICKS = 30


def _wiped(c: Cluster, node_id: int) -> None:
    """Replace `node_id` by a node with an empty disk and the same id (it lost acked state)."""
    c.add(node_id, voters=c.ids)


def _apps_to(c: Cluster, node_id: int) -> int:
    return sum(1 for m in c.delivered if m.type == MSG_APP and m.to == node_id)


def test_follower_that_lost_acknowledged_entries_is_probed_once_per_heartbeat() -> None:
    """Finding #1: before the fix each reject made a new MSG_APP at once (stabilize never
    settled); now at most one probe per heartbeat, and the leader counts the rejections."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(20):
        c.propose(f"k{k}=v".encode())
    pr = c.nodes[1].progress(3)
    assert pr is not None
    match = pr.match
    assert match == c.nodes[1].last_index
    _wiped(c, 3)
    c.record = True
    c.propose(b"after=1")  # node 3 rejects it: its log is empty; node 2 commits it
    assert c.sms[2].data["after"] == "1"
    c.delivered.clear()
    c.tick(TICKS // 3)
    rejects_early = c.nodes[1].status()["progress"][3]["match_rejects"]  # type: ignore[index]
    c.tick(TICKS - TICKS // 3)
    heartbeat_tick = c.nodes[1].config.heartbeat_tick
    # One heartbeat per heartbeat_tick, one probe per heartbeat response.
    assert _apps_to(c, 3) <= TICKS // heartbeat_tick
    progress = c.nodes[1].status()["progress"][3]  # type: ignore[index]
    # The rejections are surfaced, one more per heartbeat while the follower stays broken.
    assert rejects_early >= 1
    assert progress["match_rejects"] >= rejects_early + (TICKS - TICKS // 3) - 1
    # The leader never moves next to or below an acknowledged match, and the cluster still
    # commits with the other majority.
    assert progress["state"] == "probe"
    assert progress["match"] == match and progress["next"] == match + 1
    c.propose(b"later=1")
    assert c.sms[2].data["later"] == "1"
    assert c.nodes[3].last_index == 0


def test_follower_that_lost_acknowledged_entries_is_repaired_by_a_snapshot() -> None:
    """Finding #1 with compaction: the paced probe reaches compacted entries, so the leader
    sends its snapshot (thesis 5) and the follower converges."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(10):
        c.propose(f"k{k}=v".encode())
    _wiped(c, 3)
    c.propose(b"more=1")  # acknowledged by node 2 only: node 3 rejects
    c.hosts[1].compact()
    c.tick(5)
    assert c.sms[3].data == c.sms[1].data
    pr = c.nodes[1].progress(3)
    assert pr is not None and pr.match == c.nodes[1].last_index and pr.match_rejects >= 1


def test_match_rejects_counts_a_stale_reject_without_resending() -> None:
    """A reject at or below match never moves next nor triggers an append, in REPLICATE as in
    PROBE (before the fix PROBE answered it with the same MSG_APP at once)."""
    c = Cluster([1, 2])
    c.elect(1)
    for k in range(3):
        c.propose(f"k{k}=v".encode())
    node = c.nodes[1]
    pr = node.progress(2)
    assert pr is not None and pr.state_name == "replicate"
    last = node.last_index
    assert pr.match == last
    for state in ("replicate", "probe"):
        if state == "probe":
            node.report_unreachable(2)
        assert pr.state_name == state
        before = pr.match_rejects
        node.step(Message(MSG_APP_RESP, 1, 2, node.term, index=last, reject=True))
        assert pr.match_rejects == before + 1
        assert pr.next == last + 1 and pr.match == last
        sent = node.ready().messages if node.has_ready() else []
        assert not [m for m in sent if m.type == MSG_APP]


def _remove_voter_then_propose_own_removal(c: Cluster) -> int:
    c.elect(1)
    c.propose(b"a=1")
    proposal = c.hosts[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 3)]))
    c.stabilize()
    assert proposal.done and c.nodes[1].membership.voters == (1, 2)
    index: int = c.nodes[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 1)]))
    return index


def test_removed_leader_refuses_proposals_after_its_own_removal() -> None:
    """Thesis 4.2.2: once the leader appended its own removal it appends no new proposals
    (client, forwarded or membership), so the log the survivors must match stops growing."""
    c = Cluster([1, 2, 3])
    removal = _remove_voter_then_propose_own_removal(c)
    assert c.nodes[1].status()["removal_index"] == removal
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"late=1")
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose_batch([b"late=1", b"late=2"])
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 2)]))
    assert c.nodes[1].last_index == removal
    # A proposal node 2 forwards before the handover is dropped too.
    c.nodes[2].propose(b"fwd=1")
    c.stabilize()
    assert all(b"fwd=1" not in c.applied_data(n) for n in (1, 2))


def test_removing_the_leader_after_removing_a_voter_elects_a_survivor() -> None:
    """Seed 3251's shape: {1,2,3}, remove 3, then leader 1 removes itself and a client proposal
    follows. Node 2 acknowledges the removal but never hears from node 1 that it committed (and
    loses the TIMEOUT_NOW), so node 2 still counts node 1 as a voter. Before the fix node 1
    stepped down with a longer log and refused node 2 its vote forever; now node 1 refused the
    extra proposal and waited until node 2 held its whole log, so node 2 wins and commits."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.hosts[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 3)]))
    c.stabilize()
    removal_box: list[int] = []

    def drop(m: Message) -> bool:
        # Node 1 never tells node 2 that the removal committed, nor hands over.
        return (
            m.frm == 1
            and m.to == 2
            and bool(removal_box)
            and (m.commit >= removal_box[0] or m.type == MSG_TIMEOUT_NOW)
        )

    c.drop_filter = drop
    removal_box.append(c.nodes[1].last_index + 1)
    proposal = c.hosts[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 1)]))
    assert proposal.index == removal_box[0]
    with pytest.raises(ProposalDroppedError):
        c.hosts[1].propose(b"extra=1")  # the unreplicated extra entry of seed 3251
    c.stabilize()
    assert proposal.done and proposal.error is None
    assert c.nodes[1].role != LEADER and c.nodes[1].membership.voters == (2,)
    assert c.nodes[1].last_index == removal_box[0]
    # Node 2 holds the whole log but not the news that the removal committed.
    assert c.nodes[2].last_index == removal_box[0]
    assert c.nodes[2].commit < removal_box[0] and c.nodes[2].membership.voters == (1, 2)
    c.tick(4 * c.nodes[2].config.election_tick)
    assert c.leader() == 2
    assert c.nodes[2].membership.voters == (2,)
    c.propose(b"b=2")
    assert c.sms[2].data["b"] == "2"
    assert "b" not in c.sms[1].data and b"extra=1" not in c.applied_data(2)


def test_removed_leader_keeps_leading_until_a_new_majority_holds_its_log() -> None:
    """Thesis 4.2.2: {1,2,3} minus leader 1 commits with C_old's majority {1,2} while 3 is cut
    off; C_new = {2,3} has no majority holding the log yet, so node 1 keeps leading (not counting
    itself). Once 3 catches up, node 1 hands over (thesis 3.10) and steps down."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(3)
    proposal = c.hosts[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 1)]))
    c.stabilize()
    assert proposal.done
    status = c.nodes[1].status()
    assert status["role"] == "leader" and status["voters"] == (2, 3)
    assert 1 not in status["progress"]  # type: ignore[operator]
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"late=1")
    c.heal()
    c.record = True
    c.tick(1)
    assert c.nodes[1].role != LEADER
    assert any(m.type == MSG_TIMEOUT_NOW and m.frm == 1 for m in c.delivered)
    assert c.leader() in (2, 3)
    c.propose(b"b=2")
    assert c.sms[2].data["b"] == "2" and c.sms[3].data["b"] == "2"
    assert "b" not in c.sms[1].data


def test_joint_change_that_leaves_the_leader_out_hands_over_after_auto_leave() -> None:
    """Thesis 4.3 + 4.2.2: while joint the leader is an outgoing voter and keeps leading; the
    automatic leave entry it appends removes it, so from then on it refuses proposals, and once
    a majority of C_new holds its log it hands over to a C_new voter and steps down."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    for node in (4, 5):
        c.add(node, voters=c.ids)
    cc = ConfChange(
        [(CC_ADD_VOTER, 4), (CC_ADD_VOTER, 5), (CC_REMOVE_NODE, 1), (CC_REMOVE_NODE, 2)]
    )
    c.hosts[1].propose_conf_change(cc)
    c.stabilize()
    assert all(c.nodes[n].membership.voters == (3, 4, 5) for n in (3, 4, 5))
    assert not c.nodes[3].membership.is_joint()
    assert c.nodes[1].role != LEADER
    with pytest.raises(NotLeaderError):
        c.nodes[1].propose_conf_change(ConfChange([(CC_REMOVE_NODE, 3)]))
    c.tick(4 * c.nodes[3].config.election_tick, only=[3, 4, 5])
    lead = c.leader()
    assert lead in (3, 4, 5)
    c.propose(b"b=2")
    assert all(c.sms[n].data["b"] == "2" for n in (3, 4, 5))
    assert "b" not in c.sms[1].data and "b" not in c.sms[2].data
