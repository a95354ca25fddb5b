"""One Jepsen-style run against a real local cluster, and the checks of its history.

Owns `RunConfig`, `run` (the whole harness), `check_history` (the checking path shared by real
runs and by doctored histories in tests) and `lost_writes` (the direct durability check).

A run: bind a FaultProxy listener for every directed link; start an n-node LocalCluster whose
nodes dial their peers through the proxy; wait for a leader; run the workload and the nemesis
together for `time_s`; heal every fault (resume, restart, reconnect links); restart every node
(SIGTERM, start again from its data directory); wait for the cluster to settle; read every key
once more (recorded in the history like any read); check that every node has applied all the
leader committed; stop the cluster; then check the history:

1. linearizability, per key, with `haperf.chaos.lincheck.check` (model cas-register);
2. no lost acknowledged writes (`lost_writes`): the final value of each key is a value some
   write produced, not one a failed write produced, absent only when no write was acknowledged,
   and no acknowledged write was invoked after the write of the final value completed (such a
   write must be linearized after it, and write values are unique, so the final value could not
   have come back);
3. every node caught up: applied == the leader's commit on every node, within `settle_s`.

The output directory keeps history.jsonl, the nodes' data and logs (cluster/), and
summary.json. Invariants: the cluster and the proxy are closed on every exit path; any
violation, a missing final read, a node not caught up, or an unusable checker makes
`RunResult.ok` false (the CLI then exits 1).
"""

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from haperf.chaos.history import read_history
from haperf.chaos.lincheck import check
from haperf.chaos.nemesis import NEMESIS_KINDS, Nemesis, make_schedule
from haperf.chaos.proxy import FaultProxy
from haperf.chaos.workload import KV, NEMESIS, HistoryLog, Workload, WorkloadConfig, key_name
from haperf.errors import ConfigError, HistoryFormatError
from haperf.runtime.loop import run as run_loop

