"""A real 3-node KV cluster (child processes, 127.0.0.1, fsync on): writes through KVClient,
SIGKILL of the leader, a new leader, writes continuing, the killed node restarted and caught up
(its applied index reaches the leader's commit), and every acknowledged write readable with its
value: the kill -9 durability test of DESIGN.md section 6. Also a pause (SIGSTOP) of the leader,
and a graceful stop and restart of the whole cluster on the same data.

No timing assertions: every wait is bounded only to stop a hung run."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from haperf.errors import CommitUnknownError, HaperfError
from haperf.kv.localcluster import LocalCluster

WAIT_S = 30.0
RETRY_DELAY_S = 0.01
ATTEMPTS_MAX = 3000
SCENARIO_TIMEOUT_S = 120.0


def run(scenario: Coroutine[Any, Any, None]) -> None:
    """Run a scenario with an overall bound, so a broken cluster fails the test, never hangs it."""
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))


def _client(address: str) -> object:
    from haperf.kv.client import KVClient

    return KVClient(address, timeout_ns=2_000_000_000, tryagain_delay_ns=5_000_000)


class Writer:
    """Writes distinct keys; retries a write (same key and value) on any failure until it is
    acknowledged, rotating through the members; records what was acknowledged."""

    def __init__(self, addresses: Sequence[str], prefix: str) -> None:
        self.addresses = list(addresses)
        self.prefix = prefix
        self.at = 0
        self.client: object | None = None
        self.acked: dict[str, str] = {}
        self.unknown = 0
        self.seq = 0

    async def _drop(self) -> None:
        client, self.client = self.client, None
        self.at += 1
        if client is not None:
            await client.close()  # type: ignore[attr-defined]

    async def write(self) -> None:
        self.seq += 1
        key, value = f"{self.prefix}{self.seq:05d}", f"v{self.seq}"
        for _ in range(ATTEMPTS_MAX):
            if self.client is None:
                self.client = _client(self.addresses[self.at % len(self.addresses)])
            try:
                await self.client.set(key, value)  # type: ignore[attr-defined]
            except (HaperfError, OSError, TimeoutError) as exc:
                self.unknown += isinstance(exc, CommitUnknownError)
                await self._drop()
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            self.acked[key] = value
            return
        raise AssertionError(f"{key} never acknowledged")

    async def read_back(self) -> dict[str, object]:
        keys = sorted(self.acked)
        got: dict[str, object] = {}
        for start in range(0, len(keys), 100):
            batch = keys[start : start + 100]
            for _ in range(ATTEMPTS_MAX):
                if self.client is None:
                    self.client = _client(self.addresses[self.at % len(self.addresses)])
                try:
                    values = await self.client.mget(*batch)  # type: ignore[attr-defined]
                except (HaperfError, OSError, TimeoutError):
                    await self._drop()
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                got.update(zip(batch, values, strict=True))
                break
        return got


def _assert_all_present(writer: Writer, got: dict[str, object]) -> None:
    missing = [k for k, v in writer.acked.items() if got.get(k) != v.encode()]
    assert not missing, f"{len(missing)} acknowledged writes lost or wrong: {missing[:10]}"


def test_sigkill_leader_failover_catch_up_and_no_acknowledged_write_lost() -> None:
    with LocalCluster(3) as cluster:
        cluster.start()
        leader = cluster.wait_leader(WAIT_S)
        cluster.wait_ready(WAIT_S)
        writer = Writer([cluster.members[i].resp for i in cluster.ids], "k")

        async def scenario() -> None:
            for _ in range(100):
                await writer.write()
            # Keep a writer running across the kill: in-flight writes may end unknown and are
            # retried; only acknowledged ones are checked.
            stop = asyncio.Event()

            async def background() -> None:
                while not stop.is_set():
                    await writer.write()

            task = asyncio.create_task(background())
            await asyncio.sleep(0.05)
            await asyncio.to_thread(cluster.kill, leader, signal.SIGKILL)
            new_leader = await asyncio.to_thread(cluster.wait_leader, WAIT_S)
            assert new_leader != leader
            acked_at_failover = len(writer.acked)
            while len(writer.acked) < acked_at_failover + 100:
                assert not task.done()
                await asyncio.sleep(0.01)
            await asyncio.to_thread(cluster.restart, leader)
            stop.set()
            await asyncio.wait_for(task, WAIT_S)
            status = await asyncio.to_thread(cluster.status, new_leader)
            assert status is not None
            caught_up = await asyncio.to_thread(
                cluster.wait_applied, leader, int(status["commit"]), WAIT_S
            )
            assert caught_up["role"] == "follower" and caught_up["leader"] == new_leader
            _assert_all_present(writer, await writer.read_back())
            await writer._drop()

        run(scenario())
        assert len(writer.acked) >= 200
        # Nothing but the SIGKILLed process died; the others stop gracefully.
        cluster.stop()
        assert all(cluster.returncode(i) == 0 for i in cluster.ids)


def test_paused_leader_is_replaced_and_rejoins() -> None:
    with LocalCluster(3) as cluster:
        cluster.start()
        leader = cluster.wait_leader(WAIT_S)
        writer = Writer([cluster.members[i].resp for i in cluster.ids], "p")

        async def scenario() -> None:
            for _ in range(20):
                await writer.write()
            cluster.pause(leader)
            new_leader = await asyncio.to_thread(cluster.wait_leader, WAIT_S)
            assert new_leader != leader
            for _ in range(20):
                await writer.write()
            cluster.resume(leader)
            status = await asyncio.to_thread(cluster.status, new_leader)
            assert status is not None
            await asyncio.to_thread(cluster.wait_applied, leader, int(status["commit"]), WAIT_S)
            _assert_all_present(writer, await writer.read_back())
            await writer._drop()

        run(scenario())


@pytest.mark.parametrize("restart", ["graceful", "sigkill-all"])
def test_whole_cluster_restart_keeps_every_acknowledged_write(restart: str) -> None:
    with LocalCluster(3) as cluster:
        cluster.start()
        cluster.wait_leader(WAIT_S)
        writer = Writer([cluster.members[i].resp for i in cluster.ids], "r")

        async def write_some() -> None:
            for _ in range(50):
                await writer.write()
            await writer._drop()

        run(write_some())
        if restart == "graceful":
            cluster.stop()
        else:
            for i in cluster.ids:
                cluster.kill(i)
        cluster.start()
        cluster.wait_leader(WAIT_S)

        async def check() -> None:
            _assert_all_present(writer, await writer.read_back())
            await writer._drop()

        run(check())


def test_a_new_cluster_on_the_same_base_dir_has_the_data(tmp_path: Path) -> None:
    # What `cluster up --base-dir D` twice does: a new LocalCluster, same members and data.
    with LocalCluster(3, tmp_path) as cluster:
        cluster.start()
        cluster.wait_leader(WAIT_S)
        writer = Writer([cluster.members[i].resp for i in cluster.ids], "b")

        async def write_some() -> None:
            for _ in range(30):
                await writer.write()
            await writer._drop()

        run(write_some())
    with LocalCluster(3, tmp_path) as cluster:
        cluster.start()
        cluster.wait_leader(WAIT_S)
        writer.addresses = [cluster.members[i].resp for i in cluster.ids]

        async def check() -> None:
            _assert_all_present(writer, await writer.read_back())
            await writer._drop()

        run(check())
