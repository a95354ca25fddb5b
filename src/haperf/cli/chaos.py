"""`python -m haperf chaos`: Jepsen-style runs against a local cluster, and history checks.

Owns the chaos command's options. `chaos [options]` (or `chaos run [options]`) starts a local
cluster behind the fault proxy, runs clients and the nemesis for `--time` seconds, heals,
restarts, reads back, checks, prints a summary, and exits 0 only when the history is
linearizable, no acknowledged write was lost and every node caught up (1 otherwise).
`chaos check HISTORY.jsonl [--model M] [--timeout S]` and `chaos check-corpus DIR` hand over to the
checker's own entry points (haperf.chaos.corpus), imported inside the handlers so this command
works before (and without) that module. Bad arguments exit 2 (ConfigError).
"""

import argparse
import importlib
from typing import Any

from haperf.chaos.nemesis import NEMESIS_KINDS, parse_kinds
from haperf.errors import ConfigError

SEED_MAX = 2**63 - 1


def _number(kind: type, low: float, high: float, what: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in {low:g}..{high:g}, got {text}")
        return value  # type: ignore[no-any-return]

    return parse


def _add_run_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The run's options; on the `run` subcommand they default to SUPPRESS, so values given
    before the subcommand name (`chaos --time 5 run`) are not overwritten by its defaults."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--time",
        type=_number(float, 0.1, 86_400, "--time"),
        default=default(60.0),
        metavar="S",
        help="seconds of workload under faults (60)",
    )
    parser.add_argument(
        "--nodes", type=int, choices=(3, 5), default=default(3), help="cluster size (3)"
    )
    parser.add_argument(
        "--clients",
        type=_number(int, 1, 1024, "--clients"),
        default=default(5),
        metavar="N",
        help="concurrent clients (5)",
    )
    parser.add_argument(
        "--keys",
        type=_number(int, 1, 1000, "--keys"),
        default=default(3),
        metavar="K",
        help="keys the clients share (3)",
    )
    parser.add_argument(
        "--nemesis",
        default=default("all"),
        metavar="KINDS",
        help="comma-separated fault kinds, 'all' or 'none' (all: " + ",".join(NEMESIS_KINDS) + ")",
    )
    parser.add_argument(
        "--seed",
        type=_number(int, 0, SEED_MAX, "--seed"),
        default=default(0),
        metavar="N",
        help="seed of the fault schedule and the clients' choices (0)",
    )
    parser.add_argument(
        "--out",
        default=default(None),
        metavar="DIR",
        help="output directory: history.jsonl, summary.json, cluster/ (default: a new temp dir)",
    )
    parser.add_argument(
        "--op-timeout",
        type=_number(float, 0.01, 60, "--op-timeout"),
        default=default(2.0),
        metavar="S",
        help="per-operation client timeout; a timed-out op is recorded as info (2)",
    )
    parser.add_argument(
        "--settle",
        type=_number(float, 1, 3600, "--settle"),
        default=default(60.0),
        metavar="S",
        help="how long the healed cluster gets to elect, recover and catch up (60)",
    )
    parser.add_argument(
        "--check-timeout",
        type=_number(float, 1, 86_400, "--check-timeout"),
        default=default(120.0),
        metavar="S",
        help="time limit of the linearizability check; running out is a failed run (120)",
    )


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "chaos",
        help="Jepsen-style fault-injection runs; check histories for linearizability",
        description=(
            "Run a local cluster behind haperf's fault-injecting proxy with concurrent "
            "read/write/cas clients and a nemesis (kill, pause, partition, delay, drop), then "
            "check the history: linearizable per key, no lost acknowledged write, every node "
            "caught up. Exit 0 when all hold, 1 on any violation."
        ),
    )
    _add_run_options(parser, suppress=False)
    parser.set_defaults(handler=run_command)
    sub = parser.add_subparsers(dest="chaos_command", metavar="SUBCOMMAND")
    run_parser = sub.add_parser("run", help="run the harness (the default)")
    _add_run_options(run_parser, suppress=True)
    run_parser.set_defaults(handler=run_command)
    check = sub.add_parser("check", help="check one history (JSON lines) for linearizability")
    check.add_argument("history", metavar="HISTORY.jsonl")
    check.add_argument(
        "--model", default=None, help="model (default: the format's own; cas-register for JSONL)"
    )
    check.add_argument(
        "--timeout",
        type=_number(float, 0.001, 86_400, "--timeout"),
        default=None,
        metavar="S",
        help="give up after S seconds (verdict unknown, exit 3)",
    )
    check.set_defaults(handler=check_command)
    corpus = sub.add_parser("check-corpus", help="check a corpus of histories by its manifest")
    corpus.add_argument("directory", metavar="DIR")
    corpus.add_argument(
        "--timeout",
        type=_number(float, 0.001, 86_400, "--timeout"),
        default=None,
        metavar="S",
        help="per-history time limit in seconds",
    )
    corpus.set_defaults(handler=check_corpus_command)


def run_command(args: argparse.Namespace) -> int:
    runner = importlib.import_module("haperf.chaos.runner")
    config = runner.RunConfig(
        time_s=args.time,
        nodes=args.nodes,
        clients=args.clients,
        keys=args.keys,
        nemesis=parse_kinds(args.nemesis),
        seed=args.seed,
        out=args.out,
        op_timeout_s=args.op_timeout,
        settle_s=args.settle,
        check_timeout_s=args.check_timeout,
    )
    result = runner.run(config)
    print(runner.describe(result))
    return 0 if result.ok else 1


def _corpus_entry(name: str) -> Any:
    try:
        module = importlib.import_module("haperf.chaos.corpus")
    except ImportError as exc:
        raise ConfigError(
            f"the history checker (haperf.chaos.corpus) is not installed in this build: {exc}"
        ) from None
    return getattr(module, name)


def check_command(args: argparse.Namespace) -> int:
    """Exit 0 linearizable, 1 violation, 3 unknown (timed out)."""
    check = _corpus_entry("cli_check")
    return int(check(args.history, args.model, args.timeout))


def check_corpus_command(args: argparse.Namespace) -> int:
    """Exit 0 when every verdict matches the manifest, 1 otherwise."""
    check_corpus = _corpus_entry("cli_check_corpus")
    return int(check_corpus(args.directory, timeout_s=args.timeout))
