"""Acknowledgement modes and run-time membership of RaftNode (virtual time, in-process net).

ack="all" waits for every healthy voter (heard from within healthy_ns) to hold the entry and
stops waiting for one that went silent; ack="leader" acknowledges after the leader's own fsync
even when no follower has the entry. Membership: learner first then voter (thesis 4.2.1), a
snapshot for a node added after compaction, removal (of the leader too, thesis 4.2.2) and
leadership transfer (thesis 3.10).
"""

import asyncio

import pytest

from haperf._native.raftmsg import MSG_APP
from haperf.errors import ConfigError, NotLeaderError
from tests.raft_node.harness import Cluster, run, wait_for


def test_ack_all_waits_for_a_stalled_but_healthy_follower() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        f = next(i for i in c.nodes if i != lead)
        node = c.nodes[lead]
        await node.propose(b"warm=1", ack="all")
        c.net.drop = lambda m: m.type == MSG_APP and m.to == f  # heartbeats still flow
        quorum = asyncio.ensure_future(node.propose(b"q=1"))
        everyone = asyncio.ensure_future(node.propose(b"a=1", ack="all"))
        await quorum
        await asyncio.sleep(1.0)  # many heartbeats: f stays healthy, and lacks the entry
        assert not everyone.done()
        st = node.status()
        assert st["peers"][str(f)]["lag_entries"] >= 2
        assert st["peers"][str(f)]["lag_seconds"] > 0
        c.net.drop = None
        assert await everyone > 0
        assert node.status()["counters"]["ack_all"] >= 2
        await c.stop_all()

    run(body)


def test_ack_all_stops_waiting_for_a_dead_follower() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        f = next(i for i in c.nodes if i != lead)
        await c.stop(f)
        # Not heard from within healthy_ns (one election timeout): no longer waited for.
        assert await c.nodes[lead].propose(b"a=1", ack="all") > 0
        await c.stop_all()

    run(body)


def test_ack_leader_returns_before_any_follower_has_the_entry() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), ack="leader")
        await c.start_all()
        lead = await c.wait_leader()
        node = c.nodes[lead]
        c.net.isolate(lead, c.members)
        assert await node.propose(b"x=1") is None  # node default: ack="leader"
        quorum = asyncio.ensure_future(node.propose(b"y=1", ack="quorum"))
        await asyncio.sleep(0.05)
        assert not quorum.done()
        others = [i for i in c.nodes if i != lead]
        assert all("x" not in c.machines[i].data for i in others)
        c.net.heal()
        await quorum
        await c.wait_applied(node.status()["commit"])
        assert all(c.machines[i].data.get("x") == "1" for i in c.nodes)
        counters = node.status()["counters"]
        assert counters["ack_leader"] >= 1 and counters["ack_leader_window_count"] >= 1
        await c.stop_all()

    run(body)


def test_add_voter_via_learner_with_a_snapshot_then_remove() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop(), snapshot_entries=16)
        await c.start_all()
        lead = await c.wait_leader()
        for k in range(60):
            await c.nodes[lead].propose(f"k{k}={k}".encode())
        assert c.nodes[lead].status()["snapshot_index"] > 0
        new = await c.start(4, join=True, listen="node4:7000")
        await c.nodes[lead].add_voter(4, "node4:7000", {"resp": "resp4:6379"})
        st = c.nodes[lead].status()
        assert 4 in st["voters"] and st["peers"]["4"]["address"] == "node4:7000"
        await c.wait_applied(st["commit"])
        assert c.machines[4].data == c.machines[lead].data
        assert new.status()["counters"]["snapshots_installed"] >= 1
        for i in c.nodes:
            assert c.nodes[i].member_metadata(4) == {"resp": "resp4:6379"}
        await c.nodes[lead].propose(b"with4=1")
        await c.nodes[lead].remove(4)
        assert 4 not in c.nodes[lead].status()["voters"]
        with pytest.raises(ConfigError):
            await c.nodes[lead].remove(4)
        await c.stop_all()

    run(body)


def test_add_learner_replicates_without_voting() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        await c.start(4, join=True, listen="node4:7000")
        await c.nodes[lead].add_learner(4, "node4:7000")
        await c.nodes[lead].propose(b"l=1")
        await c.wait_applied(c.nodes[lead].status()["commit"], [4])
        st = c.nodes[lead].status()
        assert st["learners"] == [4] and 4 not in st["voters"]
        assert c.machines[4].data["l"] == "1"
        await c.stop_all()

    run(body)


def test_transfer_leadership_and_removing_the_leader() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        to = next(i for i in c.nodes if i != lead)
        await c.nodes[lead].transfer_leadership(to)
        assert await c.wait_leader() == to
        await c.nodes[lead].transfer_leadership(to)  # already done: returns at once
        third = next(i for i in c.nodes if i not in (lead, to))
        with pytest.raises(NotLeaderError) as info:
            await c.nodes[lead].transfer_leadership(third)  # only the leader transfers
        assert info.value.leader_id == to
        await c.nodes[to].propose(b"t=1")
        # Thesis 4.2.2: the leader removes itself, hands over, and the rest go on.
        await c.nodes[to].remove(to)
        rest = [i for i in c.nodes if i != to]
        new = await wait_for(lambda: next((i for i in rest if c.nodes[i].is_leader), 0))
        assert await c.nodes[new].propose(b"after=1") > 0
        assert to not in c.nodes[new].status()["voters"]
        await c.stop_all()

    run(body)


def test_graceful_stop_with_transfer_hands_leadership_over() -> None:
    async def body() -> None:
        c = Cluster(asyncio.get_running_loop())
        await c.start_all()
        lead = await c.wait_leader()
        await c.nodes[lead].propose(b"a=1")
        node = c.nodes.pop(lead)
        await node.stop(transfer=True)
        new = await c.wait_leader()
        assert new != lead
        assert await c.nodes[new].read("a") == "1"
        await c.stop_all()

    run(body)


def test_leader_sends_before_its_fsync_only_when_a_follower_must_acknowledge() -> None:
    """Thesis 10.2.1 is used on a 3-voter leader; a one-voter leader with a learner commits by
    itself, so it must not tell the learner a commit index before its own fsync."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        c = Cluster(loop)
        await c.start_all()
        lead = await c.wait_leader()
        before = c.nodes[lead].status()["counters"]["early_sends"]
        await c.nodes[lead].propose(b"a=1")
        assert c.nodes[lead].status()["counters"]["early_sends"] > before
        await c.stop_all()

        solo = Cluster(loop, n=1)
        node = await solo.start(1)
        await wait_for(lambda: node.is_leader)
        await solo.start(2, join=True, listen="node2:7000")
        await node.add_learner(2, "node2:7000")
        before = node.status()["counters"]["early_sends"]
        for k in range(5):
            await node.propose(f"s{k}=1".encode())
        assert node.status()["counters"]["early_sends"] == before
        await solo.wait_applied(node.status()["commit"])
        assert solo.machines[2].data == solo.machines[1].data
        await solo.stop_all()

    run(body)
