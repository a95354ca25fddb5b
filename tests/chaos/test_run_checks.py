"""The run's checking path on hand-made and doctored histories: planted bugs must be caught.

`lost_writes` gets final values and histories where an acknowledged write was lost, where a
failed write took effect, where the final value was never written, and the legal cases next to
each (concurrent writes, uncertain writes). `check_history` runs the same path a real run uses
on a history file, including one recorded from a real (fake-KV) workload that is then doctored.
"""

from pathlib import Path
from typing import Any

import orjson

from haperf.chaos.runner import check_history, final_values, lost_writes


class H:
    """A tiny history builder: records in the order the calls are made."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.t = 0

    def add(self, process: Any, type: str, f: str, key: str | None, value: Any) -> "H":
        self.t += 1
        self.records.append(
            {"process": process, "type": type, "f": f, "key": key, "value": value, "time": self.t}
        )
        return self

    def write(self, p: int, v: int, outcome: str = "ok", key: str = "k0") -> "H":
        return self.add(p, "invoke", "write", key, v).add(p, outcome, "write", key, v)

    def read(self, p: int, v: Any, key: str = "k0") -> "H":
        return self.add(p, "invoke", "read", key, None).add(p, "ok", "read", key, v)

    def save(self, path: Path) -> Path:
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in self.records))
        return path


def test_sequential_writes_final_is_last_ok() -> None:
    h = H().write(1, 1).write(1, 2).read(9, 2)
    assert lost_writes(h.records, {"k0": 2}) == []
    assert final_values(h.records) == {"k0": 2}


def test_final_value_older_than_an_acknowledged_write_is_a_lost_write() -> None:
    h = H().write(1, 1).write(2, 2).read(9, 1)
    problems = lost_writes(h.records, {"k0": 1})
    assert len(problems) == 1 and "acknowledged writes were invoked after it" in problems[0]


def test_concurrent_writes_may_end_either_way() -> None:
    h = H().add(1, "invoke", "write", "k0", 1).add(2, "invoke", "write", "k0", 2)
    h.add(2, "ok", "write", "k0", 2).add(1, "ok", "write", "k0", 1)
    assert lost_writes(h.records, {"k0": 2}) == []
    assert lost_writes(h.records, {"k0": 1}) == []


def test_absent_final_value_with_acknowledged_writes_is_lost() -> None:
    h = H().write(1, 1).read(9, None)
    assert "final value is absent" in lost_writes(h.records, {"k0": None})[0]
    assert lost_writes(H().write(1, 1, "fail").records, {"k0": None}) == []


def test_phantom_and_failed_write_values_are_violations() -> None:
    h = H().write(1, 1).write(2, 2, "fail")
    assert "never written" in lost_writes(h.records, {"k0": 7})[0]
    assert "failed" in lost_writes(h.records, {"k0": 2})[0]


def test_uncertain_and_unfinished_writes_may_be_the_final_value() -> None:
    h = H().write(1, 1).write(2, 2, "info").add(3, "invoke", "write", "k0", 3)
    assert lost_writes(h.records, {"k0": 2}) == []
    assert lost_writes(h.records, {"k0": 3}) == []


def test_cas_counts_as_a_write_of_its_new_value() -> None:
    h = H().write(1, 1)
    h.add(1, "invoke", "cas", "k0", [1, 5]).add(1, "ok", "cas", "k0", [1, 5])
    h.write(1, 6)
    assert lost_writes(h.records, {"k0": 6}) == []
    assert "lost" in lost_writes(h.records, {"k0": 5})[0]


def test_nemesis_records_are_ignored_and_final_needs_a_read_after_everything() -> None:
    h = H().write(1, 1).add("nemesis", "info", "kill", None, {"phase": "start", "nodes": [1]})
    h.read(9, 1)
    assert final_values(h.records) == {"k0": 1}
    overlapped = H().add(1, "invoke", "write", "k0", 1).read(9, None).add(1, "ok", "write", "k0", 1)
    assert final_values(overlapped.records) == {}


def test_check_history_catches_a_planted_lost_write(tmp_path: Path) -> None:
    good = H().write(1, 1, key="k0").write(2, 2, key="k1").read(9, 1, key="k0").read(9, 2, "k1")
    report = check_history(good.save(tmp_path / "good.jsonl"))
    assert report["lost_writes"] == [] and report["final"] == {"k0": 1, "k1": 2}
    # Doctor it: the final read of k0 returns the value an acknowledged write replaced.
    bad = H().write(1, 1).write(1, 2).read(9, 1)
    report = check_history(bad.save(tmp_path / "bad.jsonl"))
    assert report["lost_writes"] and any("lost write" in v for v in report["violations"])
