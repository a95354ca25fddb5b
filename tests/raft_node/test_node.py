"""RaftNode on a virtual-time loop over an in-process network (tests/raft_node/harness.py).

Covers election, replication, leader redirects, leader loss without losing acknowledged writes,
restart from storage, snapshots to a lagging node, linearizable reads across a leader change,
and the error types of stop() and timeouts. No assertion depends on wall-clock time.
"""

import asyncio
import contextlib
import threading

import pytest

from haperf._native.raftmsg import MSG_APP
from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedError,
)
from haperf.raft import NodeConfig
from haperf.raft.node import INTERNAL_PREFIX
from haperf.raft.storage import MemoryStorage
from tests.raft_node.harness import Cluster, run, run_real_time, wait_for


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        NodeConfig(4, {1: "a:1", 2: "b:1"})
    with pytest.raises(ConfigError):
        NodeConfig(1, {1: "a:1"}, ack="some")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        NodeConfig(1, {1: "a:1"}, heartbeat_ticks=5, election_ticks=5)
    with pytest.raises(ConfigError):
        NodeConfig(4, {1: "a:1"}, join=True)  # a joining node needs its listen address


def test_election_replication_and_metadata() -> None:
    """Raft 5.2/5.3: one leader is elected; every node applies the same commands in order;
    member metadata is replicated (internal entries never reach the state machine)."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        assert await node.propose(b"a=1") > 0
        results = await node.propose_many([b"b=2", b"c=3"])
        assert results[1] == results[0] + 1
        await c.wait_applied(node.status()["commit"])
        logs = [[d for _, d in c.machines[i].applied] for i in c.nodes]
        assert logs[0] == logs[1] == logs[2] == [b"a=1", b"b=2", b"c=3"]
        assert not any(d.startswith(INTERNAL_PREFIX) for log in logs for d in log)
        for i in c.nodes:
            for j in c.members:
                assert c.nodes[i].member_metadata(j) == {"resp": f"resp{j}:6379"}
        assert await node.read("b") == "2"
        st = node.status()
        assert st["role"] == "leader" and st["peers"]["1" if lead != 1 else "2"]["lag_entries"] == 0
        await c.stop_all()

    run(body)


def test_follower_raises_not_leader_naming_the_leader() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        follower = next(i for i in c.nodes if i != lead)
        with pytest.raises(NotLeaderError) as info:
            await c.nodes[follower].propose(b"x=1")
        assert info.value.leader_id == lead
        # Reads on a follower are linearizable too (ReadIndex asks the leader).
        await c.nodes[lead].propose(b"x=2")
        assert await c.nodes[follower].read("x") == "2"
        await c.stop_all()

    run(body)


def test_leader_stop_elects_a_new_leader_and_keeps_acknowledged_writes() -> None:
    """Raft 5.4 (leader completeness): every acknowledged write survives the leader's loss."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        acked = []
        for k in range(20):
            await c.nodes[lead].propose(f"k{k}=v{k}".encode())
            acked.append(k)
        await c.stop(lead)
        new = await c.wait_leader()
        assert new != lead
        await c.nodes[new].propose(b"after=1")
        for k in acked:
            assert await c.nodes[new].read(f"k{k}") == f"v{k}"
        # The old leader comes back from its storage and catches up.
        await c.start(lead)
        await c.wait_applied(c.nodes[new].status()["commit"])
        assert c.machines[lead].data == c.machines[new].data
        await c.stop_all()

    run(body)


def test_restarted_follower_catches_up_from_storage() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        f = next(i for i in c.nodes if i != lead)
        await c.nodes[lead].propose(b"before=1")
        await c.stop(f)
        for k in range(30):
            await c.nodes[lead].propose(f"gap{k}=1".encode())
        node = await c.start(f)
        await c.wait_applied(c.nodes[lead].status()["commit"], [f])
        assert c.machines[f].data == c.machines[lead].data
        assert node.status()["snapshot_index"] == 0
        await c.stop_all()

    run(body)


