"""`python -m haperf cluster up | status | demo`: a local KV cluster from the command line.

Owns the cluster command's options and output. `up` runs N nodes as child processes on
127.0.0.1, prints their addresses and the leader, records them in the cluster file (so `status`
and `kv` find the cluster without flags) and runs until Ctrl-C or SIGTERM, which stop every child
gracefully (exit 0). `status` prints one row per member from the admin endpoints (exit 1 when no
live leader answers). `demo` is the failover demonstration (haperf.kv.demo).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from haperf.errors import ConfigError
from haperf.kv.config import MEMBERS_MAX, RaftOptions, parse_address
from haperf.kv.localcluster import (
    LocalCluster,
    default_cluster_file,
    fetch_status,
    read_cluster_file,
)

UP_START_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.5
STATUS_TIMEOUT_S = 2.0


def _nodes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MEMBERS_MAX:
        raise argparse.ArgumentTypeError(f"must be in 1..{MEMBERS_MAX}, got {value}")
    return value


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cluster",
        help="run a local replicated KV cluster: up, status, demo",
        description="A replicated KV cluster of child processes on 127.0.0.1. See docs/cli.md.",
    )
    sub = parser.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)

    up = sub.add_parser(
        "up",
        help="start N nodes on 127.0.0.1 and run until Ctrl-C",
        description=(
            "Start N KV nodes as child processes on free 127.0.0.1 ports, print their addresses "
            "and the leader, write the cluster file (for `cluster status` and `kv`), and run "
            "until Ctrl-C or SIGTERM, which stops every node gracefully. Data lives in --base-dir "
            "(kept, so the next `up` with it restarts on the same data) or in a temporary "
            "directory removed at exit."
        ),
    )
    up.add_argument("-n", "--nodes", type=_nodes, default=3, help="cluster size (3)")
    up.add_argument("--base-dir", type=Path, help="keep node files, logs and data here")
    up.add_argument("--cluster-file", type=Path, help="where to record the cluster")
    up.add_argument("--no-fsync", action="store_true", help="never fsync (NOT durable)")
    up.add_argument(
        "--timeout", type=float, default=UP_START_TIMEOUT_S, help="seconds to wait for a leader"
    )
    up.set_defaults(handler=run_up)

    status = sub.add_parser(
        "status",
        help="one row per member: role, term, commit/applied, lag, addresses",
        description=(
            "Ask every member's admin endpoint for /status and print id, role, term, "
            "commit/applied index, replication lag (entries, from the leader) and addresses. "
            "Exit 1 when no live leader answers."
        ),
    )
    which = status.add_mutually_exclusive_group()
    which.add_argument("--cluster", type=Path, metavar="FILE", help="cluster file to read")
    which.add_argument("--admin", metavar="HOST:PORT,...", help="admin addresses to ask")
    status.add_argument("--json", action="store_true", help="print the /status documents")
    status.set_defaults(handler=run_status)

    demo = sub.add_parser(
        "demo",
        help="3 nodes, SIGKILL the leader, measure failover, restart it, verify every write",
        description=(
            "Start 3 nodes, write keys, SIGKILL the leader while a client keeps writing, show the "
            "new leader and the measured failover time (kill to the next committed write), "
            "restart the old leader and show it catching up, then read back every acknowledged "
            "write. A running commentary with timings; exit 1 if any step fails."
        ),
    )
    demo.add_argument("--base-dir", type=Path, help="keep node files, logs and data here")
    demo.add_argument("--keys", type=int, default=200, help="keys written before the kill (200)")
    demo.set_defaults(handler=run_demo)


# --- up -------------------------------------------------------------------------------------


def _print_members(cluster: LocalCluster, leader: int | None) -> None:
    print(f"{'id':>3}  {'raft':<21} {'resp':<21} {'admin':<21} pid")
    for i, m in sorted(cluster.members.items()):
        mark = "  (leader)" if i == leader else ""
        print(f"{i:>3}  {m.raft:<21} {m.resp:<21} {m.admin:<21} {cluster.pid(i)}{mark}")


def run_up(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 3600:
        raise ConfigError(f"--timeout must be in (0, 3600] seconds, got {args.timeout}")
    raft = RaftOptions(fsync=not args.no_fsync)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(sig: int, _frame: object) -> None:
        received.append(sig)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cluster_file = args.cluster_file or default_cluster_file()
    cluster = LocalCluster(args.nodes, args.base_dir, raft_options=raft)
    try:
        print(f"starting {args.nodes} nodes in {cluster.base_dir}", flush=True)
        cluster.start()
        leader = cluster.wait_leader(args.timeout)
        cluster.write_cluster_file()
        cluster.write_cluster_file(cluster_file)
        _print_members(cluster, leader)
        print(
            f"leader: node {leader}. Cluster file: {cluster_file}. Try:\n"
            f"  {_prog()} cluster status\n"
            f"  {_prog()} kv set greeting hello && {_prog()} kv get greeting\n"
            f"  redis-cli -p {cluster.members[leader].resp.rsplit(':', 1)[1]} PING\n"
            "Ctrl-C stops the cluster.",
            flush=True,
        )
        reported: set[int] = set()
        while not stop.wait(WATCH_INTERVAL_S):
            for i in cluster.ids:
                if not cluster.alive(i) and i not in reported:
                    reported.add(i)
                    print(
                        f"node {i} exited (status {cluster.returncode(i)}); log: "
                        f"{cluster.members[i].log_path}",
                        flush=True,
                    )
        name = signal.Signals(received[0]).name if received else "stop"
        print(f"{name}: stopping {args.nodes} nodes", flush=True)
    finally:
        try:
            cluster.close()
        finally:
            _remove_if_ours(cluster_file)
            for s, handler in previous.items():
                signal.signal(s, handler)
    print("stopped", flush=True)
    return 0


def _prog() -> str:
    return "haperf" if Path(sys.argv[0]).stem == "haperf" else "python -m haperf"


def _remove_if_ours(path: Path) -> None:
    """Remove the cluster file unless another `cluster up` has replaced it since."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return
    if isinstance(doc, dict) and doc.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


