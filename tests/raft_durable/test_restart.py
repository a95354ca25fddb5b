"""Restarting real Raft nodes (RawNode + Host) from DiskStorage.

A single node and a 3-node in-process cluster (tests/raft/network.py) persist through
DiskStorage; nodes are stopped (storage closed) and rebuilt from initial_state() of a freshly
opened DiskStorage, with snapshots taken by Host.compact() in between. Raft 5.1/Figure 2: term,
vote and log survive a restart; every committed command is still applied afterwards.
"""

from pathlib import Path

from haperf._native.raft import LEADER, Config, RawNode
from haperf.raft.durable import DiskStorage
from haperf.raft.host import Host
from tests.raft.network import KV, Cluster
from tests.raft_durable.helpers import open_small


def drain(host: Host) -> None:
    while host.process_ready():
        pass


def start(directory: Path, seed: int) -> tuple[DiskStorage, RawNode, Host, KV]:
    disk = open_small(directory)
    hard_state, snapshot, entries = disk.initial_state()
    sm = KV()
    if snapshot is not None:
        sm.restore(snapshot[1])
    node = RawNode(
        Config(1, (1,)), seed, hard_state=hard_state, snapshot=snapshot, entries=entries
    )
    host = Host(node, disk, lambda msgs: None, sm)
    drain(host)
    node.campaign()
    drain(host)
    assert node.role == LEADER
    return disk, node, host, sm


def test_single_node_restarts_with_its_log_snapshot_and_term(tmp_path: Path) -> None:
    expected: dict[str, str] = {}
    terms = []
    for life in range(4):
        disk, node, host, sm = start(tmp_path / "n1", seed=life + 1)
        # Everything committed in earlier lives is applied again (log replay after the snapshot).
        assert sm.data == expected
        terms.append(node.term)
        for k in range(30):
            proposal = host.propose(f"k{k % 7}=v{life}.{k}".encode())
            assert proposal is not None
            drain(host)
            assert proposal.done and proposal.error is None
            expected[f"k{k % 7}"] = f"v{life}.{k}"
            if k == 20 and life % 2:
                host.compact()
        assert disk.last_index == node.last_index
        disk.close()
    # Raft 5.1: the term never goes back across restarts (it was durable when voted).
    assert terms == sorted(set(terms))


def test_cluster_nodes_restart_from_disk_and_catch_up(tmp_path: Path) -> None:
    c = Cluster([1, 2, 3], seed=7)
    disks: dict[int, DiskStorage] = {}

    def attach(i: int) -> None:
        disks[i] = open_small(tmp_path / f"n{i}", fsync=False)
        c.storages[i] = disks[i]  # type: ignore[assignment]

    for i in c.ids:
        attach(i)
        c.hosts[i] = Host(c.nodes[i], disks[i], c.queue.extend, c.sms[i])
    c.elect(1)
    for k in range(20):
        c.propose(f"a{k}=1".encode())
    # A follower crashes, misses writes and a snapshot+compaction, restarts from its disk.
    c.down.add(3)
    disks[3].close()
    for k in range(20):
        c.propose(f"b{k}=2".encode())
    c.hosts[1].compact()
    c.propose(b"c=3")
    attach(3)
    c.restart(3)
    c.down.discard(3)
    c.tick(3)
    c.propose(b"d=4")
    # It missed entries the leader had compacted away: it caught up through a snapshot.
    assert disks[3].snapshot is not None
    want = {**{f"a{k}": "1" for k in range(20)}, **{f"b{k}": "2" for k in range(20)}}
    want.update(c="3", d="4")
    for i in c.ids:
        assert c.sms[i].data == want, i
    # Whole-cluster restart: every node from its own directory; nothing committed is lost.
    for i in c.ids:
        disks[i].close()
        attach(i)
        c.restart(i)
    c.process()
    # close() wrote the commit index too, so each node re-applies everything on its own.
    for i in c.ids:
        assert c.sms[i].data == want, i
    c.tick(40)
    assert c.leader() != 0
    c.propose(b"e=5")
    want["e"] = "5"
    for i in c.ids:
        assert c.sms[i].data == want, i
    for i in c.ids:
        disks[i].close()
