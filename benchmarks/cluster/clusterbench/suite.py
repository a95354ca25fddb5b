"""The measurements, run the same way on every system, and the failover series.

Owns `Plan` (how long each measurement runs; `quick()` for CI smoke, `full()` for the table),
`measure(system, plan)`, which runs one system from start to close and returns its results, and
the failover series: a writer that writes continuously (one write at a time, a short timeout per
attempt, moving to the next member on any failure), SIGKILL of the leader, the time from the
kill to the first acknowledgement of a write sent after it, then a restart of the killed member
and a check that it catches up. Invariants: a failing measurement is recorded with its error and
the next one still runs; the system is always closed; a failover that does not complete within
FAILOVER_DEADLINE_S is recorded as a timeout, never as a time.
"""

import asyncio
import contextlib
import functools
import resource
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clusterbench import procs
from clusterbench.errors import REQUEST_FAILURES
from clusterbench.stats import median
from clusterbench.system import System, Unavailable

LEADER_TIMEOUT_S = 30.0
FAILOVER_DEADLINE_S = 20.0
ATTEMPT_TIMEOUT_MIN_S = 0.1
ATTEMPT_TIMEOUT_MAX_S = 1.0
ATTEMPT_TIMEOUT_P99_FACTOR = 4
PAUSE_AFTER_ROUND_S = 0.005
CATCHUP_POLL_S = 0.05
TIMEOUTS_IN_A_ROW_MAX = 2


@dataclass(frozen=True)
class Plan:
    """How long and how often each measurement runs."""

    quick: bool
    idle_s: float
    sequential_s: float
    sequential_ops_max: int
    concurrent_s: float
    in_flight: tuple[int, ...]
    reads_in_flight: int
    reads_s: float
    kills: int
    catchup_deadline_s: float
    settle_s: float

    @classmethod
    def full(cls) -> "Plan":
        return cls(
            quick=False,
            idle_s=10.0,
            sequential_s=10.0,
            sequential_ops_max=20_000,
            concurrent_s=5.0,
            in_flight=(64, 256, 1024),
            reads_in_flight=256,
            reads_s=5.0,
            kills=10,
            catchup_deadline_s=10.0,
            settle_s=1.0,
        )

    @classmethod
    def quick_plan(cls) -> "Plan":
        return cls(
            quick=True,
            idle_s=1.0,
            sequential_s=1.0,
            sequential_ops_max=500,
            concurrent_s=1.0,
            in_flight=(64, 256),
            reads_in_flight=256,
            reads_s=1.0,
            kills=2,
            catchup_deadline_s=10.0,
            settle_s=0.5,
        )


class ContinuousWriter:
    """Writes without pause, one write at a time, to whichever member acknowledges."""

    def __init__(self, system: System, attempt_timeout_s: float) -> None:
        self._system = system
        self._timeout_s = attempt_timeout_s
        self._members = list(system.members)
        self._current = 0
        self._stop = False
        self._acked = asyncio.Event()
        self._seq = 0
        # (send time, ack time) of the last acknowledged write, in perf_counter_ns.
        self.last_ack: tuple[int, int] = (0, 0)
        self.attempts = 0
        self.failures = 0

    def stop(self) -> None:
        self._stop = True

    async def write(self, key: bytes, value: bytes, deadline_s: float) -> int:
        """Write key=value through any member, retrying until acknowledged; the member it hit."""
        deadline = time.monotonic() + deadline_s
        failures_in_row = 0
        while time.monotonic() < deadline:
            member = self._members[self._current]
            self.attempts += 1
            try:
                await asyncio.wait_for(
                    self._system.write_once(member, key, value), timeout=self._timeout_s
                )
                return member
            except REQUEST_FAILURES as exc:
                self.failures += 1
                if not getattr(exc, "connection_usable", False):
                    await self._system.reset_client(member)
                self._current = (self._current + 1) % len(self._members)
                failures_in_row += 1
                if failures_in_row % len(self._members) == 0:
                    await asyncio.sleep(PAUSE_AFTER_ROUND_S)
        raise TimeoutError(f"no member acknowledged a write within {deadline_s} s")

    async def run(self) -> None:
        clock = time.perf_counter_ns
        while not self._stop:
            self._seq += 1
            sent = clock()
            with contextlib.suppress(TimeoutError):
                await self.write(b"failover", b"%d" % self._seq, deadline_s=1.0)
                self.last_ack = (sent, clock())
                self._acked.set()

    async def first_ack_sent_after(self, t_ns: int, deadline_s: float) -> int | None:
        """Ack time of the first write sent after `t_ns`; None if none within the deadline."""
        end = time.monotonic() + deadline_s
        while self.last_ack[0] <= t_ns:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), timeout=remaining)
        return self.last_ack[1]


