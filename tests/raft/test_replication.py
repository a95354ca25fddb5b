"""Log replication: Raft 5.3 (AppendEntries, consistency check, overwriting conflicts), 5.4.2
(commit only current-term entries by counting), thesis 3.5 (fast backtracking hints, pipelining
and flow control), batching, and proposal forwarding (thesis 6.2 "clients contact the leader").
"""

import pytest

from haperf._native.raft import LEADER, Config, HardState, RawNode
from haperf._native.raftmsg import (
    MSG_APP,
    MSG_APP_RESP,
    MSG_PROP,
    MSG_SNAP,
    MSG_VOTE_RESP,
    Entry,
    Message,
)
from haperf._native.tracker import PROBE, REPLICATE
from haperf.errors import ConfigError, NotLeaderError, ProposalDroppedError
from tests.raft.network import Cluster


def _entries(node: RawNode) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in node.log.entries]


def test_an_entry_commits_once_a_majority_stores_it() -> None:
    """Raft 5.3: an entry is committed once the leader has replicated it on a majority."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    index = c.propose(b"a=1")
    assert c.nodes[1].commit == index and c.nodes[2].commit == index
    assert c.applied_data(1) == [b"a=1"]
    c.isolate(2)
    index2 = c.propose(b"b=2")
    assert c.nodes[1].commit == index < index2


def test_only_current_term_entries_commit_by_counting_replicas() -> None:
    """Raft 5.4.2 (Figure 8): a leader never commits an entry from an earlier term by counting
    replicas; it commits it only together with an entry of its own term."""
    old = [Entry(1, 1, b"a"), Entry(2, 2, b"b")]
    n = RawNode(Config(1, [1, 2, 3], pre_vote=False), 1, hard_state=HardState(3, 0, 0), entries=old)
    n.campaign()
    n.step(Message(MSG_VOTE_RESP, to=1, frm=2, term=4))
    assert n.role == LEADER and n.last_index == 3
    n.ready()
    n.step(Message(MSG_APP_RESP, to=1, frm=2, term=4, index=2))
    assert n.commit == 0  # index 2 is on a majority but has term 2 != 4
    n.step(Message(MSG_APP_RESP, to=1, frm=2, term=4, index=3))
    assert n.commit == 3  # the no-op of term 4 commits, and index 2 with it


def test_conflicting_uncommitted_entries_are_overwritten() -> None:
    """Raft 5.3: when a follower's log conflicts with the leader's, the conflicting entries and
    all that follow are deleted and replaced; Log Matching holds afterwards."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(1)
    for i in range(3):
        c.hosts[1].propose(f"lost{i}".encode())
    c.stabilize()
    committed = c.nodes[1].commit
    c.tick(40, only=[2, 3])
    new_leader = c.leader()
    assert new_leader in (2, 3)
    c.propose(b"b=2", new_leader)
    c.heal()
    c.tick(3)
    assert _entries(c.nodes[1]) == _entries(c.nodes[new_leader]) == _entries(c.nodes[2])
    assert [(e.index, e.term) for e in c.storages[1].entries] == _entries(c.nodes[new_leader])
    assert b"lost0" not in c.applied_data(1) and c.nodes[1].commit > committed
    assert c.applied_data(1) == c.applied_data(new_leader)


def test_fast_backtracking_skips_a_whole_term_per_round_trip() -> None:
    """Thesis 3.5: with the conflict hint (term and first index) the leader finds the match
    point in O(terms) round trips, not O(entries)."""
    c = Cluster([1, 2, 3], msg_bytes_max=1)
    c.elect(1)
    c.propose(b"a=1")
    c.isolate(1)
    for i in range(60):
        c.hosts[1].propose(f"x{i}".encode())
    c.stabilize()
    c.tick(40, only=[2, 3])
    lead = c.leader()
    for i in range(30):
        c.propose(f"y{i}".encode(), lead)
    # A third term whose leader starts probing node 1 far beyond the divergence point.
    other = 5 - lead
    c.nodes[lead].transfer_leader(other)
    c.stabilize()
    lead = c.leader()
    assert lead == other
    c.record = True
    c.heal()
    c.tick(3)
    rejects = [m for m in c.delivered if m.type == MSG_APP_RESP and m.frm == 1 and m.reject]
    # Without the hint this would take one round trip per diverging entry (about 30).
    assert 1 <= len(rejects) <= 2
    assert _entries(c.nodes[1]) == _entries(c.nodes[lead])