def test_lagging_follower_gets_a_snapshot() -> None:
    """Thesis 5: the leader compacts after snapshot_entries; a follower that needs compacted
    entries receives the snapshot (MSG_SNAP) and restores it, then continues from the log."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), snapshot_entries=16)
        await c.start_all()
        lead = await c.wait_leader()
        f = next(i for i in c.nodes if i != lead)
        await c.stop(f)
        for k in range(60):
            await c.nodes[lead].propose(f"s{k}={k}".encode())
        assert c.nodes[lead].status()["snapshot_index"] > 0
        await c.start(f)
        await c.wait_applied(c.nodes[lead].status()["commit"], [f])
        assert c.nodes[f].status()["counters"]["snapshots_installed"] >= 1
        assert c.machines[f].data == c.machines[lead].data
        for j in c.members:  # member records travel inside the snapshot
            assert c.nodes[f].member_metadata(j) == {"resp": f"resp{j}:6379"}
        await c.stop_all()

    run(body)


def test_barrier_after_leader_change_is_linearizable() -> None:
    """Thesis 6.4: a deposed leader cannot serve a read it cannot confirm; the new leader's
    barrier covers every write acknowledged before it."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        old = await c.wait_leader()
        await c.nodes[old].propose(b"x=old")
        c.net.isolate(old, c.members)
        stale = asyncio.ensure_future(c.nodes[old].read("x"))
        new = await c.wait_leader(exclude=[old])
        await c.nodes[new].propose(b"x=new")
        index = await c.nodes[new].barrier()
        assert index >= c.nodes[new].status()["commit"] - 1
        assert c.machines[new].data["x"] == "new"
        with pytest.raises((ProposalDroppedError, NotLeaderError)):
            await stale  # never answered with the stale value
        c.net.heal()
        await c.wait_leader()
        await c.stop_all()

    run(body)


def test_stop_fails_waiters_with_the_right_errors() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        await node.propose(b"ok=1")
        c.net.isolate(lead, c.members)
        appended = asyncio.ensure_future(node.propose(b"stuck=1"))
        reading = asyncio.ensure_future(node.barrier())
        await asyncio.sleep(0.005)
        await node.stop()
        await node.stop()  # idempotent
        with pytest.raises(CommitUnknownError):
            await appended
        with pytest.raises(NodeStoppedError):
            await reading
        with pytest.raises(NodeStoppedError):
            await node.propose(b"late=1")
        del c.nodes[lead]
        await c.stop_all()

    run(body)


def test_timeout_is_commit_unknown_and_pending_is_bounded() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), proposals_pending_max=4)
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        c.net.drop = lambda m: m.type == MSG_APP  # nothing new can commit
        waiting = [
            asyncio.ensure_future(node.propose(f"t{k}=1".encode(), timeout_ns=50_000_000))
            for k in range(4)
        ]
        await asyncio.sleep(0)
        with pytest.raises(ProposalDroppedError):
            await node.propose(b"fifth=1")  # over proposals_pending_max: refused at once
        for w in waiting:
            with pytest.raises(CommitUnknownError):
                await w
        c.net.drop = None
        await c.stop_all()

    run(body)


def test_reserved_prefix_and_empty_commands_are_refused() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        with pytest.raises(ConfigError):
            await c.nodes[lead].propose(INTERNAL_PREFIX + b"x")
        with pytest.raises(ConfigError):
            await c.nodes[lead].propose(b"")
        await c.stop_all()

    run(body)


def test_concurrent_proposals_share_appends() -> None:
    """Group commit: proposals made in the same loop iteration go out in one append."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        await wait_for(lambda: node.status()["applied"] >= 4)  # member records applied
        syncs = node.status()["counters"]["syncs"]
        results = await asyncio.gather(*(node.propose(f"g{k}=1".encode()) for k in range(200)))
        assert sorted(results) == list(range(results[0], results[0] + 200))
        assert node.status()["counters"]["syncs"] - syncs <= 3
        await c.stop_all()

    run(body)


def test_unsafe_local_reads_is_a_planted_bug_that_reads_stale_data() -> None:
    """The chaos harness's planted bug: without ReadIndex an isolated node answers stale."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), unsafe_local_reads=True)
        await c.start_all()
        lead = await c.wait_leader()
        await c.nodes[lead].propose(b"x=old")
        f = next(i for i in c.nodes if i != lead)
        await c.wait_applied(c.nodes[lead].status()["commit"], [f])
        c.net.isolate(f, c.members)
        await c.nodes[lead].propose(b"x=new")
        assert await c.nodes[f].read("x") == "old"  # stale: exactly the bug it plants
        await c.stop_all()

    run(body)


def test_lease_reads_serve_on_the_leader_and_expire_when_isolated() -> None:
    """Thesis 6.4.1: with lease_read the leader answers from its lease; an isolated leader's
    lease runs out (its ticks keep counting) and it stops answering."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), lease_read=True)
        await c.start_all()
        lead = await c.wait_leader()
        await c.nodes[lead].propose(b"x=1")
        assert await c.nodes[lead].read("x") == "1"
        c.net.isolate(lead, c.members)
        new = await c.wait_leader(exclude=[lead])
        await c.nodes[new].propose(b"x=2")
        with pytest.raises((ProposalDroppedError, NotLeaderError)):
            await c.nodes[lead].read("x", timeout_ns=2_000_000_000)
        assert await c.nodes[new].read("x") == "2"
        c.net.heal()
        await c.stop_all()

    run(body)


def test_concurrent_reads_share_one_read_index_round() -> None:
    """Thesis 6.4: one confirmed heartbeat round serves every read registered before it."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        await node.propose(b"r=1")
        before = node.status()["counters"]["read_rounds"]
        values = await asyncio.gather(*(node.read("r") for _ in range(100)))
        assert values == ["1"] * 100
        assert node.status()["counters"]["read_rounds"] - before == 1
        seen: list[tuple[str, int]] = []
        node.on_role_change(lambda role, leader: seen.append((role, leader)))
        await node.transfer_leadership(next(i for i in c.nodes if i != lead))
        assert seen and seen[-1][0] == "follower"
        await c.stop_all()

    run(body)


