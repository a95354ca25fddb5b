"""`python -m haperf node`: run one KV service node (Raft + KVStore + RESP + admin HTTP).

Owns the node command's options: a JSON node file (`--config FILE`, the format in docs/ops.md)
or flags (`--id N --peers 1=RAFT/RESP/ADMIN,... --data DIR` plus Raft timings). The two forms are
exclusive. Bad configuration is a ConfigError naming the field (exit 2); SIGTERM or SIGINT stops
the node gracefully (exit 0). `--check` validates and prints the effective node file, and exits.
"""

import argparse
import sys
from typing import Any

from haperf.errors import ConfigError
from haperf.kv.config import (
    ACK_MODES,
    RaftOptions,
    ServiceConfig,
    config_from_flags,
    load_config,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "node",
        help="run one replicated KV node (Raft over TCP, RESP port, HTTP admin)",
        description=(
            "Run one node of a replicated key-value cluster: a Raft node with its log on disk, "
            "a RESP (Redis protocol) port for clients and an HTTP admin endpoint (/status, "
            "/metrics, /livez, /readyz). Configure it with a JSON node file (--config) or with "
            "flags. SIGTERM or Ctrl-C stops it gracefully. See docs/ops.md."
        ),
        epilog=(
            "Example: python -m haperf node --id 1 --data /var/lib/haperf/1 --peers "
            "1=127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001,"
            "2=127.0.0.1:7002/127.0.0.1:6382/127.0.0.1:8002,"
            "3=127.0.0.1:7003/127.0.0.1:6383/127.0.0.1:8003"
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="JSON node file (exclusive with flags)")
    parser.add_argument("--id", type=int, help="this node's id (>= 1; one of --peers)")
    parser.add_argument(
        "--peers",
        metavar="ID=RAFT/RESP/ADMIN,...",
        help="every member (this node included): id=raft/resp/admin host:port addresses",
    )
    parser.add_argument("--data", metavar="DIR", help="data directory (WAL, state, snapshots)")
    parser.add_argument(
        "--dial", metavar="ID=HOST:PORT,...", default="", help="connect to a peer through here"
    )
    defaults = RaftOptions()
    parser.add_argument("--tick-ms", type=int, default=defaults.tick_ms, help="Raft tick (10)")
    parser.add_argument(
        "--heartbeat-ticks", type=int, default=defaults.heartbeat_ticks, help="heartbeat (5)"
    )
    parser.add_argument(
        "--election-ticks",
        type=int,
        default=defaults.election_ticks,
        help="election timeout, randomized in [T, 2T) ticks (15)",
    )
    parser.add_argument("--ack", choices=ACK_MODES, default=defaults.ack, help="ack mode")
    parser.add_argument("--lease-read", action="store_true", help="lease reads (clock bound)")
    parser.add_argument(
        "--no-fsync", action="store_true", help="never fsync (tests/benchmarks: NOT durable)"
    )
    parser.add_argument(
        "--snapshot-entries", type=int, default=defaults.snapshot_entries, help="snapshot every N"
    )
    parser.add_argument(
        "--check", action="store_true", help="validate, print the effective node file, exit"
    )
    parser.set_defaults(handler=run_command)


_FLAG_ONLY = ("id", "peers", "data")


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    if args.config is not None:
        given = [f"--{name}" for name in _FLAG_ONLY if getattr(args, name) is not None]
        if given or args.dial:
            raise ConfigError(
                f"--config and {', '.join(given or ['--dial'])} are exclusive: put everything "
                "in the node file, or use flags only"
            )
        return load_config(args.config)
    missing = [f"--{name}" for name in _FLAG_ONLY if getattr(args, name) is None]
    if missing:
        raise ConfigError(
            f"missing {', '.join(missing)}: give --config FILE, or --id, --peers and --data"
        )
    raft = RaftOptions(
        tick_ms=args.tick_ms,
        heartbeat_ticks=args.heartbeat_ticks,
        election_ticks=args.election_ticks,
        ack=args.ack,
        lease_read=args.lease_read,
        fsync=not args.no_fsync,
        snapshot_entries=args.snapshot_entries,
    )
    return config_from_flags(args.id, args.peers, args.data, dial=args.dial, raft=raft)


def run_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.check:
        sys.stdout.buffer.write(config.to_json())
        return 0
    from haperf.kv.service import run_service

    return run_service(config)
