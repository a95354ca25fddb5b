"""TcpTransport under connection churn: every link of a three-node mesh goes through a relay
that cuts its connections at seeded random points while the nodes keep sending. Whatever gets
through must be, per (sender, receiver), an in-order subsequence of what was sent (no
duplicate, no reordering), every counter must add up, and once the cuts stop every link must
come back and carry traffic again. Runs on uvloop and asyncio; 127.0.0.1 only, bounded.
"""

import asyncio
import contextlib
import random

import pytest

from haperf.runtime.loop import LoopKind, uvloop_available
from haperf.runtime.transport import TcpTransport
from tests.runtime.helpers import Collector, heartbeat, run_on, started, until

LOOPS: list[LoopKind] = ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]
SEED = 20261122
ROUNDS = 40
PER_ROUND = 25
IDS = (1, 2, 3)


class _CuttingRelay:
    """Forwards one direction to `target`; while `cutting`, closes each connection (both sides)
    after a random number of bytes, as a flaky network or a crashing proxy would."""

    def __init__(self, target: str, rng: random.Random) -> None:
        self.target = target
        self.rng = rng
        self.cutting = True
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        try:
            _, up = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up}
        budget = self.rng.randrange(50, 4000)
        try:
            while data := await reader.read(1024):
                if self.cutting and len(data) >= budget:
                    up.write(data[:budget])
                    self.cuts += 1
                    break
                budget -= len(data)
                up.write(data)
                await up.drain()
        except ConnectionError:
            pass
        finally:
            for w in (writer, up):
                w.close()
                self.writers.discard(w)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await self.server.wait_closed()


@pytest.mark.parametrize("kind", LOOPS)
def test_churn_keeps_per_link_fifo_without_duplicates_and_recovers(kind: LoopKind) -> None:
    run_on(kind, lambda: churn(SEED, ROUNDS))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEED, SEED + 5))
@pytest.mark.parametrize("kind", LOOPS)
def test_churn_soak(kind: LoopKind, seed: int) -> None:
    """The same property over 50 times more rounds and five seeds (`pytest -m slow`)."""
    print(f"churn soak seed={seed}")
    run_on(kind, lambda: churn(seed, ROUNDS * 50))


async def churn(seed: int, rounds: int) -> None:
    """Run `rounds` rounds of sends through cutting relays seeded by `seed`, then check."""
    rng = random.Random(seed)
    got = {i: Collector() for i in IDS}
    nodes: dict[int, TcpTransport] = {i: await started(i, {}, got[i]) for i in IDS}
    relays: list[_CuttingRelay] = []
    try:
        for a in IDS:
            for b in IDS:
                if a != b:
                    relay = _CuttingRelay(nodes[b].address, rng)
                    relays.append(relay)
                    nodes[a].set_peer(b, await relay.start())
        sent = 0
        for _ in range(rounds):
            for a in IDS:
                batch = [heartbeat(a, b, sent + i) for i in range(PER_ROUND) for b in IDS if b != a]
                nodes[a].send(batch)
            sent += PER_ROUND
            await asyncio.sleep(0.002)
        assert sum(r.cuts for r in relays) > 0, "the relays never cut anything"

        def check() -> None:
            for b in IDS:
                for a in IDS:
                    if a == b:
                        continue
                    seq = [m.commit for m in got[b].messages if m.frm == a]
                    assert seq == sorted(set(seq)), f"{a}->{b} reordered or duplicated"
                    assert all(0 <= n < sent for n in seq)

        check()
        # Stop cutting: every link must come back by itself and deliver again.
        for relay in relays:
            relay.cutting = False
        marker = 10**9
        for a in IDS:
            nodes[a].send([heartbeat(a, b, marker) for b in IDS if b != a])

        def all_marked() -> bool:
            for a in IDS:
                nodes[a].send([heartbeat(a, b, marker + 1) for b in IDS if b != a])
            return all(
                any(m.commit >= marker and m.frm == a for m in got[b].messages)
                for a in IDS
                for b in IDS
                if a != b
            )

        await until(all_marked, "every link delivers after the cuts stop")
        for b in IDS:
            for a in IDS:
                if a != b:
                    seq = [m.commit for m in got[b].messages if m.frm == a]
                    assert seq == sorted(seq)  # markers come last; +1 may repeat
        for a in IDS:
            for b, stats in nodes[a].peer_stats().items():
                received = nodes[b].peer_stats()[a]["frames_received"]
                assert received <= stats["frames_sent"]
                assert received == sum(1 for m in got[b].messages if m.frm == a)
    finally:
        for node in nodes.values():
            await node.close()
        for relay in relays:
            await relay.close()