TIME_S_MAX = 86_400.0
SETTLE_S_DEFAULT = 60.0
CHECK_TIMEOUT_S_DEFAULT = 120.0
STATUS_POLL_S = 0.2
NODES_ALLOWED = (3, 5)
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What `python -m haperf chaos` runs (see the CLI for the meaning of each option)."""

    time_s: float = 60.0
    nodes: int = 3
    clients: int = 5
    keys: int = 3
    nemesis: tuple[str, ...] = NEMESIS_KINDS
    seed: int = 0
    out: str | None = None
    op_timeout_s: float = 2.0
    settle_s: float = SETTLE_S_DEFAULT
    check_timeout_s: float = CHECK_TIMEOUT_S_DEFAULT
    fault_s_min: float = 1.0
    fault_s_max: float = 5.0
    gap_s_min: float = 1.0
    gap_s_max: float = 3.0
    raft_options: Mapping[str, Any] = field(default_factory=dict)
    node_command: tuple[str, ...] = ()  # LocalCluster's child command (tests: planted bugs)

    def __post_init__(self) -> None:
        if not 0 < self.time_s <= TIME_S_MAX:
            raise ConfigError(f"--time must be in (0, {TIME_S_MAX:.0f}] seconds, got {self.time_s}")
        if self.nodes not in NODES_ALLOWED:
            raise ConfigError(f"--nodes must be 3 or 5, got {self.nodes}")
        for kind in self.nemesis:
            if kind not in NEMESIS_KINDS:
                raise ConfigError(f"unknown nemesis kind {kind!r}; choose from {NEMESIS_KINDS}")
        if not 0 < self.settle_s <= 3600 or not 0 < self.check_timeout_s <= 86_400:
            raise ConfigError("settle_s must be in (0, 3600] and check_timeout_s in (0, 86400]")
        if (
            not 0 < self.fault_s_min <= self.fault_s_max
            or not 0 <= self.gap_s_min <= self.gap_s_max
        ):
            raise ConfigError("need 0 < fault_s_min <= fault_s_max and 0 <= gap_s_min <= gap_s_max")
        WorkloadConfig(  # validates clients, keys and the op timeout
            clients=self.clients,
            keys=self.keys,
            seed=self.seed,
            op_timeout_ns=int(self.op_timeout_s * 1e9),
        )


@dataclass(slots=True)
class RunResult:
    ok: bool
    summary: dict[str, Any]
    out: Path


# -- checks ------------------------------------------------------------------------------------


def _load_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise HistoryFormatError(f"{path}:{n}: not JSON ({exc})") from None
            if not isinstance(rec, dict) or "type" not in rec or "process" not in rec:
                raise HistoryFormatError(f"{path}:{n}: not a history record: {line[:80]!r}")
            records.append(rec)
    return records


def lost_writes(records: Sequence[Mapping[str, Any]], final: Mapping[str, Any]) -> list[str]:
    """Problems with acknowledged writes, given each key's final value (see the module doc).

    Positions in `records` are the real-time order (the history is written in event order).
    """
    problems: list[str] = []
    pending: dict[Any, tuple[int, Mapping[str, Any]]] = {}
    # value -> (invoke position, completion position or None, outcome)
    writes: dict[str, dict[Any, tuple[int, int | None, str]]] = {}
    for pos, rec in enumerate(records):
        if rec.get("process") == NEMESIS or rec.get("f") not in ("write", "cas"):
            continue
        proc = rec["process"]
        if rec["type"] == "invoke":
            pending[proc] = (pos, rec)
            continue
        started = pending.pop(proc, None)
        if started is None:
            continue
        inv_pos, inv = started
        value = inv["value"] if inv["f"] == "write" else inv["value"][1]
        done = pos if rec["type"] in ("ok", "fail") else None
        writes.setdefault(inv["key"], {})[value] = (inv_pos, done, rec["type"])
    for inv_pos, inv in pending.values():  # never completed: like info
        value = inv["value"] if inv["f"] == "write" else inv["value"][1]
        writes.setdefault(inv["key"], {})[value] = (inv_pos, None, "info")
    for key, value in sorted(final.items()):
        by_value = writes.get(key, {})
        acked = {v: w for v, w in by_value.items() if w[2] == "ok"}
        if value is None:
            if acked:
                problems.append(
                    f"key {key}: final value is absent but {len(acked)} writes were "
                    f"acknowledged (e.g. {next(iter(acked))!r})"
                )
            continue
        producer = by_value.get(value)
        if producer is None:
            problems.append(f"key {key}: final value {value!r} was never written")
            continue
        if producer[2] == "fail":
            problems.append(f"key {key}: final value {value!r} comes from a write that failed")
            continue
        done = producer[1]
        if done is None:
            continue
        later = sorted(v for v, (inv_pos, _, _) in acked.items() if inv_pos > done)
        if later:
            problems.append(
                f"key {key}: final value {value!r} but {len(later)} acknowledged writes were "
                f"invoked after it completed and are lost (e.g. {later[0]!r})"
            )
    return problems


def final_values(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each key's final value: its last ok read, when every other record of the key comes
    before that read's invoke (otherwise the key has no final value and is left out)."""
    invoked: dict[Any, int] = {}
    last_read: dict[str, tuple[int, int, Any]] = {}  # key -> (invoke pos, completion pos, value)
    for pos, rec in enumerate(records):
        if rec.get("process") == NEMESIS:
            continue
        if rec["type"] == "invoke":
            invoked[rec["process"]] = pos
            continue
        inv_pos = invoked.pop(rec["process"], None)
        if inv_pos is not None and rec["type"] == "ok" and rec["f"] == "read":
            last_read[rec["key"]] = (inv_pos, pos, rec["value"])
    out: dict[str, Any] = {}
    for key, (inv_pos, done_pos, value) in last_read.items():
        if all(
            pos < inv_pos
            for pos, rec in enumerate(records)
            if rec.get("key") == key
            and rec.get("process") != NEMESIS
            and pos not in (inv_pos, done_pos)
        ):
            out[key] = value
    return out


def check_history(
    path: str | Path,
    final: Mapping[str, Any] | None = None,
    *,
    timeout_s: float | None = CHECK_TIMEOUT_S_DEFAULT,
) -> dict[str, Any]:
    """Check a history file: linearizability per key (lincheck) and lost acknowledged writes.

    `final` gives each key's final value (from the run's final reads); None derives it from the
    history (`final_values`). Returns {"linearizable": {...}, "lost_writes": [...],
    "violations": [...]}; any violation, or a check that timed out, is listed.
    """
    path = Path(path)
    records = _load_records(path)
    report: dict[str, Any] = {"violations": []}
    # read_history validates every record and leaves the nemesis's records out (they are not
    # client operations); line numbers in the checker's explanation are the file's.
    started = time.monotonic()
    result = check(read_history(path), "cas-register", timeout_s=timeout_s)
    verdict = {True: "linearizable", False: "NOT linearizable", None: "timed out"}
    report["linearizable"] = {
        "verdict": verdict[result.linearizable],
        "key": result.key,
        "explanation": result.explanation,
        "seconds": round(time.monotonic() - started, 3),
    }
    if result.linearizable is not True:
        report["violations"].append(
            f"linearizability: {verdict[result.linearizable]}"
            + (f" (key {result.key}): {result.explanation}" if result.key else "")
        )
    if final is None:
        final = final_values(records)
    problems = lost_writes(records, final)
    report["final"] = dict(final)
    report["lost_writes"] = problems
    report["violations"].extend(f"lost write: {p}" for p in problems)
    return report


