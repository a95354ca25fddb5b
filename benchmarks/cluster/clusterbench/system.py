"""What the suite needs from a clustered system under test, and the parts RESP systems share.

Owns `System` (start 3 members on loopback, find the leader, SIGKILL and restart a member, the
measurements, one write attempt at a chosen member, a caught-up check) and `RespSystem`, the
shared half of haperf and PySyncObj: both are driven by redis-benchmark for throughput and by the
benchmark's own RESP client for failover writes. Invariants: a System only signals processes it
started itself; `close()` is idempotent and removes its working directory; every blocking call
has a timeout.
"""

import abc
import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from clusterbench import redisbench
from clusterbench.errors import REQUEST_FAILURES
from clusterbench.resp import RespConnection, RespError, RespParser, encode

SYNC_CALL_TIMEOUT_S = 2.0
LEADER_POLL_S = 0.05
# Requests in redis-benchmark's calibration run (which sizes the measured run).
CALIBRATE_REQUESTS_MIN = 1_000
RUN_ATTEMPTS_MAX = 2


class Unavailable(Exception):
    """The system cannot be measured here (its binary or package is missing)."""


class System(abc.ABC):
    """One clustered key-value system: 3 members on 127.0.0.1."""

    name: str = "?"
    members: tuple[int, ...] = (1, 2, 3)

    @abc.abstractmethod
    def check_available(self) -> None:
        """Raise Unavailable (saying what to install) when this system cannot run here."""

    @abc.abstractmethod
    def start(self, workdir: Path) -> None:
        """Start every member with its data under `workdir`; return once all are spawned."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every member this object started (idempotent)."""

    @abc.abstractmethod
    def pid(self, member: int) -> int:
        """The process id of a running member."""

    @abc.abstractmethod
    def leader(self, timeout_s: float) -> int:
        """The member every live member agrees leads; raises TimeoutError at the deadline."""

    @abc.abstractmethod
    def kill(self, member: int) -> None:
        """SIGKILL one member."""

    @abc.abstractmethod
    def restart(self, member: int) -> None:
        """Start a killed member again with the same data directory and ports."""

    @abc.abstractmethod
    def repair(self, member: int) -> None:
        """Bring a member that did not catch up back into the cluster, where the system can."""

    @abc.abstractmethod
    def notes(self) -> dict[str, str]:
        """What was run: version, client, fsync, read kind, Raft timings."""

    @abc.abstractmethod
    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        """One client, one durable write at a time, to the leader; rate and latencies."""

    @abc.abstractmethod
    async def concurrent_writes(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        """`in_flight` writes outstanding at once (duration_s <= 0: one short run)."""

    @abc.abstractmethod
    async def linearizable_reads(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        """Linearizable reads with `in_flight` outstanding at once."""

    @abc.abstractmethod
    async def write_once(self, member: int, key: bytes, value: bytes) -> None:
        """One write sent to `member`; returns once acknowledged, raises on any failure."""

    @abc.abstractmethod
    async def reset_client(self, member: int) -> None:
        """Drop the failover client's connection to `member` (after a timeout or an error)."""

    @abc.abstractmethod
    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        """True once `member` itself holds the write key=value (acknowledged earlier)."""

    async def extras(self, quick: bool) -> dict[str, Any]:
        """Anything else worth recording about this system (etcd: `etcdctl check perf`)."""
        return {}


def resp_call(port: int, *parts: bytes, timeout_s: float = SYNC_CALL_TIMEOUT_S) -> Any:
    """One blocking RESP command on a fresh connection (for status polls outside the loop)."""
    parser = RespParser()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(encode(*parts))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"127.0.0.1:{port} closed the connection")
            replies = parser.feed(data)
            if replies:
                reply = replies[0]
                if isinstance(reply, RespError):
                    raise reply
                return reply
    raise TimeoutError(f"no reply from 127.0.0.1:{port} within {timeout_s} s")


class RespSystem(System):
    """A system with a RESP port per member: redis-benchmark for load, own client for failover."""

    def __init__(self) -> None:
        self._failover_conns: dict[int, RespConnection] = {}

    @abc.abstractmethod
    def resp_port(self, member: int) -> int: ...

    def _check_redis_benchmark(self) -> None:
        if redisbench.binary() is None:
            raise Unavailable("redis-benchmark is not installed (Debian: apt install redis-tools)")

    async def _conn(self, member: int) -> RespConnection:
        conn = self._failover_conns.get(member)
        if conn is None or not conn.is_open:
            conn = await RespConnection.open("127.0.0.1", self.resp_port(member))
            self._failover_conns[member] = conn
        return conn

    async def write_once(self, member: int, key: bytes, value: bytes) -> None:
        conn = await self._conn(member)
        await conn.call(b"SET", key, value)

    async def reset_client(self, member: int) -> None:
        conn = self._failover_conns.pop(member, None)
        if conn is not None:
            conn.close()

    def _close_clients(self) -> None:
        for conn in self._failover_conns.values():
            conn.close()
        self._failover_conns.clear()

    async def _redis_benchmark(
        self, test: str, in_flight: int, duration_s: float
    ) -> dict[str, Any]:
        """redis-benchmark against the leader; one retry (recorded) if the run fails.

        redis-benchmark stops at the first error reply, e.g. a redirect after a leader change
        on this loaded machine: the run is then repeated against the new leader, once.
        """
        failures: list[str] = []
        for _ in range(RUN_ATTEMPTS_MAX):
            port = self.resp_port(await asyncio.to_thread(self.leader, 30.0))
            try:
                result: dict[str, Any] = await asyncio.to_thread(
                    redisbench.sustained,
                    port,
                    test,
                    in_flight=in_flight,
                    duration_s=duration_s,
                    calibrate_requests=max(CALIBRATE_REQUESTS_MIN, 4 * in_flight),
                )
            except RuntimeError as exc:
                failures.append(str(exc)[:300])
                continue
            if failures:
                result["failed_attempts"] = failures
            return result
        raise RuntimeError(f"redis-benchmark failed {RUN_ATTEMPTS_MAX} times: {failures}")

    async def concurrent_writes(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        return await self._redis_benchmark("set", in_flight, duration_s)

    async def linearizable_reads(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        return await self._redis_benchmark("get", in_flight, duration_s)


def poll_until(check: Any, timeout_s: float, what: str) -> Any:
    """Call `check()` until it returns a non-None value; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except REQUEST_FAILURES as exc:
            last_error = exc
            value = None
        if value is not None:
            return value
        time.sleep(LEADER_POLL_S)
    raise TimeoutError(f"{what} not reached within {timeout_s} s (last error: {last_error})")
