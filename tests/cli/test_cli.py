"""`python -m haperf`: help, exit codes, bad arguments, and a real (quick) bench run.

These run the CLI in a child process exactly as a user would.
"""

import subprocess
import sys

import orjson
import pytest

from haperf.bench.targets import TARGETS

TIMEOUT_S = 120


def haperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_help_lists_commands() -> None:
    out = haperf("--help")
    assert out.returncode == 0
    assert "bench" in out.stdout and "usage:" in out.stdout


def test_bench_help_lists_options_and_groups() -> None:
    out = haperf("bench", "--help")
    assert out.returncode == 0
    for option in ("--quick", "--compare", "--filter", "--json", "--list"):
        assert option in out.stdout
    assert "crc32c" in out.stdout


def test_version() -> None:
    from haperf import __version__

    out = haperf("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"haperf {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("nosuchcommand",), "invalid choice: 'nosuchcommand'"),
        (("bench", "--repeats", "0"), "must be in 1..1000, got 0"),
        (("bench", "--repeats", "many"), "expected a whole number, got 'many'"),
        (("bench", "--repeat-ms", "-3"), "must be in (0, 10000], got -3"),
        (("bench", "--bogus"), "unrecognized arguments: --bogus"),
        (("bench", "--filter", "nosuchgroup"), "--filter 'nosuchgroup' matches no benchmark"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    out = haperf(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_list_shows_benchmarks_and_targets() -> None:
    out = haperf("bench", "--list")
    assert out.returncode == 0
    assert "crc32c.1MiB" in out.stdout
    # Every target is listed (with its row, or "no benchmark yet" while none is registered).
    assert all(name in out.stdout for name in TARGETS)


def test_bench_quick_json_compare() -> None:
    out = haperf("bench", "--quick", "--json", "--compare", "--filter", "crc32c.64B,floor.c_call")
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert doc["machine"]["haperf"] and doc["machine"]["cpu"]
    names = [r["name"] for r in doc["results"]]
    assert names == ["floor.py_call", "floor.c_call", "crc32c.64B"]
    row = doc["results"][-1]
    assert row["ns_per_op"] > 0 and row["ratio_to_floor"] > 0
    assert row["floor"] == "floor.py_call"
    assert row["target_ns"] is None
    assert "zlib.crc32" in row["peer_ratios"]  # zlib ships with Python, so it always runs


def test_bench_quick_table() -> None:
    out = haperf("bench", "--quick", "--filter", "crc32c.16B")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("haperf ") and "machine:" in lines[1]
    assert any(line.startswith("crc32c.16B") for line in lines)
