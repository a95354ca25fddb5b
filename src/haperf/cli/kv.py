"""`python -m haperf kv get|set|del KEY [VALUE]`: one request to a replicated KV cluster.

Owns the kv command's options and output. The target is `--addr HOST:PORT` (a RESP port) or the
members of a cluster file (`--cluster FILE`, default: the one `cluster up` wrote), tried in turn
until one answers; redirects to the leader are followed. Output is redis-cli's: a value or
`(nil)`, `OK`, the count of deleted keys. Exit 1 when no member answers or the write's outcome is
unknown (the message says so: read the key to find out), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from haperf.errors import CommitUnknownError, HaperfError, LocalClusterError
from haperf.kv.config import parse_address
from haperf.kv.localcluster import default_cluster_file, read_cluster_file

REQUEST_TIMEOUT_NS = 5_000_000_000


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "kv",
        help="get, set or delete a key in a replicated KV cluster",
        description=(
            "One request to a haperf KV cluster over RESP, following redirects to the leader. "
            "Without --addr it uses the cluster file written by 'cluster up'."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cluster", type=Path, metavar="FILE", help="cluster file to use")
    where.add_argument("--addr", metavar="HOST:PORT", help="a node's RESP address")
    sub = parser.add_subparsers(dest="kv_command", metavar="ACTION", required=True)
    get = sub.add_parser("get", help="print a key's value, or (nil)")
    get.add_argument("key")
    put = sub.add_parser("set", help="set a key (durable once it prints OK)")
    put.add_argument("key")
    put.add_argument("value")
    delete = sub.add_parser("del", help="delete keys; prints how many existed")
    delete.add_argument("key", nargs="+")
    for p in (get, put, delete):
        p.set_defaults(handler=run_command)


def _addresses(args: argparse.Namespace) -> list[str]:
    if args.addr:
        parse_address(args.addr, "--addr")
        return [args.addr]
    members = read_cluster_file(args.cluster or default_cluster_file())
    return [m["resp"] for _, m in sorted(members.items())]


async def _request(address: str, args: argparse.Namespace) -> str:
    from haperf.kv.client import KVClient

    client = KVClient(address, timeout_ns=REQUEST_TIMEOUT_NS)
    try:
        if args.kv_command == "get":
            value = await client.get(args.key)
            return "(nil)" if value is None else value.decode("utf-8", "backslashreplace")
        if args.kv_command == "set":
            await client.set(args.key, args.value)
            return "OK"
        return str(await client.delete(*args.key))
    finally:
        await client.close()


async def _run(args: argparse.Namespace) -> str:
    failures = []
    for address in _addresses(args):
        try:
            return await _request(address, args)
        except CommitUnknownError:
            raise  # never resend a write whose outcome is unknown
        except (HaperfError, OSError, TimeoutError) as exc:
            failures.append(f"{address}: {exc or type(exc).__name__}")
    raise LocalClusterError("no member answered: " + "; ".join(failures))


def run_command(args: argparse.Namespace) -> int:
    print(asyncio.run(_run(args)))
    sys.stdout.flush()
    return 0
