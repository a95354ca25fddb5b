"""CPU cost of UDP heartbeats: many HeartbeatServices in one process, on loopback.

Owns measure_udp_load, behind `python -m haperf detect udp-load`. N services bind 127.0.0.1
ports and form a ring: each sends to its next `fanout` neighbours every interval_ns and watches
the `fanout` before it. process_time() over the measured
window gives the share of one core the whole thing uses. This is a measurement to report, not a
test: the machine's load changes it.
"""

import asyncio
import time
from dataclasses import asdict, dataclass

from haperf.detect.udp import HeartbeatService
from haperf.errors import ConfigError

NODES_MAX = 2000
SECONDS_MAX = 600.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    nodes: int
    fanout: int
    interval_ns: int
    loop: str
    seconds: float
    cpu_seconds: float
    core_percent: float
    sent: int
    accepted: int
    dropped: int
    events: int
    datagrams_per_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def _run(nodes: int, fanout: int, interval_ns: int, seconds: float,
               warmup_s: float) -> LoadResult:
    key = b"haperf-udp-load-key-0123456789ab"
    detector = {"acceptable_heartbeat_pause_ns": interval_ns * 2}
    services = [
        HeartbeatService(i + 1, key, interval_ns=interval_ns, detector=detector)
        for i in range(nodes)
    ]
    try:
        for s in services:
            await s.start()
        # i sends to i + k and i + k watches i, for k in 1..fanout. When the ring is short
        # (2 * fanout >= nodes) a pair is wired both ways: one add_peer with both flags each.
        links: dict[tuple[int, int], list[bool]] = {}  # (node, peer) -> [send, watch]
        for i in range(nodes):
            for k in range(1, fanout + 1):
                t = (i + k) % nodes
                links.setdefault((i, t), [False, False])[0] = True
                links.setdefault((t, i), [False, False])[1] = True
        for (i, t), (send, watch) in links.items():
            peer = services[t]
            services[i].add_peer(peer.node_id, peer.address, send=send, watch=watch)
        await asyncio.sleep(warmup_s)
        sent0 = sum(s.stats.sent for s in services)
        acc0 = sum(s.stats.accepted for s in services)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        sent = sum(s.stats.sent for s in services) - sent0
        accepted = sum(s.stats.accepted for s in services) - acc0
        events = sum(len(s.pending_events()) for s in services)
        dropped = sum(s.stats.dropped for s in services)
    finally:
        for s in services:
            s.close()
    wall = wall1 - wall0
    return LoadResult(
        nodes=nodes,
        fanout=fanout,
        interval_ns=interval_ns,
        loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        seconds=wall,
        cpu_seconds=cpu1 - cpu0,
        core_percent=100.0 * (cpu1 - cpu0) / wall,
        sent=sent,
        accepted=accepted,
        dropped=dropped,
        events=events,
        datagrams_per_s=(sent + accepted) / wall,
    )


def measure_udp_load(
    nodes: int = 200,
    *,
    fanout: int = 1,
    interval_ns: int = 100_000_000,
    seconds: float = 5.0,
    warmup_s: float = 1.0,
    use_uvloop: bool = True,
) -> LoadResult:
    """Run the ring for warmup_s + seconds on a fresh event loop and return what it cost."""
    if not 2 <= nodes <= NODES_MAX:
        raise ConfigError(f"nodes must be in 2..{NODES_MAX}, got {nodes}")
    if not 1 <= fanout < nodes:
        raise ConfigError(f"fanout must be in 1..nodes-1, got {fanout}")
    if not 0 < seconds <= SECONDS_MAX or not 0 <= warmup_s <= SECONDS_MAX:
        raise ConfigError(f"seconds must be in (0, {SECONDS_MAX:g}], warm-up >= 0")
    loop: asyncio.AbstractEventLoop
    if use_uvloop:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_run(nodes, fanout, interval_ns, seconds, warmup_s))
    finally:
        loop.close()