def test_pipelining_sends_several_appends_before_any_ack() -> None:
    """Thesis 3.5 (pipelining): in REPLICATE state the leader sends the next AppendEntries
    without waiting for the previous one's response."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"warm")
    assert c.nodes[1].progress(2).state == REPLICATE
    c.cut.add((2, 1))
    c.record = True
    for i in range(5):
        c.hosts[1].propose(f"p{i}".encode())
        c.stabilize()
    apps = [m for m in c.delivered if m.type == MSG_APP and m.to == 2 and m.entries]
    assert len(apps) == 5


def test_flow_control_bounds_in_flight_appends() -> None:
    """Thesis 3.5 flow control: at most inflight_msgs_max un-acknowledged AppendEntries with
    entries go to one follower; the rest wait for acknowledgements."""
    c = Cluster([1, 2, 3], inflight_msgs_max=2)
    c.elect(1)
    c.propose(b"warm")
    c.cut.add((2, 1))
    c.record = True
    for i in range(6):
        c.hosts[1].propose(f"p{i}".encode())
        c.stabilize()
    apps = [m for m in c.delivered if m.type == MSG_APP and m.to == 2 and m.entries]
    assert len(apps) == 2
    assert c.nodes[1].progress(2).inflights.count == 2
    c.heal()
    c.tick(2)
    assert _entries(c.nodes[2]) == _entries(c.nodes[1])


def test_probe_state_sends_one_append_until_it_hears_back() -> None:
    """Thesis 3.5: until the follower's match index is known the leader probes with one
    AppendEntries at a time."""
    c = Cluster([1, 2, 3])
    c.cut.add((3, 1))
    c.elect(1)
    assert c.nodes[1].progress(3).state == PROBE
    c.record = True
    for i in range(4):
        c.hosts[1].propose(f"p{i}".encode())
        c.stabilize()
    assert not [m for m in c.delivered if m.type == MSG_APP and m.to == 3 and m.entries]
    c.heal()
    c.tick(2)
    assert c.nodes[1].progress(3).state == REPLICATE
    assert _entries(c.nodes[3]) == _entries(c.nodes[1])


def test_a_batch_goes_out_as_one_append_per_follower() -> None:
    """Batching: propose_batch appends all commands at once; each follower gets one message."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"warm")
    c.record = True
    proposals = c.hosts[1].propose_batch([f"k{i}=v".encode() for i in range(100)])
    c.stabilize()
    apps = [m for m in c.delivered if m.type == MSG_APP and m.entries]
    assert sorted(m.to for m in apps) == [2, 3] and all(len(m.entries) == 100 for m in apps)
    assert all(p.done and p.error is None for p in proposals)
    assert len(c.applied_data(3)) == 101


def test_msg_bytes_max_splits_large_appends() -> None:
    """Flow control by size: one AppendEntries carries at most msg_bytes_max of entry data
    (but always at least one entry)."""
    c = Cluster([1, 2, 3], msg_bytes_max=10)
    c.elect(1)
    c.propose(b"warm")
    c.record = True
    c.hosts[1].propose_batch([b"0123456"] * 4)
    c.stabilize()
    apps = [m for m in c.delivered if m.type == MSG_APP and m.to == 2 and m.entries]
    assert [len(m.entries) for m in apps] == [1, 1, 1, 1]


def test_follower_forwards_proposals_to_the_leader() -> None:
    """Raft 8 / thesis 6.2: clients may contact any server; a follower forwards to the leader."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.record = True
    assert c.hosts[2].propose(b"via=2") is None
    c.stabilize()
    assert any(m.type == MSG_PROP and m.frm == 2 and m.to == 1 for m in c.delivered)
    assert c.applied_data(1)[-1] == b"via=2" == c.applied_data(2)[-1]


def test_not_leader_error_names_the_leader() -> None:
    """Thesis 6.2: a follower that does not forward tells the client who the leader is."""
    c = Cluster([1, 2, 3], forward_proposals=False)
    c.elect(1)
    with pytest.raises(NotLeaderError) as info:
        c.nodes[2].propose(b"x")
    assert info.value.leader_id == 1 and "leader is node 1" in str(info.value)
    fresh = RawNode(Config(5, [5, 6, 7]), 1)
    with pytest.raises(NotLeaderError) as info:
        fresh.propose(b"x")
    assert info.value.leader_id == 0 and "unknown" in str(info.value)


def test_empty_commands_are_refused() -> None:
    """Empty entries are reserved for the leader's no-op (Raft 5.4.2): commands are non-empty."""
    c = Cluster([1])
    c.elect(1)
    with pytest.raises(ConfigError):
        c.nodes[1].propose(b"")


def test_heartbeat_never_commits_past_the_followers_match() -> None:
    """Raft 5.3: a follower learns the commit index, bounded by what it is known to hold."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.cut.add((1, 3))
    c.propose(b"a=1")
    c.record = True
    c.heal()
    c.cut.add((1, 3))
    c.tick(1)
    c.heal()
    c.tick(2)
    assert c.nodes[3].commit == c.nodes[1].commit
    assert c.applied_data(3) == c.applied_data(1)


def test_report_unreachable_stops_pipelining() -> None:
    """Thesis 3.5: when the transport says a follower is unreachable, the leader stops sending
    optimistically (back to probing one message at a time)."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    progress = c.nodes[1].progress(2)
    assert progress is not None and progress.state == REPLICATE
    c.nodes[1].report_unreachable(2)
    assert progress.state == PROBE
    c.propose(b"b=2")  # the next acknowledged append switches back to pipelining
    assert progress.state == REPLICATE


def test_report_snapshot_resumes_probing_after_an_external_transfer() -> None:
    """Thesis 5.3: after a snapshot transfer ends (ok or failed) the leader probes again."""
    c = Cluster([1, 2, 3])
    c.isolate(3)
    c.elect(1)
    for k in range(5):
        c.propose(f"k{k}=v".encode())
    c.hosts[1].compact()
    c.heal()
    c.drop_filter = lambda m: m.type == MSG_SNAP  # the transfer never completes
    c.tick(1)
    progress = c.nodes[1].progress(3)
    assert progress is not None and progress.state_name == "snapshot"
    c.nodes[1].report_snapshot(3, False)
    assert progress.state == PROBE
    c.drop_filter = None
    c.tick(3)
    assert c.sms[3].data == c.sms[1].data


def test_uncommitted_proposals_are_bounded() -> None:
    """Every queue has a named maximum: a leader that cannot commit (no quorum) refuses new
    commands beyond uncommitted_entries_max instead of growing its log without bound."""
    c = Cluster([1, 2, 3], uncommitted_entries_max=3)
    c.elect(1)
    c.isolate(1)
    for k in range(3):
        c.nodes[1].propose(f"k{k}".encode())
    with pytest.raises(ProposalDroppedError, match="uncommitted_entries_max"):
        c.nodes[1].propose(b"one-too-many")
    c.heal()
    c.tick(2)
    assert c.propose(b"after=1") > 0
