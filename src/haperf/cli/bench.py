"""`python -m haperf bench`: per-operation timings beside floors, targets and peers.

Owns the bench command's options and its output choice (table on stdout, progress on stderr
when stderr is a terminal; or one JSON document on stdout with --json). Exit status 1 when any
benchmark failed to run; speed never changes the exit status.
"""

import argparse
import sys
from typing import Any

from haperf.bench import report
from haperf.bench.machine import describe
from haperf.bench.registry import all_benchmarks, groups
from haperf.bench.run import REPEAT_MS_MAX, REPEATS_MAX, RunConfig, run


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= REPEATS_MAX:
        raise argparse.ArgumentTypeError(f"must be in 1..{REPEATS_MAX}, got {value}")
    return value


def _positive_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not 0 < value <= REPEAT_MS_MAX:
        raise argparse.ArgumentTypeError(f"must be in (0, {REPEAT_MS_MAX:g}], got {text}")
    return value


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure per-operation timings against floors, targets and peers",
        description=(
            "Measure haperf's hot operations: median ns/op over repeats after a warm-up, with "
            "the interquartile spread, the ratio to a floor measured in the same run, the "
            "specification's target, and (with --compare) peer libraries side by side."
        ),
        epilog="Groups: " + ", ".join(groups()) + ". Peers: pip install 'haperf[peers]'.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fast smoke run (fewer, shorter repeats)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="also time installed peer libraries, interleaved"
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="GROUP",
        help="run only this group or name glob (repeatable, or comma-separated)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    parser.add_argument(
        "--list", action="store_true", help="list benchmarks and targets, run nothing"
    )
    parser.add_argument("--repeats", type=_positive_int, help="timed repeats per benchmark")
    parser.add_argument(
        "--repeat-ms", type=_positive_ms, help="approximate duration of one repeat, in ms"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=run_command)


def _list() -> str:
    lines = ["benchmarks:"]
    for b in all_benchmarks():
        extras = []
        if b.is_floor:
            extras.append("floor")
        if b.target_ns is not None:
            extras.append(f"target {report.format_ns(b.target_ns)}")
        if b.peers:
            extras.append("peers: " + ", ".join(p.name for p in b.peers))
        suffix = f"  [{'; '.join(extras)}]" if extras else ""
        lines.append(f"  {b.name:<32} {b.op}{suffix}")
    lines.append("specification targets:")
    for t in report.targets_listing():
        status = "measured" if t["has_benchmark"] else "no benchmark yet"
        lines.append(
            f"  {t['name']:<32} {report.format_ns(t['target_ns']):>10}  {t['what']} ({status})"
        )
    return "\n".join(lines) + "\n"


def run_command(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write(_list())
        return 0
    patterns = tuple(p.strip() for item in args.filter for p in item.split(",") if p.strip())
    config = RunConfig(
        quick=args.quick,
        compare=args.compare,
        patterns=patterns,
        repeats=args.repeats,
        repeat_ms=args.repeat_ms,
    )
    show_progress = not args.no_progress and sys.stderr.isatty()

    def progress(i: int, n: int, name: str) -> None:
        sys.stderr.write(f"\r\x1b[2K[{i}/{n}] {name}")
        sys.stderr.flush()

    machine = describe()
    results = run(config, progress if show_progress else None)
    if show_progress:
        sys.stderr.write("\r\x1b[2K")
    if args.json:
        sys.stdout.buffer.write(report.to_json(machine, config, results))
    else:
        sys.stdout.write(report.to_table(machine, config, results))
    sys.stdout.flush()
    return 1 if any(r.error and r.benchmark.is_available() for r in results) else 0
