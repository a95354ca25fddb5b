"""The workload against an in-memory KV: outcome mapping, process retirement, unique values.

The fake KV applies operations atomically to a dict (so it is linearizable) and can be told to
fail the next calls in specific ways: before applying (refused, not leader, dropped), or after
applying (commit unknown, connection lost) - the second kind must be recorded as `info`, never
`fail`, because the write did happen.
"""

import asyncio
from collections import deque
from typing import Any

import orjson
import pytest

from haperf.chaos.workload import (
    HistoryLog,
    Workload,
    WorkloadConfig,
    classify,
    decode,
)
from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedError,
)

BEFORE = "before"
AFTER = "after"


class FakeStore:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.faults: deque[tuple[str, BaseException]] = deque()
        self.applied: list[tuple[str, str, Any]] = []


class FakeKV:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.closed = False

    def _maybe_fail(self, when: str) -> None:
        if self.store.faults and self.store.faults[0][0] == when:
            _, exc = self.store.faults.popleft()
            raise exc

    async def get(self, key: str) -> Any:
        await asyncio.sleep(0)
        self._maybe_fail(BEFORE)
        value = self.store.data.get(key)
        self._maybe_fail(AFTER)
        return None if value is None else value.encode()

    async def set(self, key: str, value: Any) -> Any:
        await asyncio.sleep(0)
        self._maybe_fail(BEFORE)
        self.store.data[key] = value
        self.store.applied.append(("write", key, value))
        self._maybe_fail(AFTER)
        return True

    async def cas(self, key: str, expected: Any, new: Any) -> Any:
        await asyncio.sleep(0)
        self._maybe_fail(BEFORE)
        if self.store.data.get(key) != expected:
            return False
        self.store.data[key] = new
        self.store.applied.append(("cas", key, new))
        self._maybe_fail(AFTER)
        return True

    async def close(self) -> None:
        self.closed = True


def run_workload(
    store: FakeStore, config: WorkloadConfig, tmp_path: Any
) -> tuple[Workload, list[dict[str, Any]]]:
    history = HistoryLog(tmp_path / "history.jsonl")

    async def connect(address: str, follow: bool) -> FakeKV:
        return FakeKV(store)

    workload = Workload(
        config,
        ["a:1", "b:2", "c:3"],
        connect,
        history,
    )

    async def body() -> None:
        await workload.run(60_000_000_000)
        await workload.final_reads()

    asyncio.run(asyncio.wait_for(body(), 60))
    history.close()
    lines = (tmp_path / "history.jsonl").read_bytes().splitlines()
    return workload, [orjson.loads(line) for line in lines]


def test_classify_fail_only_when_definitely_not_applied() -> None:
    for exc in (ProposalDroppedError("x"), NotLeaderError(2, 1), ConnectionRefusedError()):
        assert classify(exc) == "fail"
    for exc2 in (
        CommitUnknownError("x"),
        NodeStoppedError("x"),
        TimeoutError(),
        ConnectionResetError(),
        EOFError(),
        OSError("broken"),
    ):
        assert classify(exc2) == "info"


def test_decode() -> None:
    assert decode(None) is None
    assert decode(b"17") == 17
    assert decode("x") == "x"
    assert decode(5) == 5


def test_history_is_well_formed_and_values_are_unique(tmp_path: Any) -> None:
    store = FakeStore()
    workload, records = run_workload(
        store, WorkloadConfig(clients=4, keys=2, seed=3, ops_max=400), tmp_path
    )
    open_ops: dict[Any, dict[str, Any]] = {}
    written: list[Any] = []
    for rec in records:
        assert set(rec) == {"process", "type", "f", "key", "value", "time"}
        if rec["type"] == "invoke":
            assert rec["process"] not in open_ops, "a process has one op in flight"
            open_ops[rec["process"]] = rec
            if rec["f"] == "write":
                written.append(rec["value"])
            elif rec["f"] == "cas":
                written.append(rec["value"][1])
        else:
            inv = open_ops.pop(rec["process"])
            assert (inv["f"], inv["key"]) == (rec["f"], rec["key"])
    assert not open_ops
    assert len(written) == len(set(written))
    times = [r["time"] for r in records]
    assert times == sorted(times)
    counts = workload.stats.counts
    assert counts["read"]["ok"] > 0 and counts["write"]["ok"] > 0 and counts["cas"]["ok"] > 0
    # The fake is linearizable and never faults: every failed cas really found another value.
    assert sum(c["info"] for c in counts.values()) == 0
    # Final reads see the store's last values.
    finals = [r for r in records[-2 * 2 :] if r["type"] == "ok"]
    assert {r["key"]: r["value"] for r in finals} == {k: int(v) for k, v in store.data.items()}


@pytest.mark.parametrize(
    ("when", "exc", "outcome"),
    [
        (BEFORE, ProposalDroppedError("dropped"), "fail"),
        (BEFORE, NotLeaderError(0, 1), "fail"),
        (BEFORE, ConnectionRefusedError(), "fail"),
        (AFTER, CommitUnknownError("unknown"), "info"),
        (AFTER, ConnectionResetError("lost after send"), "info"),
        (AFTER, NodeStoppedError("stopping"), "info"),
    ],
)
def test_error_outcomes_and_process_retirement(
    tmp_path: Any, when: str, exc: BaseException, outcome: str
) -> None:
    store = FakeStore()
    store.faults.extend([(when, exc)] * 3)
    workload, records = run_workload(
        store, WorkloadConfig(clients=1, keys=1, seed=1, ops_max=40), tmp_path
    )
    outcomes = [r["type"] for r in records if r["type"] != "invoke"]
    assert outcomes[:3] == [outcome] * 3
    processes = [r["process"] for r in records]
    if outcome == "info":
        # Each info retires its process: the next op runs under a new id.
        assert processes[0] != processes[2] != processes[4]
        assert workload.stats.processes == 1 + 3
    else:
        assert processes[0] == processes[2] == processes[4]
        assert workload.stats.processes == 1


def test_timeout_is_info(tmp_path: Any) -> None:
    class Slow(FakeKV):
        async def set(self, key: str, value: Any) -> Any:
            await asyncio.sleep(3600)

    store = FakeStore()
    history = HistoryLog(tmp_path / "h.jsonl")

    async def connect(address: str, follow: bool) -> FakeKV:
        return Slow(store)

    workload = Workload(
        WorkloadConfig(clients=1, keys=1, read_p=0.0, write_p=1.0, op_timeout_ns=50_000_000),
        ["a:1"],
        connect,
        history,
    )
    asyncio.run(asyncio.wait_for(workload.run(200_000_000), 30))
    assert workload.stats.counts["write"]["info"] >= 1
    assert workload.stats.counts["write"]["ok"] == 0


def test_bad_config() -> None:
    for kwargs in (
        {"clients": 0},
        {"keys": 0},
        {"read_p": 0.8, "write_p": 0.5},
        {"op_timeout_ns": 0},
    ):
        with pytest.raises(ConfigError):
            WorkloadConfig(**kwargs)  # type: ignore[arg-type]
