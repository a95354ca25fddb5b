"""`python -m haperf sim`: run (or replay) deterministic Raft simulations by seed.

Owns the sim command's options and output. `--seed N` runs one seed and prints its trace digest
and a summary; the same arguments always print the same digest. `--seeds A:B` sweeps seeds A to
B-1 and prints one line per failing seed. On any checker violation it prints the violation and
the exact command that replays the run, and exits 1. Bad arguments exit 2 (ConfigError).
"""

import argparse
import sys
from typing import Any

from haperf.errors import ConfigError
from haperf.sim.faults import FAULT_KINDS, parse_fault_kinds
from haperf.sim.rng import SEED_MAX
from haperf.sim.runner import (
    LIVENESS_TICKS_DEFAULT,
    NODES_MAX,
    SAFETY_TICKS_DEFAULT,
    TICKS_MAX,
    RunResult,
    SimConfig,
    replay_command,
    run,
)

SWEEP_SEEDS_MAX = 10_000_000


def _int_in(low: int, high: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in {low}..{high}, got {value}")
        return value

    return parse


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sim",
        help="run or replay deterministic Raft simulations by seed",
        description=(
            "Run a Raft cluster in the deterministic simulator: a safety phase under the seed's "
            "faults, then a liveness phase that heals a majority and requires progress. Every "
            "checker (election safety, log matching, leader completeness, state machine "
            "safety, commit monotonic, no acknowledged proposal lost) runs after every event. "
            "The same arguments always give the same trace digest."
        ),
        epilog="Fault kinds: " + ", ".join(FAULT_KINDS) + " (or 'all', 'none').",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=_int_in(0, SEED_MAX, "seed"), help="run this one seed")
    which.add_argument("--seeds", metavar="A:B", help="sweep seeds A..B-1, report failures")
    parser.add_argument(
        "--nodes", type=_int_in(1, NODES_MAX, "nodes"), default=3, help="cluster size (3)"
    )
    parser.add_argument(
        "--ticks",
        type=_int_in(0, TICKS_MAX, "ticks"),
        default=SAFETY_TICKS_DEFAULT,
        help=f"length of the safety phase in 10 ms ticks ({SAFETY_TICKS_DEFAULT})",
    )
    parser.add_argument(
        "--liveness-ticks",
        type=_int_in(1, TICKS_MAX, "liveness ticks"),
        default=LIVENESS_TICKS_DEFAULT,
        help=f"ticks the healed majority gets to make progress ({LIVENESS_TICKS_DEFAULT})",
    )
    parser.add_argument("--faults", default="all", help="comma-separated fault kinds (all)")
    parser.add_argument("--trace", action="store_true", help="print every event (one seed)")
    parser.set_defaults(handler=run_command)


def _parse_range(text: str) -> range:
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--seeds takes A:B (two whole numbers), got {text!r}") from None
    if not 0 <= a < b <= SEED_MAX or b - a > SWEEP_SEEDS_MAX:
        raise ConfigError(
            f"--seeds A:B needs 0 <= A < B <= {SEED_MAX} and at most {SWEEP_SEEDS_MAX} seeds, "
            f"got {text!r}"
        )
    return range(a, b)


def summary(result: RunResult) -> str:
    progress = "none" if result.progress_ns is None else f"{result.progress_ns / 1e6:.1f} ms"
    return (
        f"seed {result.seed}: {result.nodes} nodes, {result.events} events, "
        f"{result.sim_ns / 1e9:.3f} simulated s, {result.leader_terms} terms with a leader, "
        f"{result.acked}/{result.proposed} proposals acknowledged, {result.reads} reads, "
        f"{result.crashes} crashes, "
        f"{result.dropped}/{result.frames} frames lost, liveness progress after {progress}\n"
        f"faults: {result.plan}"
    )


def run_command(args: argparse.Namespace) -> int:
    kinds = parse_fault_kinds(args.faults)
    base: dict[str, Any] = {
        "nodes": args.nodes,
        "safety_ticks": args.ticks,
        "liveness_ticks": args.liveness_ticks,
        "faults": kinds,
    }
    if args.seed is not None:

        def trace(line: str) -> None:
            sys.stdout.write(line + "\n")

        config = SimConfig(seed=args.seed, trace=trace if args.trace else None, **base)
        result = run(config)
        print(f"digest {result.digest}")
        print(summary(result))
        if result.violation is not None:
            print(f"VIOLATION: {result.violation}")
            print(f"replay: {replay_command(config)}")
            return 1
        return 0
    if args.trace:
        raise ConfigError("--trace prints one run: use it with --seed, not --seeds")
    failed = 0
    seeds = _parse_range(args.seeds)
    for seed in seeds:
        config = SimConfig(seed=seed, **base)
        result = run(config)
        if result.violation is not None:
            failed += 1
            print(f"VIOLATION: {result.violation}")
            print(f"replay: {replay_command(config)}")
    print(f"{len(seeds)} seeds, {failed} failed")
    return 1 if failed else 0
