"""Operation histories: the JSON-lines record (NODE_API.md section 6) and invoke/completion pairing.

A history file holds one JSON object per line, in real-time order:

    {"process": 3, "type": "invoke", "f": "cas", "key": "k1", "value": [1, 2], "time": 1234}

Owns `Op` (one event), `read_history` / `parse_history` (strict parsing: any problem raises
HistoryFormatError naming the file, the line and what was wrong), `HistoryWriter` (the same rules
applied while writing, so a harness cannot record a history this module would reject), and
`pair` (events -> `Operation`s, one per invocation, the form every checker works on).

Invariants:
- The line order is the real-time order, and `time` never decreases along the file.
- A process has at most one outstanding operation. A completion names the same f and key as its
  invocation. `ok`: it happened; `fail`: it definitely did not happen; `info` (or no completion
  at all): unknown, it may take effect at any time after its invocation, or never.
- A process may invoke again after an `info` (Jepsen retires the id instead; both are accepted):
  the uncertain operation simply stays pending forever.
- Records whose process is "nemesis" (fault injections, Jepsen's convention) are not client
  operations: the reader checks they are objects with a string `f` and an integer `time`, and
  skips them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from haperf.errors import HistoryFormatError

TYPES = ("invoke", "ok", "fail", "info")
FUNCTIONS = ("read", "write", "cas")
FIELDS = ("process", "type", "f", "key", "value", "time")
NEMESIS = "nemesis"
# A history line longer than this is not a history line (a guard against reading binary junk).
LINE_BYTES_MAX = 1 << 20

Value = int | str | None


@dataclass(frozen=True, slots=True)
class Op:
    """One history event: an invocation or a completion of one client operation.

    `value`: write -> the value written; cas -> (expected, new); read -> None at invoke, the value
    read (None = absent) at `ok`. `time` is in ns (any monotonic origin).
    """

    process: int
    type: str
    f: str
    key: str
    value: Value | tuple[Value, Value]
    time: int

    def to_json(self) -> bytes:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        record = {
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "key": self.key,
            "value": value,
            "time": self.time,
        }
        return orjson.dumps(record)


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation after pairing its invocation with its completion.

    `value` is the invocation's argument (write value, cas pair, ...), `output` the completion's
    value (what a read returned). `outcome` is "ok", "fail" or "info"; an operation that never
    completed is "info". `call` and `ret` are positions in the event order (the real-time
    order); `ret` is None when the operation may take effect at any later time (info).
    `line` is where the invocation was read, for messages.
    """

    process: int
    f: str
    key: str
    value: Any
    output: Any
    outcome: str
    call: int
    ret: int | None
    line: int = 0


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_value(x: object) -> bool:
    return x is None or _is_int(x) or isinstance(x, str)


def _fail(source: str, line: int, problem: str) -> HistoryFormatError:
    return HistoryFormatError(f"{source}:{line}: {problem}")


def op_from_record(record: object, source: str = "<history>", line: int = 0) -> Op:
    """Validate one decoded JSON record and return it as an Op (HistoryFormatError if bad)."""
    if not isinstance(record, dict):
        raise _fail(source, line, f"expected a JSON object, got {type(record).__name__}")
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise _fail(source, line, f"missing field(s) {', '.join(missing)}")
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        raise _fail(source, line, f"unknown field(s) {', '.join(extra)}")
    process, typ, f, key = record["process"], record["type"], record["f"], record["key"]
    value, time = record["value"], record["time"]
    if not _is_int(process) or process < 0:
        raise _fail(source, line, f"process must be a non-negative integer, got {process!r}")
    if typ not in TYPES:
        raise _fail(source, line, f"type must be one of {', '.join(TYPES)}, got {typ!r}")
    if f not in FUNCTIONS:
        raise _fail(source, line, f"f must be one of {', '.join(FUNCTIONS)}, got {f!r}")
    if not isinstance(key, str):
        raise _fail(source, line, f"key must be a string, got {key!r}")
    if not _is_int(time) or time < 0:
        raise _fail(source, line, f"time must be a non-negative integer (ns), got {time!r}")
    parsed: Value | tuple[Value, Value]
    if f == "cas":
        if value is None and typ != "invoke":
            parsed = None
        elif isinstance(value, list) and len(value) == 2 and all(_is_value(v) for v in value):
            parsed = (value[0], value[1])
        else:
            raise _fail(source, line, f"cas value must be [expected, new], got {value!r}")
    elif not _is_value(value):
        raise _fail(source, line, f"{f} value must be null, an integer or a string, got {value!r}")
    else:
        parsed = value
    if f == "read" and typ == "invoke" and parsed is not None:
        raise _fail(source, line, f"a read invocation carries value null, got {value!r}")
    if f == "write" and typ == "invoke" and parsed is None:
        raise _fail(source, line, "a write invocation needs the value it writes, got null")
    return Op(process, typ, f, key, parsed, time)