# -- the run -----------------------------------------------------------------------------------


def _default_out(seed: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return Path(tempfile.gettempdir()) / f"haperf-chaos-{stamp}-seed{seed}"


def _leader_of(cluster: Any, ids: Sequence[int]) -> int:
    best = (0, 0)
    for i in ids:
        if not cluster.alive(i):
            continue
        try:
            status = cluster.status(i)
        except OSError:
            continue
        if status and status.get("role") == "leader":
            best = max(best, (int(status.get("term", 0)), i))
    return best[1]


async def _connect_kv(address: str, follow_redirects: bool, op_timeout_ns: int) -> KV:
    from haperf.kv.client import KVClient

    # KVClient connects on its first request: a refused connection is then that request's
    # error (nothing was sent: `fail`), not a separate step.
    return KVClient(address, follow_redirects=follow_redirects, timeout_ns=op_timeout_ns)


def _caught_up(cluster: Any, ids: Sequence[int], settle_s: float) -> dict[str, Any]:
    """Wait until every node has applied what the leader committed; the last statuses seen."""
    deadline = time.monotonic() + settle_s
    seen: dict[int, Any] = {}
    while True:
        seen = {}
        for i in ids:
            try:
                seen[i] = cluster.status(i)
            except OSError:
                seen[i] = None
        leaders = [s for s in seen.values() if s and s.get("role") == "leader"]
        if leaders and all(s is not None for s in seen.values()):
            commit = max(int(s["commit"]) for s in leaders)
            if all(int(s["applied"]) == commit for s in seen.values() if s is not None):
                return {"ok": True, "commit": commit, "applied": {i: commit for i in ids}}
        if time.monotonic() >= deadline:
            return {
                "ok": False,
                "statuses": {
                    i: None if s is None else {k: s.get(k) for k in ("role", "commit", "applied")}
                    for i, s in seen.items()
                },
            }
        time.sleep(STATUS_POLL_S)


def _make_cluster(config: RunConfig, proxy: FaultProxy, base_dir: Path) -> Any:
    from haperf.kv.localcluster import LocalCluster

    def dial(from_id: int, to_id: int) -> str | None:
        return proxy.address(from_id, to_id)

    cluster = LocalCluster(
        config.nodes,
        str(base_dir),
        raft_options=dict(config.raft_options) or None,
        dial=dial,
        node_command=config.node_command or None,
    )
    for i, member in cluster.members.items():
        proxy.set_target(i, member.raft)
    return cluster


ClusterFactory = Callable[[RunConfig, FaultProxy, Path], Any]
"""(config, proxy, base_dir) -> a LocalCluster-like object whose nodes dial through the proxy."""
ConnectFactory = Callable[[str, bool, int], Awaitable[KV]]
"""(resp address, follow redirects, op timeout ns) -> a KV client for that node."""


async def _run_async(
    config: RunConfig,
    out: Path,
    progress: Progress,
    make_cluster: ClusterFactory,
    connect: ConnectFactory,
) -> dict[str, Any]:
    ids = list(range(1, config.nodes + 1))
    op_timeout_ns = int(config.op_timeout_s * 1e9)
    summary: dict[str, Any] = {"config": {**asdict(config), "out": str(out)}}
    history = HistoryLog(out / "history.jsonl")
    proxy = FaultProxy(ids, seed=config.seed)
    await proxy.start()
    cluster: Any = None
    started = time.monotonic()
    try:
        cluster = await asyncio.to_thread(make_cluster, config, proxy, out / "cluster")
        progress(f"starting {config.nodes} nodes under {out}")
        await asyncio.to_thread(cluster.start)
        leader = await asyncio.to_thread(cluster.wait_leader, config.settle_s)
        progress(
            f"leader is node {leader}; running {config.clients} clients on {config.keys} keys "
            f"for {config.time_s:g} s, nemesis {','.join(config.nemesis) or 'none'}"
        )
        schedule = make_schedule(
            config.seed,
            config.nemesis,
            ids,
            int(config.time_s * 1e9),
            fault_ns_min=int(config.fault_s_min * 1e9),
            fault_ns_max=int(config.fault_s_max * 1e9),
            gap_ns_min=int(config.gap_s_min * 1e9),
            gap_ns_max=int(config.gap_s_max * 1e9),
        )
        nemesis = Nemesis(
            schedule,
            cluster,
            proxy,
            history.nemesis,
            leader=lambda: _leader_of(cluster, ids),
            nodes=ids,
        )
        addresses = [cluster.members[i].resp for i in ids]
        workload = Workload(
            WorkloadConfig(
                clients=config.clients,
                keys=config.keys,
                seed=config.seed,
                op_timeout_ns=op_timeout_ns,
            ),
            addresses,
            lambda address, follow: connect(address, follow, op_timeout_ns),
            history,
        )
        t0 = time.monotonic_ns()
        async with asyncio.TaskGroup() as group:  # a failure in one cancels the other
            group.create_task(workload.run(int(config.time_s * 1e9)))
            group.create_task(nemesis.run(t0))
        progress(f"workload done: {workload.stats.counts}; healing and restarting every node")
        history.nemesis("restart-all", "start", {"nodes": ids})
        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(cluster.start)
        leader = await asyncio.to_thread(cluster.wait_leader, config.settle_s)
        await asyncio.to_thread(cluster.wait_ready, config.settle_s)
        history.nemesis("restart-all", "stop", {"nodes": ids, "leader": leader})
        final = await workload.final_reads()
        progress(f"final values: {final}")
        caught = await asyncio.to_thread(_caught_up, cluster, ids, config.settle_s)
        summary.update(
            {
                "ops": workload.stats.counts,
                "ops_total": sum(sum(v.values()) for v in workload.stats.counts.values()),
                "processes": workload.stats.processes,
                "client_errors": workload.last_errors,
                "faults_scheduled": len(schedule),
                "faults_applied": nemesis.applied,
                "nemesis_errors": nemesis.errors,
                "proxy": _proxy_totals(proxy),
                "final": final,
                "caught_up": caught,
            }
        )
        missing = [key_name(i) for i in range(config.keys) if key_name(i) not in final]
        summary["final_reads_missing"] = missing
    finally:
        summary["run_seconds"] = round(time.monotonic() - started, 3)
        history.close()
        if cluster is not None:
            await asyncio.to_thread(cluster.close)
        await proxy.close()
    return summary


def _proxy_totals(proxy: FaultProxy) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_link in proxy.stats().values():
        for k, v in per_link.items():
            if k != "open":
                totals[k] = totals.get(k, 0) + v
    return totals


def run(
    config: RunConfig,
    progress: Progress | None = None,
    *,
    make_cluster: ClusterFactory | None = None,
    connect: ConnectFactory | None = None,
) -> RunResult:
    """Run the harness once; never raises for a violation (see RunResult.ok).

    `make_cluster` and `connect` default to LocalCluster and KVClient; tests pass stand-ins.
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(config.out) if config.out else _default_out(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    summary = run_loop(
        _run_async(config, out, say, make_cluster or _make_cluster, connect or _connect_kv)
    )
    say("checking the history")
    report = check_history(
        out / "history.jsonl", summary.get("final", {}), timeout_s=config.check_timeout_s
    )
    violations = list(report["violations"])
    if not summary.get("caught_up", {}).get("ok"):
        violations.append(f"not every node caught up: {summary.get('caught_up')}")
    if summary.get("final_reads_missing"):
        violations.append(f"no final read of {summary['final_reads_missing']}")
    summary["checks"] = {k: v for k, v in report.items() if k != "violations"}
    summary["violations"] = violations
    summary["verdict"] = "ok" if not violations else "VIOLATIONS"
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return RunResult(ok=not violations, summary=summary, out=out)


def describe(result: RunResult) -> str:
    """A few lines for humans: duration, ops by outcome, faults, checks, verdict."""
    s = result.summary
    ops = s.get("ops", {})
    per_f = ", ".join(
        f"{f} {c['ok']} ok/{c['fail']} fail/{c['info']} info" for f, c in sorted(ops.items())
    )
    lin = s.get("checks", {}).get("linearizable", {})
    lines = [
        f"chaos run: {s['config']['nodes']} nodes, {s['config']['clients']} clients, "
        f"{s['config']['keys']} keys, seed {s['config']['seed']}, {s['config']['time_s']:g} s "
        f"of faults ({s.get('run_seconds', 0):.1f} s in all)",
        f"ops: {s.get('ops_total', 0)} ({per_f}); processes used: {s.get('processes', 0)}",
        f"faults: {s.get('faults_applied', {})}; proxy: {s.get('proxy', {})}",
        f"linearizability: {lin.get('verdict', 'unchecked')}; lost writes: "
        f"{len(s.get('checks', {}).get('lost_writes', []))}; caught up: "
        f"{s.get('caught_up', {}).get('ok')}",
        f"verdict: {s['verdict']}",
    ]
    lines.extend(f"VIOLATION: {v}" for v in s.get("violations", []))
    lines.append(f"output: {result.out} (history.jsonl, summary.json, cluster/)")
    return "\n".join(lines)