# --- status ---------------------------------------------------------------------------------


def _admin_addresses(args: argparse.Namespace) -> dict[int | str, str]:
    if args.admin:
        addresses: dict[int | str, str] = {}
        for n, addr in enumerate(a.strip() for a in args.admin.split(",") if a.strip()):
            parse_address(addr, "--admin")
            addresses[f"?{n}"] = addr
        if not addresses:
            raise ConfigError("--admin: expected HOST:PORT[,HOST:PORT...]")
        return addresses
    members = read_cluster_file(args.cluster or default_cluster_file())
    return {i: m["admin"] for i, m in sorted(members.items())}


def status_rows(
    addresses: dict[int | str, str],
    fetch: Callable[[str], dict[str, Any] | None] | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """One row per member (None fields when it does not answer) and the live leader's id."""
    get = fetch or (lambda a: fetch_status(a, STATUS_TIMEOUT_S))
    docs = {key: get(addr) for key, addr in addresses.items()}
    leader_doc = next((d for d in docs.values() if d and d.get("role") == "leader"), None)
    lags = (leader_doc or {}).get("peers") or {}
    rows = []
    for key, addr in addresses.items():
        doc = docs[key]
        node_id = doc.get("id") if doc else key
        service = (doc or {}).get("service") or {}
        lag = lags.get(str(node_id), {}).get("lag_entries") if doc else None
        rows.append(
            {
                "id": node_id,
                "role": doc.get("role") if doc else "down",
                "term": doc.get("term") if doc else None,
                "commit": doc.get("commit") if doc else None,
                "applied": doc.get("applied") if doc else None,
                "lag": 0 if doc is not None and doc is leader_doc else lag,
                "raft": service.get("raft", ""),
                "resp": service.get("resp", ""),
                "admin": addr,
                "doc": doc,
            }
        )
    leader = leader_doc.get("id") if leader_doc else None
    return rows, leader if isinstance(leader, int) else None


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def format_status(rows: list[dict[str, Any]], leader: int | None) -> str:
    header = f"{'id':>3}  {'role':<13} {'term':>5} {'commit/applied':>15} {'lag':>5}  "
    header += f"{'raft':<21} {'resp':<21} admin"
    lines = [header]
    for r in rows:
        index = "-" if r["commit"] is None else f"{r['commit']}/{r['applied']}"
        lines.append(
            f"{_cell(r['id']):>3}  {r['role']:<13} {_cell(r['term']):>5} {index:>15} "
            f"{_cell(r['lag']):>5}  {r['raft'] or '-':<21} {r['resp'] or '-':<21} {r['admin']}"
        )
    down = sum(1 for r in rows if r["doc"] is None)
    lines.append(
        (f"leader: node {leader}" if leader is not None else "leader: none answering")
        + (f"; {down} of {len(rows)} members not answering" if down else "")
    )
    return "\n".join(lines) + "\n"


def run_status(args: argparse.Namespace) -> int:
    rows, leader = status_rows(_admin_addresses(args))
    if args.json:
        docs = [r["doc"] for r in rows]
        sys.stdout.buffer.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(format_status(rows, leader))
    return 0 if leader is not None else 1


# --- demo -----------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    from haperf.kv.demo import DemoConfig, run

    if not 1 <= args.keys <= 100_000:
        raise ConfigError(f"--keys must be in 1..100000, got {args.keys}")
    return run(DemoConfig(base_dir=args.base_dir, keys=args.keys))