def is_nemesis_record(record: object, source: str = "<history>", line: int = 0) -> bool:
    """True for a well-formed nemesis record (skipped by readers); False for anything else.

    A record with process "nemesis" must still have a string `f` and a non-negative integer
    `time`; otherwise it is a HistoryFormatError, not silently skipped.
    """
    if not (isinstance(record, dict) and record.get("process") == NEMESIS):
        return False
    if not isinstance(record.get("f"), str):
        raise _fail(source, line, f"a nemesis record needs a string f, got {record.get('f')!r}")
    time = record.get("time")
    if not isinstance(time, int) or isinstance(time, bool) or time < 0:
        raise _fail(source, line, f"a nemesis record needs an integer time, got {time!r}")
    return True


class _Pairing:
    """The per-process pairing rules, shared by the reader, the writer and pair()."""

    __slots__ = ("last_time", "open", "operations", "slots", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.open: dict[int, tuple[Op, int, int]] = {}  # process -> (invoke, position, line)
        self.operations: list[Operation | None] = []  # in invocation order
        self.slots: dict[int, int] = {}  # invocation position -> index in operations
        self.last_time = 0

    def add(self, op: Op, position: int, line: int) -> None:
        if op.time < self.last_time:
            raise _fail(
                self.source,
                line,
                f"time {op.time} is before the previous event's {self.last_time}: lines must "
                "be in real-time order",
            )
        self.last_time = op.time
        pending = self.open.get(op.process)
        if op.type == "invoke":
            if pending is not None:
                raise _fail(
                    self.source,
                    line,
                    f"process {op.process} invokes {op.f} while its {pending[0].f} from line "
                    f"{pending[2]} has not completed (one operation at a time per process)",
                )
            self.open[op.process] = (op, position, line)
            self.slots[position] = len(self.operations)
            self.operations.append(None)
            return
        if pending is None:
            raise _fail(
                self.source, line, f"{op.type} {op.f} of process {op.process} has no invocation"
            )
        invoke, call, invoke_line = pending
        if (invoke.f, invoke.key) != (op.f, op.key):
            raise _fail(
                self.source,
                line,
                f"process {op.process} completes {op.f} on key {op.key!r} but invoked "
                f"{invoke.f} on key {invoke.key!r} at line {invoke_line}",
            )
        if op.f != "read" and op.value is not None and op.value != invoke.value:
            raise _fail(
                self.source,
                line,
                f"{op.f} completion value {op.value!r} differs from the invocation's "
                f"{invoke.value!r} (line {invoke_line})",
            )
        del self.open[op.process]
        output = op.value if op.f == "read" and op.type == "ok" else None
        ret = None if op.type == "info" else position
        self._finish(invoke, call, invoke_line, output=output, outcome=op.type, ret=ret)

    def _finish(
        self, invoke: Op, call: int, line: int, *, output: Any, outcome: str, ret: int | None
    ) -> None:
        self.operations[self.slots[call]] = Operation(
            invoke.process, invoke.f, invoke.key, invoke.value, output, outcome, call, ret, line
        )

    def result(self) -> list[Operation]:
        for invoke, call, line in list(self.open.values()):
            self._finish(invoke, call, line, output=None, outcome="info", ret=None)
        self.open.clear()
        done = [op for op in self.operations if op is not None]
        assert len(done) == len(self.operations), "every invocation was given an operation"
        return done


def pair(events: Iterable[Op], source: str = "<history>") -> list[Operation]:
    """Pair each invocation with its process's next completion, in invocation order.

    Raises HistoryFormatError (naming the event's index as its line) when the events break the
    rules in this module's docstring. Invocations that never complete become `info`.
    """
    pairing = _Pairing(source)
    for position, op in enumerate(events):
        pairing.add(op, position, position + 1)
    return pairing.result()


def _lines(stream: IO[bytes], source: str) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(stream, start=1):
        if len(raw) > LINE_BYTES_MAX:
            raise _fail(source, number, f"line is longer than {LINE_BYTES_MAX} bytes")
        yield number, raw


def parse_history(data: bytes | Iterable[bytes], source: str = "<history>") -> list[Op]:
    """Parse JSON-lines history bytes into Ops, checking every rule of this module.

    Blank lines are allowed (a trailing newline); anything else that is not a valid record,
    or breaks the pairing rules, raises HistoryFormatError naming `source`, the line and why.
    """
    lines: Iterable[bytes] = data.splitlines() if isinstance(data, bytes) else data
    ops: list[Op] = []
    pairing = _Pairing(source)
    for number, raw in enumerate(lines, start=1):
        if len(raw) > LINE_BYTES_MAX:
            raise _fail(source, number, f"line is longer than {LINE_BYTES_MAX} bytes")
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _fail(source, number, f"not valid JSON ({exc})") from None
        if is_nemesis_record(record, source, number):
            continue
        op = op_from_record(record, source, number)
        pairing.add(op, len(ops), number)
        ops.append(op)
    pairing.result()
    return ops


def read_history(path: str | Path) -> list[Op]:
    """Read a JSON-lines history file (see parse_history); HistoryFormatError if it is bad."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return parse_history((raw for _, raw in _lines(stream, str(path))), str(path))
    except OSError as exc:
        raise HistoryFormatError(f"{path}: cannot read the history ({exc.strerror})") from None


def read_operations(path: str | Path) -> list[Operation]:
    """read_history() then pair(): the paired operations of a JSON-lines history file."""
    return pair(read_history(path), str(path))


class HistoryWriter:
    """Append history events to a JSON-lines file, enforcing the reader's rules as it goes.

        with HistoryWriter(path) as history:
            history.invoke(1, "write", "k", 3, now_ns)
            history.ok(1, "write", "k", 3, now_ns)

    A record that would make the file unreadable (bad field, a second outstanding operation for
    one process, time going backwards) raises HistoryFormatError and is not written. Each event
    is written (and flushed) as one line, so a crash loses at most the line being written.
    """

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self._stream: IO[bytes] | None = self.path.open("ab" if append else "wb")
        self._pairing = _Pairing(str(self.path))
        self._count = 0

    def write(self, op: Op) -> None:
        """Validate and write one event."""
        if self._stream is None:
            raise HistoryFormatError(f"{self.path}: the history writer is closed")
        record = orjson.loads(op.to_json())
        checked = op_from_record(record, str(self.path), self._count + 1)
        self._pairing.add(checked, self._count, self._count + 1)
        self._stream.write(op.to_json() + b"\n")
        self._stream.flush()
        self._count += 1

    def invoke(self, process: int, f: str, key: str, value: Any, time_ns: int) -> None:
        self.write(Op(process, "invoke", f, key, _freeze(value), time_ns))

    def ok(self, process: int, f: str, key: str, value: Any, time_ns: int) -> None:
        """It happened; a read's value is what it read (None: the key was absent)."""
        self.write(Op(process, "ok", f, key, _freeze(value), time_ns))

    def fail(self, process: int, f: str, key: str, value: Any, time_ns: int) -> None:
        """It definitely did not happen (nothing was applied)."""
        self.write(Op(process, "fail", f, key, _freeze(value), time_ns))

    def info(self, process: int, f: str, key: str, value: Any, time_ns: int) -> None:
        """Its outcome is unknown: it may take effect at any later time, or never."""
        self.write(Op(process, "info", f, key, _freeze(value), time_ns))

    @property
    def events(self) -> int:
        return self._count

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _freeze(value: Any) -> Value | tuple[Value, Value]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise HistoryFormatError(f"a cas value is [expected, new], got {value!r}")
        return (value[0], value[1])
    if not _is_value(value):
        raise HistoryFormatError(f"values are null, integers or strings, got {value!r}")
    result: Value = value
    return result


def to_jsonl(ops: Sequence[Op]) -> bytes:
    """The JSON-lines bytes of a list of events (what HistoryWriter would write)."""
    return b"".join(op.to_json() + b"\n" for op in ops)
