"""`python -m haperf cluster demo`: failover of a real 3-node cluster, measured and narrated.

Owns the demo's steps and its commentary: start 3 nodes (LocalCluster, the NODE_API.md timings),
write keys, SIGKILL the leader while a client keeps writing, report the new leader and the
failover time MEASURED by that client (from the kill to the first write invoked after it that
commits), restart the killed node and wait until its applied index reaches the leader's commit
index, then read back every acknowledged write. Exit status 0 only when every step succeeded
within its bound; 1 otherwise, with the step that failed and where the node logs are.

Invariants: a write counts as acknowledged only when the server confirmed it; a write whose
outcome is unknown (connection lost, timeout) is retried with the same key and value (a set is
idempotent), so the final read of every acknowledged key must return exactly its value. Every
wait has a bound; the whole demo is bounded by DEMO_TIMEOUT_S. The cluster is always cleaned up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haperf.errors import CommitUnknownError, HaperfError, LocalClusterError
from haperf.kv.client import KVClient
from haperf.kv.config import RaftOptions
from haperf.kv.localcluster import LocalCluster

NODES = 3
DEMO_TIMEOUT_S = 14.0
START_TIMEOUT_S = 8.0
FAILOVER_TIMEOUT_S = 5.0
CATCH_UP_TIMEOUT_S = 6.0
WRITE_TIMEOUT_NS = 1_000_000_000
RETRY_DELAY_S = 0.005
TRYAGAIN_DELAY_NS = 2_000_000  # while no leader is known: short, so failover is measured finely
WRITE_ATTEMPTS_MAX = 2_000
DOWN_WRITES = 200
VERIFY_BATCH = 100
POLL_S = 0.01


class DemoStepError(HaperfError):
    """A demo step failed or ran out of time (the message says which)."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    base_dir: Path | None = None
    keys: int = 200
    nodes: int = NODES
    raft: RaftOptions = field(default_factory=RaftOptions)
    failover_timeout_s: float = FAILOVER_TIMEOUT_S  # a new leader and a committed write by then


@dataclass(slots=True)
class Write:
    key: str
    value: str
    invoked_ns: int
    acked_ns: int = 0
    sent_ns: int = 0  # when the attempt that was acknowledged was sent
    attempts: int = 0
    unknown: int = 0  # attempts whose outcome was unknown (then retried)


def _client_class() -> type[KVClient]:
    return KVClient


