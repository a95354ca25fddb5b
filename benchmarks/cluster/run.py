"""Cluster benchmark: a 3-node haperf KV cluster against etcd and PySyncObj, same script, same run.

Usage: `python benchmarks/cluster/run.py [--quick] [--systems etcd,pysyncobj,haperf]
[--out DIR] [--update-doc]`. Each system runs in turn (peers first, then haperf) as 3 members on
127.0.0.1 and gets the same measurements (see clusterbench/suite.py and
docs/benchmarks-cluster.md for the method): idle CPU and RSS, sequential durable writes,
concurrent writes at several in-flight counts, linearizable reads, and leader failover after
SIGKILL with a catch-up check of the restarted member. A system whose binary or package is
missing is reported as not measured, never fatal. Writes `results.json` and `results.md` to
--out (default: $TMPDIR/haperf-cluster-bench); --update-doc also replaces the table in
docs/benchmarks-cluster.md.
Invariants: only processes this script started are signalled; temporary directories are removed.
"""

import argparse
import asyncio
import resource
import shlex
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clusterbench import report  # noqa: E402
from clusterbench.floors import fdatasync_floor, load_average  # noqa: E402
from clusterbench.suite import Plan, measure  # noqa: E402
from clusterbench.sys_etcd import EtcdSystem  # noqa: E402
from clusterbench.sys_haperf import HaperfSystem  # noqa: E402
from clusterbench.sys_pysyncobj import PySyncObjSystem  # noqa: E402
from clusterbench.system import System  # noqa: E402

REPO = HERE.parent.parent
DOC = REPO / "docs" / "benchmarks-cluster.md"
FACTORIES: dict[str, type[System]] = {
    "etcd": EtcdSystem,
    "pysyncobj": PySyncObjSystem,
    "haperf": HaperfSystem,
}
FDS_WANTED = 16_384
# Extra in-flight counts beyond the plan's, per system, in full runs: PySyncObj peaks far out.
EXTRA_IN_FLIGHT: dict[str, tuple[int, ...]] = {"pysyncobj": (8192,), "haperf": (8192,)}


def machine() -> dict[str, Any]:
    try:
        from haperf.bench.machine import describe
    except ImportError as exc:
        return {"error": f"haperf.bench.machine unavailable: {exc}"}
    return describe()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="haperf vs etcd vs PySyncObj, 3 nodes on loopback")
    parser.add_argument("--quick", action="store_true", help="a few seconds per system (CI smoke)")
    parser.add_argument(
        "--systems",
        default="etcd,pysyncobj,haperf",
        help="comma-separated subset of etcd,pysyncobj,haperf, run in that order",
    )
    parser.add_argument("--kills", type=int, default=None, help="leader kills per system")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "haperf-cluster-bench",
        help="directory for results.json and results.md (default: %(default)s)",
    )
    parser.add_argument(
        "--update-doc", action="store_true", help=f"replace the table in {DOC.relative_to(REPO)}"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="render the table of an earlier run's results.json instead of measuring",
    )
    args = parser.parse_args(argv)
    names = [s.strip().lower() for s in args.systems.split(",") if s.strip()]
    unknown = [n for n in names if n not in FACTORIES]
    if unknown or not names:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(FACTORIES)}")
    if args.kills is not None and not 0 <= args.kills <= 100:
        parser.error("--kills must be between 0 and 100")
    args.names = names
    return args


def plan_for(args: argparse.Namespace) -> Plan:
    plan = Plan.quick_plan() if args.quick else Plan.full()
    if args.kills is not None:
        from dataclasses import replace

        plan = replace(plan, kills=args.kills)
    return plan


async def run_all(names: list[str], plan: Plan) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name in names:
        system = FACTORIES[name]()
        extra = () if plan.quick else EXTRA_IN_FLIGHT.get(name, ())
        before = {"fdatasync_100B": fdatasync_floor(), "loadavg": load_average()}
        results = await measure(system, plan, extra)
        after = {"fdatasync_100B": fdatasync_floor(), "loadavg": load_average()}
        results["floors"] = {"before": before, "after": after}
        systems[system.name] = results
    return systems


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM becomes SystemExit, so that every system is closed and atexit kills what is left:
    # the members run in their own sessions and would otherwise outlive this script.
    del frame
    raise SystemExit(128 + signum)


def _raise_fd_limit() -> None:
    # etcd's 1,024-connection run needs more descriptors than a default soft limit of 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FDS_WANTED if hard == resource.RLIM_INFINITY else min(hard, FDS_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _raise_fd_limit()
    args = parse_args(argv)
    if args.from_json is not None:
        return render(orjson.loads(args.from_json.read_bytes()), args.update_doc)
    plan = plan_for(args)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        import uvloop
    except ImportError:
        systems = asyncio.run(run_all(args.names, plan))
    else:
        systems = uvloop.run(run_all(args.names, plan))
    doc = {
        "date_utc": started,
        "command": "python benchmarks/cluster/run.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "plan": {**plan.__dict__, "in_flight": list(plan.in_flight)},
        "systems": systems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    (args.out / "results.md").write_text(report.markdown(doc))
    print()
    return render(doc, args.update_doc)


def render(doc: dict[str, Any], update_doc: bool) -> int:
    """Print the table of a results document; with update_doc, put it in the docs page."""
    print(report.markdown(doc))
    if update_doc:
        report.update_doc(DOC, doc)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
