"""The top-level parser: `python -m haperf [--version] COMMAND ...`.

Owns command dispatch and the mapping of operating errors to exit codes. Invariant: a
HaperfError becomes one line on stderr and exit status 2 (ConfigError) or 1 (anything else);
it never escapes as a traceback.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from haperf._version import __version__
from haperf.errors import ConfigError, HaperfError

# Command modules (haperf.cli.<name>), in help order. They are imported only when needed: a
# node process imports its own command, not numpy through bench/detect (RSS and start time).
COMMANDS = ("bench", "detect", "wal", "sim", "chaos", "node", "cluster", "kv")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def program_name() -> str:
    """'haperf' when run as the console script, 'python -m haperf' otherwise."""
    return "haperf" if Path(sys.argv[0]).stem == "haperf" else "python -m haperf"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with just `only` (the command being run)."""
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="haperf: high-availability building blocks for Python services.",
        epilog="Run 'python -m haperf COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"haperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(f"haperf.cli.{name}").add_parser(commands)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named by argv (the first argument not starting with '-'), if it is known."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(args_in))
    args = parser.parse_args(args_in)
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
