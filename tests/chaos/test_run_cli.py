"""`python -m haperf chaos`: option parsing, defaults, the run/check dispatch and exit codes.

The harness itself is replaced by a recorder (monkeypatched `runner.run`), so these tests check
what the CLI asks for, not a cluster: `chaos` and `chaos run` build the same RunConfig, options
given before `run` survive, bad options exit 2, a failed run exits 1.
"""

from pathlib import Path
from typing import Any

import orjson
import pytest

from haperf.chaos import runner
from haperf.chaos.nemesis import NEMESIS_KINDS
from haperf.cli.main import main


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[runner.RunConfig]:
    seen: list[runner.RunConfig] = []

    def fake_run(config: runner.RunConfig, progress: Any = None) -> runner.RunResult:
        seen.append(config)
        ok = config.seed != 13
        summary = {
            "config": {"nodes": config.nodes, "clients": 1, "keys": 1, "seed": 0, "time_s": 1.0},
            "verdict": "ok" if ok else "VIOLATIONS",
            "violations": [] if ok else ["planted"],
        }
        return runner.RunResult(ok=ok, summary=summary, out=tmp_path)

    monkeypatch.setattr(runner, "run", fake_run)
    return seen


def test_default_command_runs_the_harness_with_defaults(recorded: list[runner.RunConfig]) -> None:
    assert main(["chaos"]) == 0
    (config,) = recorded
    assert (config.time_s, config.nodes, config.clients, config.keys) == (60.0, 3, 5, 3)
    assert config.nemesis == NEMESIS_KINDS and config.seed == 0 and config.out is None


def test_options_before_and_after_run(recorded: list[runner.RunConfig], tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    assert main(["chaos", "--time", "5", "run", "--nodes", "5", "--nemesis", "kill,delay"]) == 0
    argv = ["--seed", "9", "--clients", "2", "--keys", "4", "--out", out, "--check-timeout", "7"]
    assert main(["chaos", "run", *argv]) == 0
    first, second = recorded
    assert (first.time_s, first.nodes, first.nemesis) == (5.0, 5, ("kill", "delay"))
    assert (second.seed, second.clients, second.keys, second.out) == (9, 2, 4, out)
    assert second.check_timeout_s == 7.0


def test_a_failed_run_exits_1(recorded: list[runner.RunConfig], capsys: Any) -> None:
    assert main(["chaos", "--seed", "13"]) == 1
    assert "VIOLATION: planted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["chaos", "--time", "0"],
        ["chaos", "--nodes", "4"],
        ["chaos", "--clients", "0"],
        ["chaos", "--nemesis", "meteor"],
        ["chaos", "--op-timeout", "x"],
    ],
)
def test_bad_options_exit_2(argv: list[str], recorded: list[runner.RunConfig]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert recorded == []


def test_check_subcommand_reads_harness_histories_with_nemesis_records(tmp_path: Path) -> None:
    lines = [
        {"process": 0, "type": "invoke", "f": "write", "key": "k0", "value": 1, "time": 1},
        {"process": 0, "type": "ok", "f": "write", "key": "k0", "value": 1, "time": 2},
        {"process": "nemesis", "type": "info", "f": "kill", "key": None, "value": {}, "time": 3},
        {"process": 1, "type": "invoke", "f": "write", "key": "k0", "value": 2, "time": 4},
        {"process": 1, "type": "ok", "f": "write", "key": "k0", "value": 2, "time": 5},
        {"process": 2, "type": "invoke", "f": "read", "key": "k0", "value": None, "time": 6},
        {"process": 2, "type": "ok", "f": "read", "key": "k0", "value": 2, "time": 7},
    ]
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert main(["chaos", "check", str(good)]) == 0
    lines[-1]["value"] = 1  # a stale read
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert main(["chaos", "check", str(bad)]) == 1
