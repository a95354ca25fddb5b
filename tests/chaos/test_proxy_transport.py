"""FaultProxy in front of real TcpTransports: the transport's direction rule makes faults one-way.

Three transports whose peers are the proxy's per-link ports. A one-way partition 1->2 must stop
node 1's messages to 2 (none sent during the partition arrives before the heal) while 2's
messages to 1 keep flowing; after heal() the transport reconnects by itself and 1->2 flows
again. Drops and delays must never corrupt a frame: the transports count codec and handshake
errors, which must stay zero.
"""

import asyncio
from collections.abc import Awaitable, Callable

from haperf._native import raftmsg as rm
from haperf._native.raftmsg import Message
from haperf.chaos.proxy import FaultProxy
from haperf.runtime.transport import TcpTransport

WAIT_S = 20.0
FAST = {"reconnect_delay_min_ns": 2_000_000, "reconnect_delay_max_ns": 50_000_000}


async def until(pred: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not pred():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for: {what}") from None


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []  # (frm, index)

    def __call__(self, msgs: list[Message]) -> None:
        self.got.extend((m.frm, m.index) for m in msgs)

    def from_(self, frm: int) -> list[int]:
        return [i for f, i in self.got if f == frm]


def msg(frm: int, to: int, index: int) -> Message:
    return Message(rm.MSG_APP_RESP, to=to, frm=frm, term=1, index=index)


def run(
    body: Callable[[FaultProxy, dict[int, TcpTransport], dict[int, Inbox]], Awaitable[None]],
) -> None:
    async def main() -> None:
        ids = [1, 2, 3]
        proxy = FaultProxy(ids, seed=1)
        await proxy.start()
        inboxes = {i: Inbox() for i in ids}
        nodes = {i: TcpTransport(i, "127.0.0.1:0", {}, inboxes[i], **FAST) for i in ids}
        try:
            for node in nodes.values():
                await node.start()
            for i, node in nodes.items():
                proxy.set_target(i, node.address)
            for a, b in proxy.links:
                nodes[a].set_peer(b, proxy.address(a, b))
            await body(proxy, nodes, inboxes)
            for node in nodes.values():
                stats = node.stats()
                assert stats.get("protocol_errors", 0) == 0, stats
                assert stats.get("handshake_failures", 0) == 0, stats
                for peer in node.peer_stats().values():
                    assert peer["protocol_errors"] == peer["handshake_failures"] == 0, peer
        finally:
            for node in nodes.values():
                await node.close()
            await proxy.close()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_one_way_partition_and_heal_through_real_transports() -> None:
    async def body(
        proxy: FaultProxy, nodes: dict[int, TcpTransport], inboxes: dict[int, Inbox]
    ) -> None:
        for a, b in proxy.links:
            nodes[a].send([msg(a, b, 1)])
        await until(lambda: all(len(x.got) == 2 for x in inboxes.values()), "all-to-all")
        proxy.partition(1, 2)
        nodes[1].send([msg(1, 2, 100)])
        nodes[2].send([msg(2, 1, 100)])
        nodes[1].send([msg(1, 3, 100)])
        await until(lambda: 100 in inboxes[1].from_(2), "2->1 during the partition")
        await until(lambda: 100 in inboxes[3].from_(1), "1->3 during the partition")
        # Give a stray 1->2 frame every chance to show up before checking it did not.
        for i in range(20):
            nodes[1].send([msg(1, 2, 101 + i)])
            nodes[2].send([msg(2, 1, 101 + i)])
            await asyncio.sleep(0.01)
        await until(lambda: 120 in inboxes[1].from_(2), "2->1 keeps flowing")
        assert inboxes[2].from_(1) == [1], "nothing from 1 reached 2 while partitioned"
        assert proxy.stats()["1->2"]["refused"] + proxy.stats()["1->2"]["cut"] >= 1
        proxy.heal()
        nodes[1].send([msg(1, 2, 500)])
        await until(lambda: 500 in inboxes[2].from_(1), "1->2 after heal")
        # Frames arrive whole and in order per link: what got through is increasing.
        got = inboxes[2].from_(1)
        assert got == sorted(got)

    run(body)


def test_drop_and_delay_never_corrupt_frames() -> None:
    async def body(
        proxy: FaultProxy, nodes: dict[int, TcpTransport], inboxes: dict[int, Inbox]
    ) -> None:
        for a, b in proxy.links:
            proxy.drop(a, b, 0.2)
            proxy.delay(a, b, 5_000_000, 5_000_000)
        for i in range(1, 201):
            for a, b in proxy.links:
                nodes[a].send([msg(a, b, i)])
            await asyncio.sleep(0.002)
        proxy.heal()
        for a, b in proxy.links:
            nodes[a].send([msg(a, b, 1000)])
        await until(
            lambda: all(1000 in inboxes[b].from_(a) for a, b in proxy.links), "every link heals"
        )
        for a, b in proxy.links:
            got = inboxes[b].from_(a)
            assert got == sorted(got), f"{a}->{b} reordered"
        cuts = sum(s["cut"] + s["refused"] for s in proxy.stats().values())
        assert cuts > 0

    run(body)
