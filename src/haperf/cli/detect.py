"""`python -m haperf detect study | udp-load`: the accuracy study and the UDP heartbeat CPU cost.

Owns the detect command's options. `study` simulates heartbeat streams (gaussian and heavy-tailed
jitter, message loss, GC-like pauses), measures false suspicions and detection time for each
distribution and threshold 1..16 and the adaptive threshold against its target, and writes
study.json, study.csv, study.md and study.png into --out. Same seed and options, same numbers.
`udp-load` runs N HeartbeatServices on loopback in this process and reports their CPU share.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from haperf.detect.load import measure_udp_load
from haperf.detect.study import StudyConfig, run_study, write
from haperf.errors import ConfigError

MS = 1_000_000


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "detect",
        help="failure detection tools (the phi-accrual accuracy study)",
        description="Failure detection tools. See docs/failure-detection.md.",
    )
    sub = parser.add_subparsers(dest="detect_command", metavar="SUBCOMMAND", required=True)
    study = sub.add_parser(
        "study",
        help="simulate heartbeat streams and measure false suspicions and detection time",
        description=(
            "Simulate heartbeat streams under four scenarios and measure, for the normal, "
            "exponential and hybrid models and thresholds 1..16, false suspicions per hour and "
            "detection time after a crash, plus the adaptive threshold against its target. "
            "Writes study.json, study.csv, study.md and study.png (needs matplotlib: "
            "pip install 'haperf[docs]') into --out."
        ),
    )
    study.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    study.add_argument("--out", type=Path, required=True, help="output directory")
    study.add_argument("--nodes", type=int, default=400, help="streams per scenario")
    study.add_argument("--hours", type=float, default=2.0, help="simulated hours per stream")
    study.add_argument("--interval-ms", type=float, default=1000.0, help="heartbeat interval")
    study.add_argument("--min-std-ms", type=float, default=100.0, help="min_std_deviation")
    study.add_argument("--pause-ms", type=float, default=0.0, help="acceptable heartbeat pause")
    study.add_argument("--tail-weight", type=float, default=1e-6, help="hybrid tail weight")
    study.add_argument("--adaptive-nodes", type=int, default=40)
    study.add_argument("--adaptive-hours", type=float, default=8.0)
    study.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    study.set_defaults(handler=run_command)
    load = sub.add_parser(
        "udp-load",
        help="CPU share of N UDP heartbeat services in this process (loopback ring)",
        description=(
            "Start N HeartbeatServices on 127.0.0.1 in one process, each sending to its next "
            "FANOUT neighbours every interval, and report the process CPU time over a window "
            "as a share of one core."
        ),
    )
    load.add_argument("--nodes", type=int, default=200)
    load.add_argument("--fanout", type=int, default=1)
    load.add_argument("--hz", type=float, default=10.0, help="heartbeats per second per peer")
    load.add_argument("--seconds", type=float, default=5.0, help="measured window")
    load.add_argument("--asyncio", action="store_true", help="asyncio's loop instead of uvloop")
    load.add_argument("--json", action="store_true", help="print the result as JSON")
    load.set_defaults(handler=run_load)


def run_load(args: argparse.Namespace) -> int:
    if not 0.01 <= args.hz <= 1000:
        raise ConfigError(f"--hz must be in 0.01..1000, got {args.hz}")
    result = measure_udp_load(
        args.nodes,
        fanout=args.fanout,
        interval_ns=int(1e9 / args.hz),
        seconds=args.seconds,
        use_uvloop=not args.asyncio,
    )
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
        return 0
    print(
        f"{result.nodes} nodes x {result.fanout} peer(s) at {args.hz:g} Hz on {result.loop}: "
        f"{result.core_percent:.2f}% of one core ({result.cpu_seconds:.3f} s CPU in "
        f"{result.seconds:.2f} s), {result.sent} sent, {result.accepted} accepted, "
        f"{result.dropped} dropped, {result.events} membership events, "
        f"{result.datagrams_per_s:.0f} datagrams/s handled"
    )
    return 0


def run_command(args: argparse.Namespace) -> int:
    if not 0.0 < args.tail_weight < 1.0:
        raise ConfigError(f"--tail-weight must be in (0, 1), got {args.tail_weight}")
    if not args.min_std_ms > 0 or not args.pause_ms >= 0:
        raise ConfigError("--min-std-ms must be > 0 and --pause-ms >= 0")
    config = StudyConfig(
        seed=args.seed,
        nodes=args.nodes,
        hours=args.hours,
        interval_ns=int(args.interval_ms * MS),
        min_std_deviation_ns=max(1, int(args.min_std_ms * MS)),
        acceptable_heartbeat_pause_ns=int(args.pause_ms * MS),
        tail_weight=args.tail_weight,
        adaptive_nodes=args.adaptive_nodes,
        adaptive_hours=args.adaptive_hours,
    )
    start = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f} s] {message}", file=sys.stderr)

    result = run_study(config, progress)
    paths = write(result, args.out, with_plot=not args.no_plot)
    progress("wrote " + ", ".join(str(p) for p in paths))
    return 0
