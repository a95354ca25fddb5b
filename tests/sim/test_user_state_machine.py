"""A user's own state machine in the simulator: the docs/sim.md example, run as written.

Also the SimConfig checks (bad values raise ConfigError at construction) and a user checker
plugged in beside the built-in ones.
"""

import re
from pathlib import Path

import pytest

from haperf.errors import ConfigError
from haperf.sim import CHECKERS, Checker, SimConfig, run

DOC = Path(__file__).resolve().parents[2] / "docs" / "sim.md"


def test_docs_example_runs() -> None:
    text = DOC.read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None, "docs/sim.md lost its example"
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    result = namespace["result"]
    assert result.ok and result.acked > 0  # type: ignore[attr-defined]


class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.applied: list[int] = []

    def apply(self, index: int, data: bytes) -> int:
        self.value += 1
        self.applied.append(index)
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(data)


def test_a_user_checker_sees_every_apply() -> None:
    seen: list[tuple[int, int]] = []

    class Recorder(Checker):
        name = "recorder"

        def on_apply(self, node: int, index: int, data: bytes) -> None:
            seen.append((node, index))

    checkers = (*CHECKERS, Recorder)
    result = run(SimConfig(seed=9, faults=(), state_machine=Counter, checkers=checkers))
    assert result.ok
    for node in (1, 2, 3):
        indexes = [i for n, i in seen if n == node]
        assert indexes == sorted(indexes) and len(indexes) >= result.acked


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "nodes must be in 1..9"),
        ({"seed": -1}, "seed must be in"),
        ({"tick_ns": 0}, "tick_ns must be >= 1"),
        ({"liveness_ticks": 0}, "liveness_ticks in 1.."),
        ({"faults": ("fire",)}, "unknown fault kind 'fire'"),
        ({"compact_entries": -1}, "compact_entries must be >= 0"),
        ({"propose_interval_ns": 0}, "propose_interval_ns and probe_interval_ns must be >= 1"),
    ],
)
def test_bad_config_raises_config_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_single_node_cluster() -> None:
    result = run(SimConfig(seed=1, nodes=1))
    assert result.ok and result.acked > 20 and result.progress_ns is not None
