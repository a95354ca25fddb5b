"""haperf.cli: the `python -m haperf` / `haperf` command line.

Owns argument parsing and exit codes: 0 success, 1 the command ran and something failed,
2 bad usage (argparse's convention). Each command lives in its own module with an
add_parser(subparsers) and a run(args) -> int.
"""
