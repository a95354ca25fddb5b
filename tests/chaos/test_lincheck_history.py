"""haperf's JSON-lines history format: strict parsing, pairing, and the writer.

Owns the tests of haperf.chaos.history: a valid file round-trips through HistoryWriter and
read_history; every kind of bad line raises HistoryFormatError naming the file and line; the
pairing rules (one operation in flight per process, matching f and key, time order) hold in the
reader and the writer alike; a history the writer produced checks with lincheck.
"""

from pathlib import Path

import orjson
import pytest

from haperf.chaos.history import (
    HistoryWriter,
    Op,
    pair,
    parse_history,
    read_history,
    read_operations,
    to_jsonl,
)
from haperf.chaos.lincheck import check
from haperf.errors import HistoryFormatError


def _line(**fields: object) -> bytes:
    record = {"process": 0, "type": "invoke", "f": "read", "key": "k", "value": None, "time": 0}
    record.update(fields)
    return orjson.dumps(record)


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.invoke(1, "write", "k1", 3, 10)
        w.invoke(2, "cas", "k1", [3, 4], 11)
        w.ok(1, "write", "k1", 3, 12)
        w.invoke(3, "read", "k2", None, 13)
        w.info(2, "cas", "k1", [3, 4], 14)
        w.ok(3, "read", "k2", None, 15)
        w.invoke(1, "read", "k1", None, 16)
        w.ok(1, "read", "k1", 4, 17)
        w.invoke(4, "write", "k2", "text", 18)
        w.fail(4, "write", "k2", "text", 19)
        assert w.events == 10
    ops = read_history(path)
    assert ops[1] == Op(2, "invoke", "cas", "k1", (3, 4), 11)
    assert to_jsonl(ops) == path.read_bytes()
    paired = read_operations(path)
    assert [(o.f, o.outcome, o.output) for o in paired] == [
        ("write", "ok", None),
        ("cas", "info", None),
        ("read", "ok", None),
        ("read", "ok", 4),
        ("write", "fail", None),
    ]
    assert paired[1].ret is None and paired[0].ret == 2 and paired[0].line == 1
    assert check(ops).linearizable is True


def test_writer_refuses_what_the_reader_would_reject(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.invoke(1, "write", "k", 1, 5)
        with pytest.raises(HistoryFormatError, match="one operation at a time"):
            w.invoke(1, "read", "k", None, 6)
        with pytest.raises(HistoryFormatError, match="real-time order"):
            w.ok(1, "write", "k", 1, 4)
        with pytest.raises(HistoryFormatError, match="no invocation"):
            w.ok(2, "write", "k", 1, 7)
        with pytest.raises(HistoryFormatError, match=r"\[expected, new\]"):
            w.invoke(3, "cas", "k", [1, 2, 3], 8)
        w.ok(1, "write", "k", 1, 9)
    assert len(read_history(path)) == 2  # refused events were not written
    with pytest.raises(HistoryFormatError, match="closed"):
        w.invoke(1, "read", "k", None, 10)


BAD_LINES = [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (_line(process=-1), "process must be a non-negative integer"),
    (_line(process=True), "process must be a non-negative integer"),
    (_line(type="done"), "type must be one of"),
    (_line(f="incr"), "f must be one of"),
    (_line(key=5), "key must be a string"),
    (_line(time=1.5), "time must be a non-negative integer"),
    (_line(value=3), "a read invocation carries value null"),
    (_line(f="write", value=None), "a write invocation needs the value"),
    (_line(f="write", value=[1]), "write value must be null, an integer or a string"),
    (_line(f="cas", value=[1]), r"cas value must be \[expected, new\]"),
    (_line(f="cas", value=None), r"cas value must be \[expected, new\]"),
    (orjson.dumps({"process": 0, "type": "invoke"}), "missing field"),
    (_line(extra=1), "unknown field"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES, ids=[p for _, p in BAD_LINES])
def test_bad_lines_name_file_line_and_problem(tmp_path: Path, line: bytes, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_line(process=7) + b"\n\n" + line + b"\n")
    with pytest.raises(HistoryFormatError, match=f"bad.jsonl:3: .*{problem}"):
        read_history(path)


def test_pairing_errors() -> None:
    invoke = _line(f="write", value=1)
    with pytest.raises(HistoryFormatError, match=r"<h>:2: .*has no invocation"):
        parse_history(invoke + b"\n" + _line(process=1, type="ok", f="write", value=1), "<h>")
    with pytest.raises(HistoryFormatError, match="completes read on key 'k' but invoked write"):
        parse_history(invoke + b"\n" + _line(type="ok", value=1), "<h>")
    with pytest.raises(HistoryFormatError, match="completes write on key 'other'"):
        parse_history(invoke + b"\n" + _line(type="ok", f="write", key="other", value=1))
    with pytest.raises(HistoryFormatError, match="differs from the invocation"):
        parse_history(invoke + b"\n" + _line(type="ok", f="write", value=2))
    with pytest.raises(HistoryFormatError, match="before the previous event"):
        parse_history(_line(time=5) + b"\n" + _line(type="ok", time=4))


def test_a_process_may_invoke_again_after_info_and_the_old_op_stays_pending() -> None:
    ops = [
        Op(1, "invoke", "write", "k", 1, 0),
        Op(1, "info", "write", "k", 1, 1),
        Op(1, "invoke", "read", "k", None, 2),
        Op(1, "ok", "read", "k", 1, 3),
    ]
    paired = pair(ops)
    assert [o.outcome for o in paired] == ["info", "ok"]
    assert check(ops).linearizable is True


def test_nemesis_records_are_skipped_but_still_checked() -> None:
    nemesis = orjson.dumps(
        {"process": "nemesis", "type": "info", "f": "kill", "key": None,
         "value": {"phase": "start", "node": 2}, "time": 3}
    )  # fmt: skip
    ops = parse_history(_line(f="write", value=1) + b"\n" + nemesis + b"\n"
                        + _line(type="ok", f="write", value=1, time=4))  # fmt: skip
    assert [op.type for op in ops] == ["invoke", "ok"]
    broken = orjson.dumps({"process": "nemesis", "type": "info", "f": 3, "time": 1})
    with pytest.raises(HistoryFormatError, match="<h>:1: a nemesis record needs a string f"):
        parse_history(broken, "<h>")
    with pytest.raises(HistoryFormatError, match="needs an integer time"):
        parse_history(orjson.dumps({"process": "nemesis", "f": "kill"}), "<h>")


def test_unreadable_file_is_a_history_format_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryFormatError, match="cannot read the history"):
        read_history(tmp_path / "missing.jsonl")
