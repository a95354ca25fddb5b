"""`python -m haperf sim`: options, bad arguments (exit 2), and the violation report (exit 1).

The violation path runs in-process with the toy core and a planted bug, to show the exact
output a failing seed gives: the violation, then the command that replays it.
"""

import subprocess
import sys
from typing import Any

import pytest

from haperf.cli import main as cli_main
from haperf.cli import sim as sim_cli
from haperf.sim.node import SimNode
from tests.sim.toy import toy_config


def haperf_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", "sim", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_names_options_and_fault_kinds() -> None:
    out = haperf_sim("--help")
    assert out.returncode == 0
    for word in ("--seed", "--seeds", "--nodes", "--ticks", "--faults", "--trace", "torn"):
        assert word in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "one of the arguments --seed --seeds is required"),
        (("--seed", "1", "--nodes", "0"), "nodes must be in 1..9, got 0"),
        (("--seed", "x"), "expected a whole number, got 'x'"),
        (("--seed", "1", "--faults", "drop,fire"), "unknown fault kind 'fire'"),
        (("--seeds", "5:1"), "--seeds A:B needs 0 <= A < B"),
        (("--seeds", "abc"), "--seeds takes A:B"),
        (("--seeds", "0:2", "--trace"), "--trace prints one run"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    out = haperf_sim(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr


def _planted_toy(**kw: Any) -> Any:
    class Flipper(SimNode):
        def on_apply(self, index: int, data: bytes) -> None:
            super().on_apply(index, b"flipped" if self.id == 2 and index == 4 else data)

    kw.pop("trace", None)
    faults = kw.pop("faults")
    return toy_config(node_factory=Flipper, faults=tuple(f for f in faults if f != "crash"), **kw)


def test_violation_prints_the_replay_command_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sim_cli, "SimConfig", _planted_toy)
    code = cli_main.main(["sim", "--seed", "11", "--nodes", "3", "--faults", "drop,reorder"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("digest ")
    assert "VIOLATION: state_machine_safety violated (seed 11, node " in out
    assert (
        "replay: python -m haperf sim --seed 11 --nodes 3 --ticks 200 --faults drop,reorder" in out
    )


def test_sweep_reports_each_failing_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sim_cli, "SimConfig", _planted_toy)
    code = cli_main.main(["sim", "--seeds", "3:6", "--faults", "none", "--ticks", "50"])
    out = capsys.readouterr().out
    assert code == 1
    for seed in (3, 4, 5):
        assert (
            f"replay: python -m haperf sim --seed {seed} --nodes 3 --ticks 50 --faults none" in out
        )
    assert out.rstrip().endswith("3 seeds, 3 failed")


def test_one_seed_with_trace_prints_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sim_cli, "SimConfig", lambda **kw: toy_config(**{**kw, "faults": ("drop",)})
    )
    code = cli_main.main(["sim", "--seed", "2", "--trace", "--ticks", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " tick node=1" in out and " deliver 1->2 " in out and "digest " in out
