"""Turns results into the terminal table and the --json document.

Owns the output formats. The JSON document is one object: `machine`, `config`, `results` (one
row per benchmark with at least name, group, ns_per_op, target_ns, ratio_to_floor and
peer_ratios) and `targets` (every known target, measured yet or not). Invariant: a value that
was not measured is null in JSON and '-' in the table, never 0.
"""

from typing import Any

import orjson

from haperf.bench.registry import all_benchmarks
from haperf.bench.run import Result, RunConfig
from haperf.bench.targets import TARGET_SOURCE, TARGETS


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def result_row(result: Result) -> dict[str, Any]:
    b, s = result.benchmark, result.stats
    peers = []
    for p in result.peers:
        ratio = result.peer_ratio(p)
        peers.append(
            {
                "name": p.name,
                "note": p.note,
                "ns_per_op": _round(None if p.stats is None else p.stats.median_ns),
                "spread_pct": _round(None if p.stats is None else p.stats.spread_pct, 2),
                "ratio": _round(ratio, 4),
                "unavailable": p.unavailable,
            }
        )
    return {
        "name": b.name,
        "group": b.group,
        "op": b.op,
        "is_floor": b.is_floor,
        "ns_per_op": _round(None if s is None else s.median_ns),
        "spread_pct": _round(None if s is None else s.spread_pct, 2),
        "min_ns": _round(None if s is None else s.min_ns),
        "max_ns": _round(None if s is None else s.max_ns),
        "repeats": 0 if s is None else s.repeats,
        "loops": result.loops,
        "bytes_per_op": b.bytes_per_op,
        "gb_per_s": _round(result.gb_per_s),
        "floor": None if b.is_floor else b.floor,
        "floor_ns": _round(None if result.floor_stats is None else result.floor_stats.median_ns),
        "ratio_to_floor": _round(result.ratio_to_floor, 4),
        "target_ns": b.target_ns,
        "target_metric": b.target_metric,
        "target_value_ns": _round(result.target_value_ns),
        "ratio_to_target": _round(result.ratio_to_target, 4),
        "peers": peers,
        "peer_ratios": {p["name"]: p["ratio"] for p in peers if p["ratio"] is not None},
        "extra": {k: _round(v, 6) for k, v in result.extra.items()},
        "error": result.error,
    }


def targets_listing() -> list[dict[str, Any]]:
    registered = {b.name for b in all_benchmarks()}
    return [
        {
            "name": t.name,
            "group": t.group,
            "target_ns": t.target_ns,
            "what": t.what,
            "source": TARGET_SOURCE,
            "has_benchmark": t.name in registered,
        }
        for t in TARGETS.values()
    ]


def to_json(machine: dict[str, Any], config: RunConfig, results: list[Result]) -> bytes:
    doc = {
        "machine": machine,
        "config": {
            "quick": config.quick,
            "compare": config.compare,
            "filter": list(config.patterns),
            "repeats": config.effective_repeats,
            "repeat_ms": config.repeat_ns / 1e6,
        },
        "results": [result_row(r) for r in results],
        "targets": targets_listing(),
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def format_ns(ns: float | None) -> str:
    """A time with a unit that keeps 3-4 significant digits: 12.3 ns, 4.56 us, 152 ms."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale >= 100 else f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def machine_lines(machine: dict[str, Any], config: RunConfig) -> list[str]:
    mode = "quick" if config.quick else "full"
    return [
        f"haperf {machine['haperf']} bench ({mode}: median of {config.effective_repeats} "
        f"repeats of ~{config.repeat_ns / 1e6:g} ms each)   {machine['date_utc']}",
        f"machine: {machine['cpu']}, {machine['arch']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['os']}",
        f"python:  {machine['python']}",
        f"build:   {machine['build_type']}, debug checks "
        f"{'on' if machine['debug_checks'] else 'off'}, {machine['compiler']}, "
        f"Cython {machine['cython']}, crc32c path {machine['crc32c_backend']}",
    ]


def to_table(machine: dict[str, Any], config: RunConfig, results: list[Result]) -> str:
    header = ("benchmark", "ns/op", "IQR", "GB/s", "vs floor", "target", "vs target")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    extras: list[str] = []
    for r in results:
        s = r.stats
        if r.error is not None:
            rows.append((r.benchmark.name, "error", "", "", "", "", ""))
            notes.append(f"{r.benchmark.name}: {r.error}")
            continue
        assert s is not None
        gbps = r.gb_per_s
        rows.append(
            (
                r.benchmark.name,
                format_ns(s.median_ns),
                f"{s.spread_pct:.1f}%",
                "-" if gbps is None else f"{gbps:.2f}",
                "floor" if r.benchmark.is_floor else _ratio(r.ratio_to_floor),
                format_ns(r.benchmark.target_ns),
                _ratio(r.ratio_to_target),
            )
        )
        if r.extra:
            figures = ", ".join(f"{k}={v:.4g}" for k, v in r.extra.items())
            extras.append(f"{r.benchmark.name}: {figures}")
        for p in r.peers:
            label = f"  vs {p.name}"
            if p.stats is None:
                rows.append((label, p.unavailable or "-", "", "", "", "", ""))
                continue
            ratio = r.peer_ratio(p)
            size = r.benchmark.bytes_per_op
            peer_gbps = "-" if size is None else f"{size / p.stats.median_ns:.2f}"
            rows.append(
                (
                    label,
                    format_ns(p.stats.median_ns),
                    f"{p.stats.spread_pct:.1f}%",
                    peer_gbps,
                    f"haperf/peer {_ratio(ratio)}",
                    "",
                    "",
                )
            )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [*machine_lines(machine, config), "", line(header)]
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in rows)
    out.append("")
    out.append(
        "vs floor: ns/op divided by the row's floor measured in this run (py_call: a no-op "
        "Python call in the same loop; instruction floors: see docs/benchmarks.md)."
    )
    if config.compare:
        out.append(
            "haperf/peer: haperf's median divided by the peer's; below 1.00x haperf is faster."
        )
    missing = [t for t in targets_listing() if not t["has_benchmark"]]
    if missing:
        out.append(
            f"{len(missing)} specification targets have no benchmark yet "
            f"(`python -m haperf bench --list` shows them)."
        )
    out.extend(f"figures: {x}" for x in extras)
    out.extend(f"error: {n}" for n in notes)
    return "\n".join(out) + "\n"
