"""Planted bugs: the harness's checking path must flag histories that are not linearizable.

Three ways in, all through `check_history` (what a real run calls) and lincheck:
- a history recorded from a correct store is accepted, and the same history with one read
  doctored to return an overwritten value (a stale read) is rejected;
- the workload against a store that serves reads from a lagging replica (the bug ReadIndex
  exists to prevent) is rejected;
- the workload against a store that acknowledges writes it then forgets (a lost write) is
  rejected by lincheck (test_run_checks.py shows the direct lost-write check on its own).
"""

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson

from haperf.chaos.runner import check_history
from haperf.chaos.workload import HistoryLog, Workload, WorkloadConfig


class Store:
    """A linearizable register per key, plus optional planted bugs."""

    def __init__(self, *, stale_reads: bool = False, forget_writes: bool = False) -> None:
        self.data: dict[str, str] = {}
        self.replica: dict[str, str] = {}  # lags one write behind `data`
        self.stale_reads = stale_reads
        self.forget_writes = forget_writes
        self.rng = random.Random(5)

    def write(self, key: str, value: str) -> None:
        if key in self.data:
            self.replica[key] = self.data[key]
        if self.forget_writes and self.rng.random() < 0.2:
            return  # acknowledged, never applied
        self.data[key] = value

    def read(self, key: str) -> str | None:
        if self.stale_reads and self.rng.random() < 0.3 and key in self.replica:
            return self.replica[key]
        return self.data.get(key)


class Client:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str) -> Any:
        await asyncio.sleep(0)
        value = self.store.read(key)
        return None if value is None else value.encode()

    async def set(self, key: str, value: Any) -> Any:
        await asyncio.sleep(0)
        self.store.write(key, value)
        await asyncio.sleep(0)
        return True

    async def cas(self, key: str, expected: Any, new: Any) -> Any:
        await asyncio.sleep(0)
        if self.store.data.get(key) != expected:
            return False
        self.store.write(key, new)
        return True

    async def close(self) -> None:
        return None


def record(store: Store, path: Path, ops: int = 600) -> Path:
    history = HistoryLog(path)

    async def connect(address: str, follow: bool) -> Client:
        return Client(store)

    workload = Workload(
        WorkloadConfig(clients=4, keys=2, seed=11, ops_max=ops), ["a:1"], connect, history
    )

    async def body() -> None:
        await workload.run(60_000_000_000)
        await workload.final_reads()

    asyncio.run(asyncio.wait_for(body(), 60))
    history.close()
    return path


def test_correct_store_passes_and_a_doctored_stale_read_is_caught(tmp_path: Path) -> None:
    path = record(Store(), tmp_path / "good.jsonl")
    report = check_history(path)
    assert report["violations"] == [], report
    assert report["linearizable"]["verdict"] == "linearizable"
    # Doctor one ok read: make it return the value the key held two writes earlier, choosing a
    # read that started after both later writes had completed (so it is certainly stale).
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    doctored = _plant_stale_read(records)
    bad = tmp_path / "doctored.jsonl"
    bad.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in doctored))
    report = check_history(bad)
    assert report["linearizable"]["verdict"] == "NOT linearizable", report
    assert any("linearizability" in v for v in report["violations"])


def _plant_stale_read(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    completed_writes: dict[str, list[Any]] = {}
    open_ops: dict[Any, dict[str, Any]] = {}
    for i, rec in enumerate(records):
        if rec["type"] == "invoke":
            open_ops[rec["process"]] = {
                **rec,
                "at": i,
                "writes_done": len(completed_writes.get(rec["key"], [])),
            }
            continue
        inv = open_ops.pop(rec["process"])
        if rec["type"] == "ok" and rec["f"] in ("write", "cas"):
            new = rec["value"] if rec["f"] == "write" else rec["value"][1]
            completed_writes.setdefault(rec["key"], []).append(new)
        if rec["type"] == "ok" and rec["f"] == "read" and inv["writes_done"] >= 3:
            # Writes that completed before this read began: it must see the last (or later).
            # Only the concurrent-free case is doctored: no write of this key was in flight.
            in_flight = any(o["key"] == rec["key"] and o["f"] != "read" for o in open_ops.values())
            if not in_flight and rec["value"] == completed_writes[rec["key"]][-1]:
                stale = completed_writes[rec["key"]][-3]
                out = [dict(r) for r in records]
                out[i]["value"] = stale
                return out
    raise AssertionError("no read suitable for planting a stale value")


def test_reads_from_a_lagging_replica_are_caught(tmp_path: Path) -> None:
    report = check_history(record(Store(stale_reads=True), tmp_path / "stale.jsonl"))
    assert report["linearizable"]["verdict"] == "NOT linearizable", report


def test_forgotten_acknowledged_writes_are_caught(tmp_path: Path) -> None:
    report = check_history(record(Store(forget_writes=True), tmp_path / "lost.jsonl"))
    assert report["linearizable"]["verdict"] == "NOT linearizable", report
