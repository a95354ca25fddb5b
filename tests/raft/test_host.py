"""Host contract: the ordering rules of a Ready (persist, then send, then apply, then advance),
apply-exactly-once of committed entries only, proposal and read resolution, MemoryStorage.

Raft 5.1/Figure 2: currentTerm, votedFor and log[] are persisted before responding to RPCs;
Raft 5.3: only committed entries are applied, in log order.
"""

from haperf._native.raft import Config, HardState, RawNode
from haperf._native.raftmsg import MSG_VOTE, Entry, Message, SnapshotMeta
from haperf.errors import ProposalDroppedError
from haperf.raft.host import Host
from haperf.raft.storage import MemoryStorage
from tests.raft.network import KV, Cluster


class Journal(MemoryStorage):
    """A MemoryStorage that writes every call into a shared event journal."""

    def __init__(self, events: list[tuple[str, int]]) -> None:
        super().__init__()
        self.events = events

    def append(self, entries: list[Entry]) -> None:
        super().append(entries)
        self.events.append(("append", entries[-1].index))

    def set_hard_state(self, hard_state: HardState) -> None:
        old = self.hard_state
        super().set_hard_state(hard_state)
        # Only term and vote need to be durable before sending; the commit index can be
        # recomputed (Raft Figure 2 lists it as volatile state).
        durable = (old.term, old.vote) != (hard_state.term, hard_state.vote)
        self.events.append(("hard" if durable else "commit", hard_state.term))

    def sync(self) -> None:
        super().sync()
        self.events.append(("sync", 0))


class JournalKV(KV):
    def __init__(self, events: list[tuple[str, int]]) -> None:
        super().__init__()
        self.events = events

    def apply(self, index: int, data: bytes) -> object:
        self.events.append(("apply", index))
        return super().apply(index, data)


def _journaled_cluster() -> tuple[Cluster, list[tuple[str, int]]]:
    events: list[tuple[str, int]] = []
    c = Cluster([1, 2, 3])
    for i in c.ids:
        storage = Journal(events)
        node = RawNode(Config(i, c.ids), i)
        c.nodes[i] = node
        c.storages[i] = storage
        c.sms[i] = JournalKV(events)

        def send(msgs: list[Message], events: list[tuple[str, int]] = events) -> None:
            events.append(("send", len(msgs)))
            c.queue.extend(msgs)

        c.hosts[i] = Host(node, storage, send, c.sms[i])
    return c, events


def test_persist_and_sync_before_send_then_apply() -> None:
    """Raft 5.1 / Figure 2: state is durable before any message leaves; committed entries are
    applied only after that. Checked on every Ready of a whole run."""
    c, events = _journaled_cluster()
    c.elect(1)
    for k in range(5):
        c.propose(f"k{k}=v".encode())
    c.tick(3)
    # Every log append or term/vote change is followed by a sync before the next send.
    pending_write = False
    for kind, _ in events:
        if kind in ("append", "hard"):
            pending_write = True
        elif kind == "sync":
            pending_write = False
        elif kind == "send":
            assert not pending_write, f"a message left before sync: {events}"
    kinds = [kind for kind, _ in events]
    assert "apply" in kinds and "append" in kinds and "sync" in kinds


def test_a_vote_is_synced_before_the_vote_response_is_sent() -> None:
    """Raft 5.2 / Figure 2: votedFor must be durable before the vote is granted."""
    events: list[tuple[str, int]] = []
    storage = Journal(events)
    node = RawNode(Config(1, [1, 2, 3], pre_vote=False), 1)
    host = Host(node, storage, lambda msgs: events.append(("send", len(msgs))), KV())
    node.step(Message(MSG_VOTE, to=1, frm=2, term=3, index=0, log_term=0))
    assert host.process_ready()
    assert events == [("hard", 3), ("sync", 0), ("send", 1)]
    assert storage.hard_state == HardState(3, 2, 0)