class _FailingStorage(MemoryStorage):
    """A MemoryStorage whose sync() raises once `failing` is set (a dying disk)."""

    failing = False

    def sync(self) -> None:
        if self.failing:
            raise OSError(5, "Input/output error (test)")
        super().sync()


def test_fsync_error_fails_the_node_stop() -> None:
    """An fsync error is never retried or reported as success: the node fails every waiter
    and refuses further requests until restarted from its storage."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        c = Cluster(loop)
        lead_storage = _FailingStorage()
        c.storages[1] = lead_storage
        await c.start_all()
        await c.nodes[1].campaign()
        assert await c.wait_leader() == 1
        await c.nodes[1].propose(b"a=1")
        lead_storage.failing = True
        handled: list[dict[str, object]] = []
        loop.set_exception_handler(lambda _loop, ctx: handled.append(ctx))
        with pytest.raises(CommitUnknownError):
            await c.nodes[1].propose(b"b=1")
        with pytest.raises(NodeStoppedError):
            await c.nodes[1].propose(b"c=1")
        assert c.nodes[1].status()["failed"] is not None and not c.nodes[1].is_leader
        assert any(isinstance(h.get("exception"), OSError) for h in handled)
        new = await c.wait_leader(exclude=[1])
        assert await c.nodes[new].read("a") == "1"
        await c.stop_all()

    run(body)


class _GatedStorage(MemoryStorage):
    """A MemoryStorage whose sync() (run on the node's sync thread) waits for a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def sync(self) -> None:
        if not self.gate.wait(30):
            raise OSError(5, "gate never opened (test)")
        super().sync()


def test_proposal_timing_out_while_buffered_is_never_appended() -> None:
    """While an fsync runs on the sync thread, proposals wait in the buffer; one that times
    out there fails with ProposalDroppedError (definitely not applied) and is never appended."""

    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        gated = _GatedStorage()
        c.storages[1] = gated
        for i in c.members:
            extra = {"data_dir": "unused", "sync_thread": True} if i == 1 else {}
            await c.start(i, **extra)
        await c.nodes[1].campaign()
        assert await c.wait_leader() == 1
        node = c.nodes[1]
        await node.propose(b"a=1")
        gated.gate.clear()
        blocked = asyncio.ensure_future(node.propose(b"b=1"))  # its fsync hangs
        await asyncio.sleep(0.01)
        with pytest.raises(ProposalDroppedError):
            await node.propose(b"never=1", timeout_ns=100_000_000)
        gated.gate.set()
        assert await blocked > 0
        await node.propose(b"c=1")
        await c.wait_applied(node.status()["commit"])
        assert all("never" not in c.machines[i].data for i in c.nodes)
        assert all(c.machines[i].data.get("c") == "1" for i in c.nodes)
        await c.stop_all()

    run_real_time(body)  # a real sync thread: virtual time would race ahead of it


def test_wait_leader_times_out_with_not_leader_error() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        node = await c.start(1)  # alone: 1 of 3 voters can never be elected
        with pytest.raises(NotLeaderError) as info:
            await node.wait_leader(500_000_000)
        assert info.value.leader_id == 0
        with pytest.raises(NotLeaderError):
            await node.barrier()
        await c.stop_all()

    run(body)


def test_a_read_with_a_short_timeout_is_not_held_behind_a_longer_one() -> None:
    """Reads with their own timeout_ns expire by deadline, not in arrival order: on an isolated
    leader (no ReadIndex round can complete) a 20 ms read queued behind a 10 s read fails at
    about 20 ms of loop time, well before the leader steps down (it waited for that before)."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        c = Cluster(loop)
        await c.start_all()
        lead = await c.wait_leader()
        await c.nodes[lead].propose(b"x=1")
        c.net.isolate(lead, c.members)
        long_read = asyncio.ensure_future(c.nodes[lead].read("x", timeout_ns=10_000_000_000))
        await asyncio.sleep(0)
        start = loop.time()
        with pytest.raises(ProposalDroppedError, match="timed out"):
            await c.nodes[lead].read("x", timeout_ns=20_000_000)
        assert loop.time() - start < 0.1  # virtual seconds; the election timeout is 0.15-0.3
        with pytest.raises(ConfigError):
            await c.nodes[lead].read("x", timeout_ns=0)
        c.net.heal()
        with contextlib.suppress(ProposalDroppedError, NotLeaderError):
            await long_read
        await c.stop_all()

    run(body)
