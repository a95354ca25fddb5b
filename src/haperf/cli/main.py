"""The top-level parser: `python -m haperf [--version] COMMAND ...`.

Owns command dispatch and the mapping of operating errors to exit codes. Invariant: a
HaperfError becomes one line on stderr and exit status 2 (ConfigError) or 1 (anything else);
it never escapes as a traceback.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from haperf._version import __version__
from haperf.cli import bench, detect
from haperf.cli import chaos as chaos_cli
from haperf.cli import cluster as cluster_cmd
from haperf.cli import kv as kv_cmd
from haperf.cli import node as node_cmd
from haperf.cli import sim as sim_cli
from haperf.cli import wal as wal_cmd
from haperf.errors import ConfigError, HaperfError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def program_name() -> str:
    """'haperf' when run as the console script, 'python -m haperf' otherwise."""
    return "haperf" if Path(sys.argv[0]).stem == "haperf" else "python -m haperf"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="haperf: high-availability building blocks for Python services.",
        epilog="Run 'python -m haperf COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"haperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench.add_parser(commands)
    detect.add_parser(commands)
    wal_cmd.add_parser(commands)
    sim_cli.add_parser(commands)
    chaos_cli.add_parser(commands)
    node_cmd.add_parser(commands)
    cluster_cmd.add_parser(commands)
    kv_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {exc}\n")
    except HaperfError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
