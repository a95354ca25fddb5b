"""The nemesis: schedules are a pure function of the seed; execution undoes every fault.

Schedule tests check determinism (same seed, same schedule; another seed, another one) and the
invariants (inside the run, non-overlapping, minority targets, only the asked kinds). Execution
tests drive a fake cluster (records kill/restart/pause/resume calls) and a real FaultProxy with
no listeners in use, checking each fault is put in force, undone, and recorded.
"""

import asyncio
import signal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.chaos.nemesis import (
    LEADER,
    NEMESIS_KINDS,
    Fault,
    Nemesis,
    make_schedule,
    parse_kinds,
)
from haperf.chaos.proxy import FaultProxy
from haperf.errors import ConfigError

S = 1_000_000_000


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    a = make_schedule(42, NEMESIS_KINDS, [1, 2, 3], 120 * S)
    b = make_schedule(42, NEMESIS_KINDS, [1, 2, 3], 120 * S)
    c = make_schedule(43, NEMESIS_KINDS, [1, 2, 3], 120 * S)
    assert a == b
    assert a != c
    assert {f.kind for f in a} == set(NEMESIS_KINDS)


@given(
    seed=st.integers(0, 2**32),
    n=st.sampled_from([3, 5]),
    duration_s=st.integers(0, 300),
    kinds=st.lists(st.sampled_from(NEMESIS_KINDS), unique=True),
)
def test_schedule_invariants(seed: int, n: int, duration_s: int, kinds: list[str]) -> None:
    nodes = list(range(1, n + 1))
    schedule = make_schedule(seed, kinds, nodes, duration_s * S)
    previous_end = 0
    for fault in schedule:
        assert fault.kind in kinds
        assert previous_end < fault.start_ns < fault.end_ns <= duration_s * S
        previous_end = fault.end_ns
        if fault.kind in ("kill", "pause"):
            assert fault.nodes == (LEADER,) or 1 <= len(fault.nodes) <= (n - 1) // 2
        if fault.shape == "halves":
            assert sorted(fault.nodes + fault.other) == nodes
            assert len(fault.nodes) <= (n - 1) // 2
        if fault.kind == "drop":
            assert 0.05 <= fault.drop_p <= 0.3
    if not kinds:
        assert schedule == []
    # Kinds come in rounds: the first len(kinds) faults are every kind once.
    first = [f.kind for f in schedule[: len(kinds)]]
    assert len(set(first)) == len(first)


def test_parse_kinds() -> None:
    assert parse_kinds("all") == NEMESIS_KINDS
    assert parse_kinds("none") == ()
    assert parse_kinds("partition, kill") == ("kill", "partition")
    with pytest.raises(ConfigError, match="unknown nemesis kind 'explode'"):
        parse_kinds("kill,explode")
    with pytest.raises(ConfigError):
        make_schedule(1, ["explode"], [1, 2, 3], S)


class FakeCluster:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def kill(self, id: int, sig: int = signal.SIGKILL) -> None:
        assert sig == signal.SIGKILL
        self.calls.append(("kill", id))

    def restart(self, id: int) -> None:
        self.calls.append(("restart", id))

    def pause(self, id: int) -> None:
        self.calls.append(("pause", id))

    def resume(self, id: int) -> None:
        self.calls.append(("resume", id))


def run_faults(faults: list[Fault], leader: int = 2) -> tuple[FakeCluster, list[Any], Any]:
    cluster = FakeCluster()
    records: list[tuple[str, str, dict[str, Any]]] = []
    seen_faults: list[dict[str, Any]] = []

    async def body() -> None:
        proxy = FaultProxy([1, 2, 3])
        nemesis = Nemesis(
            faults,
            cluster,
            proxy,
            lambda f, phase, value: records.append((f, phase, value)),
            leader=lambda: leader,
            nodes=[1, 2, 3],
        )
        for fault in faults:
            targets = await nemesis.apply(fault)
            seen_faults.append(proxy.faults())
            await nemesis.undo(fault, targets)
            assert proxy.faults() == {}
        await nemesis.heal_all()
        assert not nemesis.killed and not nemesis.paused

    asyncio.run(body())
    return cluster, records, seen_faults


def test_kill_and_pause_are_undone_and_leader_is_resolved_at_start() -> None:
    cluster, records, _ = run_faults(
        [Fault(0, 1, "kill", (LEADER,)), Fault(2, 3, "pause", (1, 3))], leader=2
    )
    assert cluster.calls == [
        ("kill", 2),
        ("restart", 2),
        ("pause", 1),
        ("pause", 3),
        ("resume", 1),
        ("resume", 3),
    ]
    assert records[0] == ("kill", "start", {"nodes": [2]})
    assert records[1] == ("kill", "stop", {"nodes": [2]})
    assert records[-1][0:2] == ("heal", "stop")


def test_network_faults_reach_the_proxy_and_are_healed() -> None:
    _, records, seen = run_faults(
        [
            Fault(0, 1, "partition", (1,), shape="halves", other=(2, 3)),
            Fault(0, 1, "partition", (3,), shape="one-way", direction="out"),
            Fault(0, 1, "partition", (3,), shape="one-way", direction="in"),
            Fault(0, 1, "partition", (LEADER,), shape="isolate-leader"),
            Fault(0, 1, "delay", (2,), delay_ns=50_000_000, jitter_ns=10),
            Fault(0, 1, "drop", (), drop_p=0.2),
        ],
        leader=1,
    )
    assert set(seen[0]) == {"1->2", "2->1", "1->3", "3->1"}
    assert set(seen[1]) == {"3->1", "3->2"}
    assert set(seen[2]) == {"1->3", "2->3"}
    assert set(seen[3]) == {"1->2", "2->1", "1->3", "3->1"}
    assert set(seen[4]) == {"2->1", "2->3"} and seen[4]["2->1"]["delay_ns"] == 50_000_000
    assert len(seen[5]) == 6 and all(v["drop_p"] == 0.2 for v in seen[5].values())
    starts = [r for r in records if r[1] == "start"]
    assert starts[3] == ("partition", "start", {"nodes": [1], "shape": "isolate-leader"})


def test_run_heals_everything_even_when_cancelled_mid_fault() -> None:
    cluster = FakeCluster()
    records: list[Any] = []

    async def body() -> None:
        proxy = FaultProxy([1, 2, 3])
        schedule = [Fault(0, 3600 * S, "kill", (3,))]
        nemesis = Nemesis(
            schedule,
            cluster,
            proxy,
            lambda *r: records.append(r),
            leader=lambda: 1,
            nodes=[1, 2, 3],
        )
        task = asyncio.ensure_future(nemesis.run())
        while not nemesis.killed:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not nemesis.killed

    asyncio.run(asyncio.wait_for(body(), 30))
    assert cluster.calls == [("kill", 3), ("restart", 3)]
    assert records[-1][0] == "heal"


def test_network_faults_without_a_proxy_are_a_config_error() -> None:
    async def body() -> None:
        nemesis = Nemesis([], FakeCluster(), None, lambda *r: None, leader=lambda: 1, nodes=[1])
        with pytest.raises(ConfigError):
            await nemesis.apply(Fault(0, 1, "drop", (), drop_p=0.1))

    asyncio.run(body())