def test_only_committed_entries_are_applied_exactly_once_in_order() -> None:
    """Raft 5.3 / State Machine Safety: apply committed entries once each, in index order."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(2)
    c.isolate(3)
    c.hosts[1].propose(b"u=1")
    c.stabilize()
    assert c.applied_data(1) == []  # not committed: no majority
    c.heal()
    c.tick(2)
    for i in c.ids:
        indexes = [index for index, _ in c.sms[i].log]
        assert indexes == sorted(set(indexes))
        assert all(index <= c.nodes[i].commit for index in indexes)
    assert c.applied_data(2) == [b"u=1"]


def test_proposal_resolves_with_the_apply_result() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    proposal = c.hosts[1].propose(b"a=1")
    assert proposal is not None and not proposal.done
    c.stabilize()
    assert proposal.done and proposal.result == proposal.index and proposal.error is None


def test_overwritten_proposal_resolves_as_dropped() -> None:
    """Raft 5.3: an uncommitted entry of a deposed leader is replaced; its client learns that."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    proposal = c.hosts[1].propose(b"lost=1")
    assert proposal is not None
    c.stabilize()
    c.tick(40, only=[2, 3])
    lead = c.leader()
    for k in range(3):
        c.propose(f"n{k}=1".encode(), lead)
    c.heal()
    c.tick(3)
    assert proposal.done and isinstance(proposal.error, ProposalDroppedError)


def test_restart_reapplies_from_storage() -> None:
    """Raft 5.1: after a crash the node rebuilds from its persisted log and hard state."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(4):
        c.propose(f"k{k}=v".encode())
    c.tick(2)
    before = c.applied_data(2)
    c.restart(2)
    c.stabilize()
    assert c.applied_data(2) == before
    c.propose(b"after=1")
    assert c.applied_data(2) == [*before, b"after=1"]


def test_memory_storage_truncates_a_conflicting_tail() -> None:
    s = MemoryStorage()
    s.append([Entry(1, 1, b"a"), Entry(1, 2, b"b"), Entry(1, 3, b"c")])
    s.append([Entry(2, 2, b"B")])
    assert [(e.index, e.term) for e in s.entries] == [(1, 1), (2, 2)]


def test_memory_storage_snapshot_keeps_a_matching_suffix_only() -> None:
    s = MemoryStorage()
    s.append([Entry(1, 1, b"a"), Entry(1, 2, b"b"), Entry(1, 3, b"c")])
    s.install_snapshot(SnapshotMeta(2, 1), b"snap")
    assert [e.index for e in s.entries] == [3] and s.snap_index == 2
    s.install_snapshot(SnapshotMeta(5, 4), b"snap2")
    assert s.entries == [] and s.snap_index == 5 and s.hard_state.commit == 5
    _hard, snap, entries = s.initial_state()
    assert snap is not None and snap[0].index == 5 and entries == []


def test_restart_clamps_a_commit_beyond_the_surviving_log() -> None:
    """Raft Figure 2: commitIndex is volatile. If a crash kept a hard state whose commit came
    with entries that were never synced (so never acknowledged), the node restarts with commit
    at its last surviving entry instead of refusing to start."""
    entries = [Entry(1, 1, b""), Entry(1, 2, b"a=1"), Entry(1, 3, b"b=2")]
    node = RawNode(Config(3, [1, 2, 3]), 3, hard_state=HardState(1, 1, 5), entries=entries)
    assert node.commit == 3 and node.term == 1 and node.vote == 1
    rd = node.ready()
    assert [e.index for e in rd.committed_entries] == [1, 2, 3]


def test_compaction_is_made_durable() -> None:
    """Thesis 5.1: the snapshot replaces log entries, so it is synced like them."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    storage = c.storages[1]
    syncs = storage.syncs
    c.hosts[1].compact()
    assert storage.snapshot is not None and storage.syncs == syncs + 1


def test_memoryview_payloads_from_a_zero_copy_decoder() -> None:
    """Entries and snapshot chunks may arrive as memoryviews into received frames: the core,
    the host and the storage handle them like bytes (commands, conf changes, snapshots)."""
    from haperf._native.confchange import CC_ADD_LEARNER, ConfChange

    c = Cluster([1, 2, 3], snapshot_chunk_bytes=16)
    c.views = True
    c.elect(1)
    c.propose(b"a=1")
    proposal = c.hosts[1].propose_conf_change(ConfChange([(CC_ADD_LEARNER, 4)]))
    c.add(4, voters=c.ids)
    c.stabilize()
    assert proposal.done and c.nodes[2].membership.learners == (4,)
    c.isolate(3)
    c.propose(b"b=2")
    c.hosts[1].compact()
    c.heal()
    c.tick(3)
    for node in (2, 3, 4):
        assert c.sms[node].data == {"a": "1", "b": "2"}, node
    assert any(isinstance(e.data, memoryview) for e in c.nodes[2].log.entries)
