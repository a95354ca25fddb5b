"""Randomized fault test of the node shell (virtual time, seeded): clients propose while a
nemesis isolates, heals, stops and restarts nodes; afterwards every acknowledged write is in
every node's applied log at the index it was acknowledged with, and all applied logs agree
(Raft 5.4: state machine safety; no acknowledged write lost).
"""

import asyncio
import random

import pytest

from haperf.errors import (
    CommitUnknownError,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedError,
)
from tests.raft_node.harness import Cluster, run

CLIENTS = 4
NEMESIS_STEPS = 12


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_writes_survive_faults(seed: int) -> None:
    print(f"seed={seed}")

    async def body() -> None:
        rng = random.Random(seed)
        c = Cluster(asyncio.get_running_loop(), snapshot_entries=40)
        await c.start_all()
        await c.wait_leader()
        acked: dict[int, bytes] = {}  # index -> command acknowledged with that index
        stop = asyncio.Event()

        async def client(k: int) -> None:
            n = 0
            while not stop.is_set():
                leaders = c.leaders()
                if not leaders:
                    await asyncio.sleep(0.01)
                    continue
                n += 1
                cmd = f"c{k}={n}".encode()
                try:
                    index = await c.nodes[leaders[0]].propose(cmd, timeout_ns=500_000_000)
                except (NotLeaderError, ProposalDroppedError, CommitUnknownError, NodeStoppedError):
                    await asyncio.sleep(0.005)
                    continue
                assert isinstance(index, int)
                acked[index] = cmd

        tasks = [asyncio.ensure_future(client(k)) for k in range(CLIENTS)]
        down: set[int] = set()
        for _ in range(NEMESIS_STEPS):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            action = rng.choice(["isolate", "heal", "stop", "start"])
            victim = rng.choice(sorted(c.members))
            if action == "isolate":
                c.net.isolate(victim, c.members)
            elif action == "heal":
                c.net.heal()
            elif action == "stop" and victim not in down and len(down) < 1:
                down.add(victim)
                await c.stop(victim)
            elif action == "start" and down:
                back = down.pop()
                await c.start(back)
        c.net.heal()
        for back in sorted(down):
            await c.start(back)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
        lead = await c.wait_leader()
        await c.nodes[lead].propose(b"final=1")
        await c.wait_applied(c.nodes[lead].status()["commit"])
        assert len(acked) > 20, "the workload made too little progress to mean anything"
        # Every node's applied log since its last restore is a contiguous run of the one log.
        reference: dict[int, bytes] = {}
        for i in c.nodes:
            for index, data in c.machines[i].applied:
                assert reference.setdefault(index, data) == data, (seed, i, index)
        for index, cmd in acked.items():
            if index in reference:
                assert reference[index] == cmd, (seed, index)
        # And the final state agrees everywhere and holds each client's last acknowledged write.
        states = [c.machines[i].data for i in c.nodes]
        assert all(s == states[0] for s in states)
        last: dict[str, int] = {}
        for index in sorted(acked):
            key, _, value = acked[index].decode().partition("=")
            last[key] = int(value)
        for key, value in last.items():
            assert int(states[0][key]) >= value, (seed, key)
        await c.stop_all()

    run(body)
