"""The cluster benchmark's outputs: the JSON results document and the markdown table.

Owns the table's rows (one per metric), its columns (haperf, etcd, PySyncObj, the issue's
target, haperf/etcd and haperf/PySyncObj ratios) and the block of docs/benchmarks-cluster.md
between the TABLE_START and TABLE_END markers. Invariants: a figure that was not measured
(system missing, measurement failed) shows as '-' with the reason in the notes below the
table, never as 0; ratios are haperf's figure divided by the peer's, so whether a ratio above 1
is good depends on the row (said in the metric's name).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clusterbench.stats import median

TABLE_START = "<!-- cluster-table:start -->"
TABLE_END = "<!-- cluster-table:end -->"
SYSTEMS = ("haperf", "etcd", "PySyncObj")
# Rows that describe the machine at the time, not the system: no haperf/peer ratio.
CONTEXT_ROWS = ("floor:", "machine load")

Getter = Callable[[dict[str, Any]], float | None]


def _get(*path: str) -> Getter:
    def get(results: dict[str, Any]) -> float | None:
        node: Any = results
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node if isinstance(node, int | float) and not isinstance(node, bool) else None

    return get


def _best(results: dict[str, Any]) -> float | None:
    rates = [
        r["ops_per_s"]
        for r in (results.get("concurrent_writes") or {}).values()
        if isinstance(r, dict) and isinstance(r.get("ops_per_s"), int | float)
    ]
    return max(rates) if rates else None


def _best_at(results: dict[str, Any]) -> str:
    runs = results.get("concurrent_writes") or {}
    best = _best(results)
    for n, r in runs.items():
        if isinstance(r, dict) and r.get("ops_per_s") == best:
            return str(n)
    return "-"


def _loadavg(results: dict[str, Any]) -> float | None:
    load = ((results.get("floors") or {}).get("before") or {}).get("loadavg")
    return float(load[0]) if load else None


def _catchup_median(results: dict[str, Any]) -> float | None:
    runs = (results.get("failover") or {}).get("runs") or []
    return median([r["catchup_s"] for r in runs if r.get("catchup_s") is not None])


def _idle_max(field: str) -> Getter:
    def get(results: dict[str, Any]) -> float | None:
        idle = results.get("idle")
        if not isinstance(idle, dict) or "error" in idle:
            return None
        values = [m[field] for m in idle.values() if isinstance(m, dict) and field in m]
        return max(values) if values else None

    return get


def rows(in_flight: tuple[int, ...]) -> list[tuple[str, Getter, str]]:
    """(metric, getter, issue target) for each table row."""
    out: list[tuple[str, Getter, str]] = [
        (
            "sequential writes/s, 1 client (higher is better)",
            _get("sequential_writes", "ops_per_s"),
            "-",
        ),
        ("sequential write p50 ms", _get("sequential_writes", "p50_ms"), "<= 0.5"),
        ("sequential write p99 ms", _get("sequential_writes", "p99_ms"), "<= 2"),
    ]
    for n in in_flight:
        out.append(
            (
                f"writes/s at {n} in flight (higher is better)",
                _get("concurrent_writes", str(n), "ops_per_s"),
                ">= 10x PySyncObj's best, well above etcd" if n == 256 else "-",
            )
        )
        out.append(
            (
                f"write p99 ms at {n} in flight",
                _get("concurrent_writes", str(n), "p99_ms"),
                "<= etcd's" if n == 256 else "-",
            )
        )
    out += [
        (
            "best writes/s, any in-flight setting (higher is better)",
            _best,
            ">= 10x PySyncObj's best",
        ),
        ("linearizable reads/s (higher is better)", _get("linearizable_reads", "ops_per_s"), "-"),
        ("linearizable read p99 ms", _get("linearizable_reads", "p99_ms"), "-"),
        (
            "failover median ms (SIGKILL leader -> next commit)",
            _get("failover", "median_ms"),
            "<= 300",
        ),
        ("failover max ms", _get("failover", "max_ms"), "<= 600"),
        ("leader kills measured", _get("failover", "kills"), ">= 10"),
        ("failovers timed out (> 20 s)", _get("failover", "timeouts"), "0"),
        (
            "restarted member not caught up within 10 s (runs)",
            _get("failover", "not_caught_up"),
            "0",
        ),
        (
            "catch-up: s from marker ack to restarted member holding it, median",
            _catchup_median,
            "-",
        ),
        ("idle CPU % of a core, worst node", _idle_max("cpu_pct"), "<= 1"),
        ("RSS MB, worst idle node", _idle_max("rss_mb"), "<= 40"),
        (
            "floor: 100 B write+fdatasync p50 ms, just before this system",
            _get("floors", "before", "fdatasync_100B", "p50_ms"),
            "-",
        ),
        ("machine load average (1 min), just before", _loadavg, "-"),
    ]
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(doc: dict[str, Any]) -> str:
    """The markdown table of one results document."""
    systems: dict[str, dict[str, Any]] = doc["systems"]
    in_flight = tuple(doc["plan"]["in_flight"])
    extra = sorted(
        {int(n) for r in systems.values() for n in (r.get("concurrent_writes") or {})}
        - set(in_flight)
    )
    lines = [
        "| metric | haperf | etcd | PySyncObj | issue target | haperf/etcd | haperf/PySyncObj |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric, get, target in rows((*in_flight, *extra)):
        values = {s: get(systems.get(s, {})) for s in SYSTEMS}
        cells = [_fmt(values[s]) for s in SYSTEMS]
        if metric.startswith("best writes/s"):
            cells = [
                c if c == "-" else f"{c} (at {_best_at(systems.get(s, {}))})"
                for c, s in zip(cells, SYSTEMS, strict=True)
            ]
        context_row = metric.startswith(CONTEXT_ROWS)
        vs_etcd = "-" if context_row else _ratio(values["haperf"], values["etcd"])
        vs_pysyncobj = "-" if context_row else _ratio(values["haperf"], values["PySyncObj"])
        lines.append(f"| {metric} | {' | '.join(cells)} | {target} | {vs_etcd} | {vs_pysyncobj} |")
    return "\n".join(lines)


def notes(doc: dict[str, Any]) -> str:
    """What each system ran as, and anything not measured, under the table."""
    out = []
    for name in SYSTEMS:
        results = doc["systems"].get(name)
        if results is None:
            out.append(f"- **{name}**: not part of this run.")
            continue
        if "unavailable" in results:
            out.append(f"- **{name}**: not measured: {results['unavailable']}")
            continue
        details = "; ".join(f"{k}: {v}" for k, v in (results.get("notes") or {}).items())
        out.append(f"- **{name}**: {details}.")
        errors = _errors(results)
        if errors:
            out.append(f"  Failed measurements: {'; '.join(errors)}.")
        retried = _retried(results)
        if retried:
            out.append(f"  Repeated after a failed first attempt: {'; '.join(retried)}.")
        perf = (results.get("extras") or {}).get("etcdctl_check_perf")
        if isinstance(perf, dict):
            out.append(f"  `{perf['command']}` said: {' / '.join(perf['summary']) or '-'}")
        concurrent = results.get("concurrent_writes") or {}
        clients = list(dict.fromkeys(r["client"] for r in concurrent.values() if "client" in r))
        if clients:
            out.append(f"  Concurrent-write clients: {', '.join(clients)}.")
        floors = _floor_note(results)
        if floors:
            out.append(f"  Before / after this system: {floors}.")
        cpu = _cpu_note(results)
        if cpu:
            out.append(f"  CPU while loaded, % of one core (client; each member): {cpu}.")
    return "\n".join(out)


def _floor_note(results: dict[str, Any]) -> str:
    floors = results.get("floors")
    if not isinstance(floors, dict):
        return ""
    parts = []
    for when in ("before", "after"):
        f = floors.get(when) or {}
        sync = f.get("fdatasync_100B") or {}
        load = f.get("loadavg") or []
        parts.append(
            f"write+fdatasync of 100 B p50 {sync.get('p50_ms')} ms, p99 {sync.get('p99_ms')} ms, "
            f"load average {load[0] if load else '?'}"
        )
    return " / ".join(parts)


def _cpu_note(results: dict[str, Any]) -> str:
    runs = [("sequential", results.get("sequential_writes"))]
    runs += [(f"{n} in flight", r) for n, r in (results.get("concurrent_writes") or {}).items()]
    runs += [("reads", results.get("linearizable_reads"))]
    parts = []
    for label, run in runs:
        cpu = run.get("cpu") if isinstance(run, dict) else None
        if isinstance(cpu, dict):
            members = ", ".join(f"{v:g}" for v in cpu["members_pct"].values())
            parts.append(f"{label}: {cpu['client_pct']:g}; {members}")
    return " / ".join(parts)


def _retried(results: dict[str, Any]) -> list[str]:
    runs = [(f"{n} in flight", r) for n, r in (results.get("concurrent_writes") or {}).items()]
    runs.append(("reads", results.get("linearizable_reads")))
    return [
        f"{label} ({run['failed_attempts'][0][:160]})"
        for label, run in runs
        if isinstance(run, dict) and run.get("failed_attempts")
    ]


def _errors(results: dict[str, Any]) -> list[str]:
    found = []
    for key, value in results.items():
        if isinstance(value, dict) and "error" in value:
            found.append(f"{key}: {value['error']}")
        elif key == "concurrent_writes" and isinstance(value, dict):
            found += [f"{n} in flight: {r['error']}" for n, r in value.items() if "error" in r]
    return found


def markdown(doc: dict[str, Any]) -> str:
    machine = doc.get("machine") or {}
    head = (
        f"Measured {doc['date_utc']} on {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('python', '?')}; "
        f"`{doc['command']}`{' (quick mode: smoke figures only)' if doc['plan']['quick'] else ''}."
    )
    return f"{head}\n\n{table(doc)}\n\n{notes(doc)}\n"


def update_doc(path: Path, doc: dict[str, Any]) -> None:
    """Replace the block between the markers in `path` with this run's table and notes."""
    text = path.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {TABLE_START} ... {TABLE_END} block to replace")
    block = f"{TABLE_START}\n{markdown(doc)}{TABLE_END}"
    path.write_text(text[:start] + block + text[end + len(TABLE_END) :])