def attempt_timeout_s(sequential: dict[str, Any] | None) -> float:
    """Per-attempt timeout of the failover writer: 4x the system's sequential p99, bounded."""
    p99_ms = None if sequential is None else sequential.get("p99_ms")
    if p99_ms is None:
        return 0.5
    return min(
        ATTEMPT_TIMEOUT_MAX_S,
        max(ATTEMPT_TIMEOUT_MIN_S, ATTEMPT_TIMEOUT_P99_FACTOR * float(p99_ms) / 1000),
    )


async def _wait_caught_up(
    system: System, member: int, key: bytes, value: bytes, deadline_s: float
) -> float | None:
    """Seconds until `member` holds key=value, or None at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        with contextlib.suppress(*REQUEST_FAILURES):
            if await asyncio.wait_for(system.caught_up(member, key, value), timeout=1.0):
                return time.monotonic() - start
        await asyncio.sleep(CATCHUP_POLL_S)
    return None


async def failover_series(system: System, plan: Plan, timeout_s: float) -> dict[str, Any]:
    """`plan.kills` rounds of: SIGKILL the leader, time the next commit, restart, catch up."""
    writer = ContinuousWriter(system, timeout_s)
    writer_task = asyncio.create_task(writer.run())
    runs: list[dict[str, Any]] = []
    timeouts_in_row = 0
    try:
        for k in range(plan.kills):
            leader = await asyncio.to_thread(system.leader, LEADER_TIMEOUT_S)
            # Make sure the writer is committing through the current leader before the kill.
            mark = time.perf_counter_ns()
            if await writer.first_ack_sent_after(mark, FAILOVER_DEADLINE_S) is None:
                runs.append({"kill": k + 1, "error": "no write committed before the kill"})
                break
            t_kill = time.perf_counter_ns()
            system.kill(leader)
            acked = await writer.first_ack_sent_after(t_kill, FAILOVER_DEADLINE_S)
            run: dict[str, Any] = {"kill": k + 1, "killed": leader}
            run["failover_ms"] = None if acked is None else round((acked - t_kill) / 1e6, 1)
            timeouts_in_row = 0 if acked is not None else timeouts_in_row + 1
            await asyncio.to_thread(system.restart, leader)
            marker_key, marker_value = b"catchup:%d" % k, b"after-restart-%d" % k
            try:
                await writer.write(marker_key, marker_value, deadline_s=FAILOVER_DEADLINE_S)
                took = await _wait_caught_up(
                    system, leader, marker_key, marker_value, plan.catchup_deadline_s
                )
            except TimeoutError:
                took = None
            run["caught_up"] = took is not None
            run["catchup_s"] = None if took is None else round(took, 3)
            if took is None:
                await asyncio.to_thread(system.repair, leader)
            runs.append(run)
            if timeouts_in_row >= TIMEOUTS_IN_A_ROW_MAX:
                runs.append({"error": f"{timeouts_in_row} failovers in a row timed out; stopped"})
                break
            await asyncio.sleep(plan.settle_s)
    finally:
        writer.stop()
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer_task
    times = [r["failover_ms"] for r in runs if r.get("failover_ms") is not None]
    kills = [r for r in runs if "killed" in r]
    return {
        "kills": len(kills),
        "median_ms": median(times),
        "max_ms": max(times) if times else None,
        "timeouts": sum(1 for r in kills if r["failover_ms"] is None),
        "not_caught_up": sum(1 for r in kills if not r["caught_up"]),
        "attempt_timeout_ms": round(timeout_s * 1000, 1),
        "runs": runs,
    }


async def _step(results: dict[str, Any], name: str, make: Callable[[], Awaitable[Any]]) -> Any:
    """Run one measurement; record its result, or its error, under `name`."""
    print(f"  {name} ...", flush=True)
    started = time.monotonic()
    try:
        value = await make()
    except (AssertionError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - one failed measurement must not end the run
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results[name]["traceback"] = traceback.format_exc(limit=6)
        print(f"    error: {type(exc).__name__}: {exc}", flush=True)
        return None
    results[name] = value
    print(f"    {_brief(value)} ({time.monotonic() - started:.1f} s)", flush=True)
    return value


def with_cpu(system: System, make: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """`make`, with where the CPU went while it ran added to its result dict under "cpu".

    client_pct: this process plus the children it waited for (redis-benchmark), in % of one
    core; members_pct: each member process. On a 2-core machine these show whether the load
    generator or the servers were the limit.
    """

    async def measured() -> Any:
        pids = {m: system.pid(m) for m in system.members}
        before_members = {m: procs.cpu_seconds(pid) for m, pid in pids.items()}
        before_client = _client_cpu_s()
        started = time.monotonic()
        value = await make()
        elapsed = time.monotonic() - started
        if isinstance(value, dict) and elapsed > 0:
            members = {}
            for m, pid in pids.items():
                with contextlib.suppress(OSError):
                    used = procs.cpu_seconds(pid) - before_members[m]
                    members[str(m)] = round(100 * used / elapsed, 1)
            value["cpu"] = {
                "client_pct": round(100 * (_client_cpu_s() - before_client) / elapsed, 1),
                "members_pct": members,
            }
        return value

    return measured


def _client_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        keys = ("ops_per_s", "p50_ms", "p99_ms", "median_ms", "max_ms", "not_caught_up")
        shown = {k: value[k] for k in keys if k in value}
        return str(shown or {k: v for k, v in value.items() if k != "runs"})
    return str(value)


async def measure(
    system: System, plan: Plan, extra_in_flight: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Start `system`, run every measurement, close it; the results as a JSON-ready dict."""
    results: dict[str, Any] = {"system": system.name}
    try:
        system.check_available()
    except Unavailable as exc:
        results["unavailable"] = str(exc)
        print(f"{system.name}: not measured: {exc}", flush=True)
        return results
    print(f"{system.name}:", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"haperf-clusterbench-{system.name.lower()}-"))
    try:
        system.start(workdir)
        results["notes"] = system.notes()
        await _step(results, "leader", lambda: asyncio.to_thread(system.leader, LEADER_TIMEOUT_S))

        async def idle() -> dict[str, Any]:
            pids = {m: system.pid(m) for m in system.members}
            return await asyncio.to_thread(procs.idle_usage, pids, plan.idle_s)

        await _step(results, "idle", idle)
        sequential = await _step(
            results,
            "sequential_writes",
            with_cpu(
                system,
                functools.partial(
                    system.sequential_writes, plan.sequential_s, plan.sequential_ops_max
                ),
            ),
        )
        concurrent: dict[str, Any] = {}
        for n in (*plan.in_flight, *extra_in_flight):
            await _step(
                concurrent,
                str(n),
                with_cpu(system, functools.partial(system.concurrent_writes, n, plan.concurrent_s)),
            )
        results["concurrent_writes"] = concurrent
        await _step(
            results,
            "linearizable_reads",
            with_cpu(
                system,
                functools.partial(system.linearizable_reads, plan.reads_in_flight, plan.reads_s),
            ),
        )
        await _step(results, "extras", lambda: system.extras(plan.quick))
        await _step(
            results,
            "failover",
            lambda: failover_series(system, plan, attempt_timeout_s(sequential)),
        )
    finally:
        results["pids"] = _last_pids(system)
        system.close()
        _remove_tree(workdir)
    results["plan"] = asdict(plan)
    return results


def _last_pids(system: System) -> dict[str, int]:
    """The members' process ids at the end of the run (so a test can check none survives)."""
    pids: dict[str, int] = {}
    for member in system.members:
        with contextlib.suppress(KeyError, LookupError, TypeError, AttributeError, ValueError):
            pid = system.pid(member)
            if isinstance(pid, int):
                pids[str(member)] = pid
    return pids


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
