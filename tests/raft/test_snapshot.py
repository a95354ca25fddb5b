"""Snapshots and log compaction (thesis 5.1-5.3; Raft paper section 7): the application
snapshots, the log is compacted, and a follower that needs compacted entries receives the
snapshot by InstallSnapshot in chunks, installs it, and continues from the log after it.
"""

import pytest

from haperf._native.raftmsg import MSG_APP_RESP, MSG_SNAP, MSG_SNAP_RESP, Message, SnapshotMeta
from haperf.errors import ConfigError
from tests.raft.network import Cluster


def _lagging_cluster(**config: object) -> Cluster:
    c = Cluster([1, 2, 3], **config)
    c.elect(1)
    c.isolate(3)
    for k in range(20):
        c.propose(f"k{k}=v{k}".encode())
    c.hosts[1].compact()
    assert c.nodes[1].log.snap_index == c.nodes[1].applied
    return c


def test_a_lagging_follower_receives_the_snapshot_in_chunks() -> None:
    """Thesis 5.2 / Raft 7: entries a follower needs were discarded, so the leader sends its
    snapshot; chunks of at most snapshot_chunk_bytes, each acknowledged."""
    c = _lagging_cluster(snapshot_chunk_bytes=32)
    data = c.storages[1].snapshot
    assert data is not None
    size = len(data[1])
    c.record = True
    c.heal()
    c.tick(3)
    chunks = [m for m in c.delivered if m.type == MSG_SNAP and m.to == 3]
    assert len(chunks) == -(-size // 32)
    assert all(len(bytes(m.snap_data)) <= 32 for m in chunks) and chunks[-1].snap_done
    assert [m.snap_offset for m in chunks] == list(range(0, size, 32))
    acks = [m for m in c.delivered if m.type == MSG_SNAP_RESP and m.frm == 3]
    assert len(acks) == len(chunks) - 1
    assert c.sms[3].data == c.sms[1].data
    assert c.nodes[3].log.snap_index == c.nodes[1].log.snap_index
    c.propose(b"after=1")
    assert c.sms[3].data["after"] == "1"


def test_lost_chunks_are_sent_again() -> None:
    """Thesis 5.3: the transfer survives lost chunks (the follower says which offset it
    expects; heartbeats trigger a retransmission)."""
    c = _lagging_cluster(snapshot_chunk_bytes=16)
    dropped: list[int] = []

    def drop_second_chunk_once(m: Message) -> bool:
        if m.type == MSG_SNAP and m.snap_offset == 16 and not dropped:
            dropped.append(m.snap_offset)
            return True
        return False

    c.drop_filter = drop_second_chunk_once
    c.heal()
    c.tick(4)
    assert dropped == [16]
    assert c.sms[3].data == c.sms[1].data


def test_installed_snapshot_is_persisted_and_survives_restart() -> None:
    """Thesis 5.2: the follower persists the snapshot before acknowledging; after a crash it
    restarts from it."""
    c = _lagging_cluster()
    c.heal()
    c.tick(2)
    storage = c.storages[3]
    assert storage.snapshot is not None and storage.snapshot[0].index == c.nodes[1].log.snap_index
    before = dict(c.sms[3].data)
    c.restart(3)
    c.stabilize()
    assert c.sms[3].data == before
    c.propose(b"z=9")
    assert c.sms[3].data["z"] == "9"


def test_leader_restarts_from_its_own_snapshot_and_log() -> None:
    """Thesis 5.1: a node restarts from its latest snapshot plus the log after it."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(5):
        c.propose(f"k{k}=v".encode())
    c.hosts[1].compact()
    c.propose(b"tail=1")
    c.restart(1)
    c.stabilize()
    assert c.sms[1].data["tail"] == "1" and c.sms[1].data["k4"] == "v"
    assert c.nodes[1].log.snap_index > 0


def test_snapshot_meta_records_the_membership() -> None:
    """Thesis 5.1: a snapshot carries the latest configuration as of its last index."""
    c = Cluster([1, 2, 3], learners=[4])
    c.elect(1)
    c.propose(b"a=1")
    meta = c.nodes[1].compact(c.nodes[1].applied, b"state")
    assert meta.conf.voters == (1, 2, 3) and meta.conf.learners == (4,)
    assert meta.index == c.nodes[1].applied and meta.term == c.nodes[1].term


def test_compact_only_at_the_applied_index() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    with pytest.raises(ConfigError):
        c.nodes[1].compact(c.nodes[1].applied - 1, b"x")


def test_a_stale_snapshot_is_answered_with_the_commit_index() -> None:
    """Thesis 5.2: a snapshot covering only what the follower already committed is ignored."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(b"a=1")
    follower = c.nodes[2]
    commit = follower.commit
    follower.step(
        Message(
            MSG_SNAP,
            to=2,
            frm=1,
            term=follower.term,
            snapshot=SnapshotMeta(1, 1),
            snap_offset=0,
            snap_data=b"old",
            snap_done=True,
        )
    )
    (resp,) = follower.ready().messages
    assert resp.type == MSG_APP_RESP and resp.index == commit
    assert follower.log.snap_index == 0
