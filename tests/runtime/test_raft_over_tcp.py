"""Three Raft cores (RawNode + Host + MemoryStorage) talking through TcpTransport on loopback:
the transport carries real Raft traffic (votes, appends, heartbeats, their responses) well
enough to elect a leader, replicate, fail over when the leader's transport goes away, and catch
the old leader up when its transport comes back on the same port. Runs on uvloop and asyncio.

The driver is deliberately minimal (ticks from a loop task, every delivery stepped and every
Ready processed at once); haperf.raft.RaftNode is the real one. Waits are bounded; nothing
asserts how long an election or a commit took.
"""

import asyncio

import pytest

from haperf._native.raft import LEADER, Config, RawNode
from haperf._native.raftmsg import Message
from haperf.raft.host import Host
from haperf.raft.storage import MemoryStorage
from haperf.runtime.loop import LoopKind, uvloop_available
from haperf.runtime.transport import TcpTransport
from tests.raft.network import KV
from tests.runtime.helpers import FAST, run_on, until

LOOPS: list[LoopKind] = ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]
TICK_S = 0.01
IDS = (1, 2, 3)


class _Member:
    """One node: core + host + transport, stepped on the loop."""

    def __init__(self, node_id: int, seed: int) -> None:
        self.id = node_id
        self.node = RawNode(Config(node_id, IDS, election_tick=10, heartbeat_tick=2), seed)
        self.kv = KV()
        self.transport: TcpTransport | None = None
        self.host = Host(self.node, MemoryStorage(), self._send, self.kv)
        self.running = True

    def _send(self, msgs: list[Message]) -> None:
        if self.transport is not None:
            self.transport.send(msgs)

    def on_messages(self, msgs: list[Message]) -> None:
        if not self.running:
            return
        for m in msgs:
            self.node.step(m)
        self.drain()

    def on_unreachable(self, peer: int) -> None:
        if self.running:
            self.node.report_unreachable(peer)

    def drain(self) -> None:
        while self.host.process_ready():
            pass

    async def listen(self, address: str = "127.0.0.1:0") -> None:
        self.transport = TcpTransport(
            self.id, address, {}, self.on_messages, on_unreachable=self.on_unreachable, **FAST
        )
        await self.transport.start()

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.running:
                self.node.tick()
                self.drain()


def _leader(members: dict[int, _Member], among: tuple[int, ...]) -> int:
    """The leader every node in `among` agrees on (0 while they do not agree)."""
    leads = {members[i].node.lead for i in among}
    if len(leads) != 1:
        return 0
    lead = leads.pop()
    return lead if lead in among and members[lead].node.role == LEADER else 0


def _applied(member: _Member) -> list[bytes]:
    return [bytes(data) for _, data in member.kv.log if data]


@pytest.mark.parametrize("kind", LOOPS)
def test_raft_elects_replicates_fails_over_and_catches_up_over_tcp(kind: LoopKind) -> None:
    async def body() -> None:
        members = {i: _Member(i, seed=100 + i) for i in IDS}
        for m in members.values():
            await m.listen()
        addresses = {i: m.transport.address for i, m in members.items() if m.transport}
        for m in members.values():
            assert m.transport is not None
            for peer, address in addresses.items():
                m.transport.set_peer(peer, address)
        tickers = [asyncio.get_running_loop().create_task(m.ticker()) for m in members.values()]
        try:
            await until(lambda: _leader(members, IDS) != 0, "a leader")
            first = _leader(members, IDS)
            batch = [f"k{i}=v{i}".encode() for i in range(50)]
            for cmd in batch:
                members[first].host.propose(cmd)
            members[first].drain()
            await until(lambda: all(_applied(m) == batch for m in members.values()), "applied")

            # The leader's transport disappears (its process, as far as the others can tell).
            old = members[first]
            old.running = False
            assert old.transport is not None
            old_address = old.transport.address
            await old.transport.close()
            rest = tuple(i for i in IDS if i != first)
            await until(lambda: _leader(members, rest) != 0, "a new leader among the rest")
            second = _leader(members, rest)
            more = [f"after=v{i}".encode() for i in range(20)]
            for cmd in more:
                members[second].host.propose(cmd)
            members[second].drain()
            await until(
                lambda: all(_applied(members[i]) == batch + more for i in rest), "applied twice"
            )

            # It comes back on the same port; the others redial it and it catches up.
            await old.listen(old_address)
            assert old.transport is not None
            for peer in rest:
                old.transport.set_peer(peer, addresses[peer])
            old.running = True
            await until(lambda: _applied(old) == batch + more, "the old leader caught up")
            assert _leader(members, IDS) != 0
            for i in rest:
                transport = members[i].transport
                assert transport is not None
                await until(lambda t=transport: t.connected(first), "redialed the old leader")
                assert transport.peer_stats()[first]["reconnects"] >= 1
        finally:
            for task in tickers:
                task.cancel()
            await asyncio.gather(*tickers, return_exceptions=True)
            for m in members.values():
                if m.transport is not None:
                    await m.transport.close()

    run_on(kind, body)