class Writer:
    """One client writing distinct keys in sequence, failing over between the nodes' RESP
    addresses on any error, retrying a write until it is acknowledged."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self._at = 0
        self._client: Any = None
        self.acked: list[Write] = []
        self.seq = 0

    async def _connected(self) -> Any:
        if self._client is None:
            self._client = _client_class()(
                self.addresses[self._at % len(self.addresses)],
                timeout_ns=WRITE_TIMEOUT_NS,
                tryagain_delay_ns=TRYAGAIN_DELAY_NS,
            )
        return self._client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        self._at += 1
        if client is not None:
            with contextlib.suppress(HaperfError, OSError, asyncio.TimeoutError):
                await client.close()

    async def write_next(self) -> Write:
        self.seq += 1
        w = Write(f"demo:{self.seq:06d}", f"value-{self.seq}", time.monotonic_ns())
        while True:
            w.attempts += 1
            if w.attempts > WRITE_ATTEMPTS_MAX:
                raise DemoStepError(
                    f"write {w.key} not acknowledged after {WRITE_ATTEMPTS_MAX} attempts"
                )
            try:
                client = await self._connected()
                w.sent_ns = time.monotonic_ns()
                await client.set(w.key, w.value)
            except (TimeoutError, HaperfError, OSError) as exc:
                if _uncertain(exc):
                    w.unknown += 1
                await self._drop()
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            w.acked_ns = time.monotonic_ns()
            self.acked.append(w)
            return w

    async def close(self) -> None:
        await self._drop()

    async def read_all(self, keys: list[str]) -> list[object]:
        for _ in range(WRITE_ATTEMPTS_MAX):
            try:
                client = await self._connected()
                return list(await client.mget(*keys))
            except (TimeoutError, HaperfError, OSError):
                await self._drop()
                await asyncio.sleep(RETRY_DELAY_S)
        raise DemoStepError("could not read the keys back from any node")


def _uncertain(exc: BaseException) -> bool:
    return isinstance(exc, CommitUnknownError)


def _text(value: object) -> object:
    return value.decode() if isinstance(value, bytes | bytearray) else value


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Demo:
    def __init__(self, config: DemoConfig, out: Callable[[str], None]) -> None:
        self.config = config
        self._out = out
        self._t0 = time.monotonic()
        self.cluster: LocalCluster | None = None
        self.failover_ms: float | None = None
        self.catch_up_s: float | None = None

    def say(self, text: str) -> None:
        self._out(f"[{time.monotonic() - self._t0:6.2f} s] {text}")

    def _deadline_left(self) -> float:
        return DEMO_TIMEOUT_S - (time.monotonic() - self._t0)

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def _wait_leader(self, cluster: LocalCluster, timeout_s: float) -> tuple[int, int]:
        leader = await self._thread(cluster.wait_leader, timeout_s)
        status = await self._thread(cluster.status, leader)
        return leader, int((status or {}).get("term") or 0)

    async def run(self) -> None:
        cfg = self.config
        opts = cfg.raft
        self._out(
            f"haperf cluster demo: {cfg.nodes} nodes on 127.0.0.1; Raft tick {opts.tick_ms} ms, "
            f"heartbeat {opts.tick_ms * opts.heartbeat_ticks} ms, election timeout "
            f"{opts.tick_ms * opts.election_ticks}-{2 * opts.tick_ms * opts.election_ticks} ms, "
            f"fsync {'on' if opts.fsync else 'OFF'}, ack {opts.ack}"
        )
        cluster = LocalCluster(cfg.nodes, cfg.base_dir, raft_options=opts)
        self.cluster = cluster
        self.say(f"starting {cfg.nodes} nodes (data and logs in {cluster.base_dir})")
        await self._thread(cluster.start)
        leader, term = await self._wait_leader(cluster, START_TIMEOUT_S)
        self.say(f"node {leader} is the leader (term {term})")
        writer = Writer([cluster.members[i].resp for i in cluster.ids])
        try:
            await self._phases(cluster, writer, leader)
        finally:
            await writer.close()

    async def _phases(self, cluster: LocalCluster, writer: Writer, leader: int) -> None:
        cfg = self.config
        # 1. sequential durable writes
        started = time.monotonic_ns()
        for _ in range(cfg.keys):
            await writer.write_next()
        took_ms = (time.monotonic_ns() - started) / 1e6
        lat = sorted((w.acked_ns - w.invoked_ns) / 1e6 for w in writer.acked)
        self.say(
            f"wrote {cfg.keys} keys, one client in sequence: {took_ms:.0f} ms, per write p50 "
            f"{_percentile(lat, 0.5):.2f} ms, p99 {_percentile(lat, 0.99):.2f} ms"
        )

        # 2. SIGKILL the leader while the client keeps writing
        stop_writing = asyncio.Event()

        async def keep_writing() -> None:
            while not stop_writing.is_set():
                await writer.write_next()
                await asyncio.sleep(0)

        background = asyncio.create_task(keep_writing())
        try:
            await asyncio.sleep(0.1)
            pid = cluster.pid(leader)
            self.say(f"a client keeps writing; SIGKILL node {leader} (the leader, pid {pid})")
            kill_ns = time.monotonic_ns()
            await self._thread(cluster.kill, leader)
            new_leader, term = await self._wait_leader(cluster, self.config.failover_timeout_s)
            self.say(f"node {new_leader} is the new leader (term {term})")
            first = await self._first_ack_after(writer, kill_ns, background)
            self.failover_ms = (first.acked_ns - kill_ns) / 1e6
            self.say(
                f"failover: the first write sent after the kill ({first.key}) committed "
                f"{self.failover_ms:.0f} ms after the kill"
            )
            down_from = len(writer.acked)
            while len(writer.acked) - down_from < DOWN_WRITES:
                await self._check(background, "writing while a node is down")
                await asyncio.sleep(POLL_S)
            self.say(f"{len(writer.acked) - down_from} more writes while node {leader} is down")

            # 3. restart the old leader and watch it catch up
            self.say(f"restarting node {leader} (same ports, same data directory)")
            restart_ns = time.monotonic_ns()
            await self._thread(cluster.start, [leader])
            target = await self._leader_commit(cluster, new_leader)
            status = await self._wait_applied(cluster, leader, target, background)
            self.catch_up_s = (time.monotonic_ns() - restart_ns) / 1e9
            self.say(
                f"node {leader} caught up {self.catch_up_s:.2f} s after its restart: the "
                f"leader's commit index was {target} then, node {leader} has applied "
                f"{status.get('applied')} now (a {status.get('role')} in term "
                f"{status.get('term')})"
            )
        finally:
            stop_writing.set()
            # The writer stops after its current write; one that keeps retrying against a
            # cluster that cannot commit is cancelled, so the step's own error is what is shown.
            done, _ = await asyncio.wait({background}, timeout=2 * WRITE_TIMEOUT_NS / 1e9)
            if not done:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        if background.done() and not background.cancelled() and background.exception():
            raise DemoStepError(f"the writer failed: {background.exception()}")

        # With the writes stopped, every member converges on the leader's commit index.
        leader_now, _ = await self._wait_leader(cluster, self.config.failover_timeout_s)
        final = await self._leader_commit(cluster, leader_now)
        for i in cluster.ids:
            await self._wait_applied(cluster, i, final, None)
        self.say(f"writes stopped; all {len(cluster.ids)} nodes have applied index {final}")

        # 4. every acknowledged write reads back
        keys = [w.key for w in writer.acked]
        wrong = []
        for start in range(0, len(keys), VERIFY_BATCH):
            batch = writer.acked[start : start + VERIFY_BATCH]
            values = await writer.read_all([w.key for w in batch])
            wrong += [w.key for w, v in zip(batch, values, strict=True) if _text(v) != w.value]
        if wrong:
            raise DemoStepError(
                f"{len(wrong)} acknowledged write(s) did not read back: {', '.join(wrong[:5])}"
            )
        unknown = sum(w.unknown for w in writer.acked)
        self.say(
            f"verified: all {len(keys)} acknowledged writes read back with their values "
            f"({unknown} attempt(s) had an unknown outcome when the leader died, and were retried)"
        )

    async def _check(self, task: asyncio.Task[None] | None, what: str) -> None:
        if task is not None and task.done():
            task.result()  # re-raises the writer's failure
            raise DemoStepError(f"the writer stopped while {what}")
        if self._deadline_left() <= 0:
            raise DemoStepError(f"out of time ({DEMO_TIMEOUT_S:g} s) while {what}")

    async def _first_ack_after(
        self, writer: Writer, kill_ns: int, background: asyncio.Task[None]
    ) -> Write:
        """The first acknowledged write whose successful attempt was sent after the kill: only
        a new leader can have committed it."""
        deadline = time.monotonic() + self.config.failover_timeout_s
        scanned = 0
        while True:
            for w in writer.acked[scanned:]:
                if w.sent_ns >= kill_ns:
                    return w
            scanned = len(writer.acked)
            await self._check(background, "waiting for the first write after the kill")
            if time.monotonic() > deadline:
                raise DemoStepError(
                    f"no write committed within {self.config.failover_timeout_s:g} s of the kill"
                )
            await asyncio.sleep(POLL_S / 10)

    async def _leader_commit(self, cluster: LocalCluster, leader: int) -> int:
        status = await self._thread(cluster.status, leader)
        if status is None:
            raise DemoStepError(f"the leader (node {leader}) does not answer on its admin port")
        return int(status["commit"])

    async def _wait_applied(
        self,
        cluster: LocalCluster,
        node_id: int,
        index: int,
        background: asyncio.Task[None] | None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            await self._check(background, f"node {node_id} catches up")
            status = await self._thread(cluster.status, node_id, 0.5)
            if status is not None and int(status.get("applied") or 0) >= index:
                return dict(status)
            if time.monotonic() > deadline:
                raise DemoStepError(
                    f"node {node_id} did not reach applied index {index} within "
                    f"{CATCH_UP_TIMEOUT_S:g} s (last: {status and status.get('applied')})"
                )
            await asyncio.sleep(POLL_S * 2)


def run(config: DemoConfig, out: Callable[[str], None] | None = None) -> int:
    """Run the demo; 0 when every step passed, 1 otherwise (the failing step is printed)."""
    emit = out or (lambda line: print(line, flush=True))
    demo = Demo(config, emit)
    code = 1
    try:
        asyncio.run(asyncio.wait_for(demo.run(), DEMO_TIMEOUT_S))
        code = 0
    except (TimeoutError, HaperfError) as exc:
        what = str(exc) or f"out of time ({DEMO_TIMEOUT_S:g} s)"
        demo.say(f"FAILED: {what}")
        if demo.cluster is not None:
            demo.say(f"node logs: {demo.cluster.base_dir}")
    finally:
        if demo.cluster is not None:
            keep = config.base_dir is not None or code != 0
            try:
                demo.cluster.stop()
            except LocalClusterError as exc:
                demo.say(f"cleanup: {exc}")
                code = 1
            if not keep:
                demo.cluster.close()
    if code == 0:
        demo.say(
            f"stopped all nodes; done. Failover {demo.failover_ms:.0f} ms, catch-up "
            f"{demo.catch_up_s:.2f} s."
        )
    return code
