"""Third-party history formats, and checking a corpus of them against its manifest.

Owns the parsers of the three formats in the lincheck corpus (see its README.md), each into the
same paired `Operation` list that haperf's own JSON-lines histories give:

- `etcd-jepsen-log`: `INFO  jepsen.util - <process> <:type> <:f> <value>` lines (tabs or runs
  of spaces), porcupine's copies of Jepsen's etcd test logs;
- `porcupine-kv-edn`: one EDN map per line, `:get`/`:put`/`:append` on string keys;
- `knossos-edn`: a vector, list or bare sequence of EDN operation maps; `:nemesis` records are
  skipped; `:txn` operations for the multi-register.

and `check_corpus(dir)` (one verdict per manifest entry, with times and mismatches), plus the
two functions the CLI calls: `cli_check` and `cli_check_corpus`.

Invariants: a file that does not follow its format raises HistoryFormatError naming the file,
the line and the problem; the line order is the real-time order in every format, so an
operation's call and return positions are its event indexes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from haperf.chaos.edn import EdnMap, Keyword, read_edn
from haperf.chaos.history import Operation, pair, read_history
from haperf.chaos.lincheck import MODELS, Model, Result, check, get_model
from haperf.errors import ConfigError, HistoryFormatError

FORMATS = ("haperf-jsonl", "etcd-jepsen-log", "porcupine-kv-edn", "knossos-edn")
# Which model each corpus model name maps to, and the model used by default for each format.
MODEL_FOR_FORMAT = {
    "haperf-jsonl": "cas-register",
    "etcd-jepsen-log": "etcd-cas-register",
    "porcupine-kv-edn": "kv-get-put-append",
    "knossos-edn": "knossos-cas-register",
}
# A corpus file bigger than this is refused (the corpus files are at most ~0.5 MB).
HISTORY_BYTES_MAX = 256 << 20
EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_UNKNOWN = 3

_ETCD_LINE = re.compile(r"INFO  jepsen\.util - (\d+)\s+(:\S+)\s+(:\S+)\s+(.*?)\s*")
_ETCD_VALUE = re.compile(r"nil|:timed-out|-?\d+|\[\s*(-?\d+|nil)\s+(-?\d+|nil)\s*\]")


@dataclass(frozen=True, slots=True)
class Event:
    """One invocation or completion, whatever the format; `line` is where it was read."""

    process: int
    type: str
    f: str
    key: str
    value: Any
    line: int


class _Pairer:
    """Pairs format-neutral events per process (the rules of haperf.chaos.history)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.open: dict[int, tuple[Event, int]] = {}  # process -> (invoke, operation index)
        self.ops: list[Operation | None] = []
        self.position = 0

    def add(self, event: Event) -> None:
        position = self.position
        self.position += 1
        pending = self.open.get(event.process)
        if event.type == "invoke":
            if pending is not None:
                raise HistoryFormatError(
                    f"{self.source}:{event.line}: process {event.process} invokes {event.f} "
                    f"while its {pending[0].f} from line {pending[0].line} is outstanding"
                )
            self.open[event.process] = (event, len(self.ops))
            self.ops.append(
                Operation(
                    event.process,
                    event.f,
                    event.key,
                    event.value,
                    None,
                    "info",
                    position,
                    None,
                    event.line,
                )
            )
            return
        if pending is None:
            raise HistoryFormatError(
                f"{self.source}:{event.line}: {event.type} {event.f} of process {event.process} "
                "has no invocation"
            )
        invoke, index = pending
        if (invoke.f, invoke.key) != (event.f, event.key):
            raise HistoryFormatError(
                f"{self.source}:{event.line}: process {event.process} completes {event.f} "
                f"{event.key!r} but invoked {invoke.f} {invoke.key!r} at line {invoke.line}"
            )
        del self.open[event.process]
        op = self.ops[index]
        assert op is not None
        ret = None if event.type == "info" else position
        self.ops[index] = replace(op, output=event.value, outcome=event.type, ret=ret)

    def result(self) -> list[Operation]:
        return [op for op in self.ops if op is not None]


def _source_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > HISTORY_BYTES_MAX:
            raise HistoryFormatError(f"{path}: {size} bytes is over {HISTORY_BYTES_MAX}")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HistoryFormatError(f"{path}: cannot read the history ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise HistoryFormatError(f"{path}: not UTF-8 text ({exc.reason})") from None


# --- etcd-jepsen-log -------------------------------------------------------------------------


def _etcd_value(text: str, source: str, line: int) -> Any:
    match = _ETCD_VALUE.fullmatch(text)
    if match is None:
        raise HistoryFormatError(
            f"{source}:{line}: value {text!r} is none of nil, :timed-out, an integer, [a b]"
        )
    if text in {"nil", ":timed-out"}:
        return None
    if match.group(1) is not None:
        return tuple(None if g == "nil" else int(g) for g in (match.group(1), match.group(2)))
    return int(text)


def parse_etcd_log(text: str, source: str = "<etcd log>") -> list[Operation]:
    """Parse porcupine's Jepsen etcd log lines; blank lines are skipped, anything else is an
    error. A `:fail :read` has an unknown result (the read timed out)."""
    pairer = _Pairer(source)
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        match = _ETCD_LINE.fullmatch(raw)
        if match is None:
            raise HistoryFormatError(
                f"{source}:{number}: not an 'INFO  jepsen.util - <process> <type> <f> <value>' "
                f"line: {raw[:80]!r}"
            )
        process, typ, f, value_text = match.groups()
        typ, f = typ[1:], f[1:]
        if typ not in ("invoke", "ok", "fail", "info"):
            raise HistoryFormatError(f"{source}:{number}: unknown type :{typ}")
        if f not in ("read", "write", "cas"):
            raise HistoryFormatError(f"{source}:{number}: unknown operation :{f}")
        value = _etcd_value(value_text, source, number)
        if f == "cas" and typ in ("invoke", "ok") and not isinstance(value, tuple):
            raise HistoryFormatError(f"{source}:{number}: a cas value is [expected new]")
        if f == "write" and typ in ("invoke", "ok") and not isinstance(value, int):
            raise HistoryFormatError(f"{source}:{number}: a write value is an integer")
        pairer.add(Event(int(process), typ, f, "", value, number))
    ops = pairer.result()
    # The invocation carries the argument; a read's completion carries what it read.
    return [
        replace(op, output=op.output if op.f == "read" and op.outcome == "ok" else None)
        for op in ops
    ]


# --- EDN formats -----------------------------------------------------------------------------


def _kw(value: object, what: str, source: str, line: int) -> str:
    if not isinstance(value, Keyword):
        raise HistoryFormatError(f"{source}:{line}: {what} must be a keyword, got {value!r}")
    return value.name


def _edn_maps(text: str, source: str) -> list[EdnMap]:
    forms = read_edn(text, source)
    if len(forms) == 1 and isinstance(forms[0], tuple):
        forms = list(forms[0])
    maps: list[EdnMap] = []
    for form in forms:
        if not isinstance(form, EdnMap):
            raise HistoryFormatError(
                f"{source}: expected operation maps (or one vector/list of them), got {form!r}"
            )
        maps.append(form)
    return maps


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2


def _micro_ops(value: object, source: str, line: int) -> tuple[tuple[str, str, Any], ...]:
    if not isinstance(value, tuple):
        raise HistoryFormatError(f"{source}:{line}: a txn value is a vector of micro-ops")
    out = []
    for micro in value:
        if not (isinstance(micro, tuple) and len(micro) == 3):
            raise HistoryFormatError(f"{source}:{line}: a micro-op is [f k v], got {micro!r}")
        f = _kw(micro[0], "a micro-op's f", source, line)
        if f not in ("read", "write"):
            raise HistoryFormatError(f"{source}:{line}: micro-op f is :read or :write, got :{f}")
        register = micro[1].name if isinstance(micro[1], Keyword) else micro[1]
        if not isinstance(register, str | int):
            raise HistoryFormatError(f"{source}:{line}: bad register {micro[1]!r}")
        out.append((f, str(register), micro[2]))
    return tuple(out)


_EDN_FUNCTIONS = {
    "knossos-edn": ("read", "write", "cas", "txn"),
    "porcupine-kv-edn": ("get", "put", "append"),
}


def parse_edn_history(text: str, fmt: str, source: str = "<edn>") -> list[Operation]:
    """Parse a `knossos-edn` or `porcupine-kv-edn` history (nemesis records skipped)."""
    functions = _EDN_FUNCTIONS[fmt]
    pairer = _Pairer(source)
    for m in _edn_maps(text, source):
        line = m.line
        process = m.get(Keyword("process"))
        if process == Keyword("nemesis"):
            continue
        if not isinstance(process, int) or isinstance(process, bool) or process < 0:
            raise HistoryFormatError(
                f"{source}:{line}: :process must be an integer, got {process!r}"
            )
        for name in ("type", "f"):
            if Keyword(name) not in m:
                raise HistoryFormatError(f"{source}:{line}: the map has no :{name}")
        typ = _kw(m[Keyword("type")], ":type", source, line)
        f = _kw(m[Keyword("f")], ":f", source, line)
        if typ not in ("invoke", "ok", "fail", "info"):
            raise HistoryFormatError(f"{source}:{line}: unknown :type :{typ}")
        if f not in functions:
            raise HistoryFormatError(
                f"{source}:{line}: :f :{f} is not one of {', '.join(functions)} ({fmt})"
            )
        value = m.get(Keyword("value"))
        key = ""
        if fmt == "porcupine-kv-edn":
            key_value = m.get(Keyword("key"))
            if not isinstance(key_value, str):
                raise HistoryFormatError(f"{source}:{line}: :key must be a string")
            key = key_value
            if value is not None and not isinstance(value, str):
                raise HistoryFormatError(f"{source}:{line}: :value must be a string or nil")
        elif f == "txn":
            value = _micro_ops(value, source, line)
        elif f == "cas" and typ in {"invoke", "ok"} and not _is_pair(value):
            raise HistoryFormatError(f"{source}:{line}: a cas value is [expected new]")
        pairer.add(Event(process, typ, f, key, value, line))
    ops = pairer.result()
    out = []
    for op in ops:
        if op.outcome == "ok" and op.f in ("read", "get", "txn"):
            out.append(op)  # the completion's value is what was read
        else:
            out.append(replace(op, output=None))
    return out


# --- one file --------------------------------------------------------------------------------


def sniff_format(path: Path, text: str) -> str:
    """Guess a history file's format: `.jsonl` files are haperf's, else from the content."""
    if path.suffix == ".jsonl":
        return "haperf-jsonl"
    head = text.lstrip()[:200]
    if head.startswith("INFO  jepsen.util"):
        return "etcd-jepsen-log"
    if head.startswith('{"') or head.startswith('{ "'):
        return "haperf-jsonl"
    if ":key" in text[:2000] and (":append" in text or ":get" in text or ":put" in text):
        return "porcupine-kv-edn"
    if head[:1] in ("[", "(", "{", ";"):
        return "knossos-edn"
    raise HistoryFormatError(
        f"{path}: cannot tell the history format from its first line; pass it explicitly "
        f"(one of {', '.join(FORMATS)})"
    )


def load(path: str | Path, fmt: str | None = None) -> tuple[str, list[Operation]]:
    """Read a history file in `fmt` (None: sniffed) -> (format, paired operations)."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown history format {fmt!r}; choose one of {', '.join(FORMATS)}")
    text = _source_text(path)
    fmt = fmt or sniff_format(path, text)
    if fmt == "haperf-jsonl":
        return fmt, pair(read_history(path), str(path))
    if fmt == "etcd-jepsen-log":
        return fmt, parse_etcd_log(text, str(path))
    return fmt, parse_edn_history(text, fmt, str(path))


def check_file(
    path: str | Path,
    model: str | Model | None = None,
    *,
    fmt: str | None = None,
    timeout_s: float | None = None,
) -> Result:
    """Load one history file and check it (model None: the format's default model)."""
    fmt, ops = load(path, fmt)
    return check(ops, get_model(model or MODEL_FOR_FORMAT[fmt]), timeout_s=timeout_s)


# --- a corpus by its manifest ----------------------------------------------------------------

CORPUS_ENV = "HAPERF_LINCHECK_CORPUS"


def corpus_candidates() -> list[Path]:
    """Where the lincheck corpus is looked for, in order: $HAPERF_LINCHECK_CORPUS, then
    `<checkout>/../shared/lincheck-corpus` (a source checkout's sibling), then
    /work/shared/lincheck-corpus."""
    import os

    found = [Path(os.environ[CORPUS_ENV])] if os.environ.get(CORPUS_ENV) else []
    checkout = Path(__file__).resolve().parents[3]
    found += [checkout.parent / "shared" / "lincheck-corpus", Path("/work/shared/lincheck-corpus")]
    return found


def find_corpus() -> Path | None:
    """The first corpus_candidates() directory holding a manifest.json, or None."""
    for candidate in corpus_candidates():
        if (candidate / "manifest.json").is_file():
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """One manifest entry's outcome: expected vs got, and the wall time it took."""

    path: str
    format: str
    model: str
    expected: str
    got: str
    elapsed_ns: int
    operations: int
    explanation: str = ""

    @property
    def matched(self) -> bool:
        return self.expected == self.got


@dataclass(slots=True)
class CorpusReport:
    """Every file's verdict, in manifest order, and the per-set summary."""

    directory: str
    files: list[FileVerdict] = field(default_factory=list)

    @property
    def mismatches(self) -> list[FileVerdict]:
        return [f for f in self.files if not f.matched]

    @property
    def elapsed_ns(self) -> int:
        return sum(f.elapsed_ns for f in self.files)

    def by_set(self) -> dict[str, dict[str, Any]]:
        """Per directory of the corpus: files, matched, verdict counts, total and max time."""
        sets: dict[str, dict[str, Any]] = {}
        for f in self.files:
            name = str(Path(f.path).parent)
            s = sets.setdefault(
                name,
                {
                    "files": 0,
                    "matched": 0,
                    "linearizable": 0,
                    "not-linearizable": 0,
                    "unknown": 0,
                    "elapsed_ns": 0,
                    "max_ns": 0,
                    "slowest": "",
                },
            )
            s["files"] += 1
            s["matched"] += f.matched
            s[f.got] += 1
            s["elapsed_ns"] += f.elapsed_ns
            if f.elapsed_ns > s["max_ns"]:
                s["max_ns"], s["slowest"] = f.elapsed_ns, Path(f.path).name
        return sets

    def table(self) -> str:
        """A Markdown table of the per-set summary (as docs/chaos.md shows it)."""
        rows = [
            "| set | files | matched | linearizable | not linearizable | unknown | time | "
            "slowest file |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, s in self.by_set().items():
            rows.append(
                f"| `{name}/` | {s['files']} | {s['matched']} | {s['linearizable']} | "
                f"{s['not-linearizable']} | {s['unknown']} | {s['elapsed_ns'] / 1e6:.0f} ms | "
                f"{s['slowest']} ({s['max_ns'] / 1e6:.0f} ms) |"
            )
        total = len(self.files)
        matched = total - len(self.mismatches)
        rows.append(f"| **total** | {total} | {matched} | | | | {self.elapsed_ns / 1e6:.0f} ms | |")
        return "\n".join(rows)


def _verdict(result: Result) -> str:
    if result.linearizable is None:
        return "unknown"
    return "linearizable" if result.linearizable else "not-linearizable"


def _model_for_entry(entry: dict[str, Any], failed_cas: str | None) -> Model:
    name = entry["model"]["name"]
    model = get_model(name)
    initial = entry["model"].get("initial", model.initial)
    if model.kind == "multi-register" and isinstance(initial, dict):
        initial = tuple(sorted(initial.items()))
    if model.kind != "kv" and initial != model.initial:
        model = replace(model, initial=initial)
    if failed_cas is not None and model.kind == "register":
        model = replace(model, failed_cas=failed_cas)
    return model


def read_manifest(directory: Path) -> list[dict[str, Any]]:
    manifest = directory / "manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{manifest}: cannot read the corpus manifest ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise HistoryFormatError(f"{manifest}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise HistoryFormatError(f"{manifest}: no 'files' list")
    for i, entry in enumerate(files):
        if not (isinstance(entry, dict) and {"path", "format", "model", "expected"} <= set(entry)):
            raise HistoryFormatError(f"{manifest}: files[{i}] lacks path/format/model/expected")
        if entry["format"] not in FORMATS or entry["model"].get("name") not in MODELS:
            raise HistoryFormatError(
                f"{manifest}: files[{i}] has an unknown format or model: {entry['format']!r}, "
                f"{entry['model'].get('name')!r}"
            )
    return files


def check_corpus(
    directory: str | Path,
    *,
    timeout_s: float | None = None,
    select: Callable[[str], bool] | None = None,
    failed_cas: str | None = None,
    verify_sha256: bool = True,
    clock: Callable[[], int] = time.perf_counter_ns,
    on_file: Callable[[FileVerdict], None] | None = None,
) -> CorpusReport:
    """Check every history `manifest.json` lists (or those `select(path)` keeps).

    `timeout_s` bounds each file. `failed_cas` overrides the register models' reading of a
    failed cas ("absent" = Knossos, "observed" = porcupine). A file whose sha256 differs from
    the manifest's raises HistoryFormatError (the corpus must be the one the verdicts are for).
    """
    root = Path(directory)
    report = CorpusReport(str(root))
    for entry in read_manifest(root):
        rel = entry["path"]
        if select is not None and not select(rel):
            continue
        path = root / rel
        if verify_sha256 and "sha256" in entry:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                raise HistoryFormatError(f"{path}: cannot read ({exc.strerror})") from None
            if digest != entry["sha256"]:
                raise HistoryFormatError(f"{path}: sha256 {digest} differs from the manifest's")
        model = _model_for_entry(entry, failed_cas)
        start = clock()
        _, ops = load(path, entry["format"])
        result = check(ops, model, timeout_s=timeout_s)
        elapsed = clock() - start
        verdict = FileVerdict(
            rel,
            entry["format"],
            model.name,
            entry["expected"],
            _verdict(result),
            elapsed,
            result.operations,
            "" if result.linearizable else result.explanation,
        )
        report.files.append(verdict)
        if on_file is not None:
            on_file(verdict)
    return report


# --- CLI entry points (python -m haperf chaos check / check-corpus) --------------------------


def cli_check(
    path: str | Path,
    model: str | None = None,
    timeout_s: float | None = None,
    out: IO[str] | None = None,
    *,
    fmt: str | None = None,
) -> int:
    """Check one history file and print the verdict (and the explanation of a violation).

    Exit code: 0 linearizable, 1 not linearizable, 3 unknown (timed out). Bad input raises
    HistoryFormatError, a bad model or format ConfigError (the CLI maps them to 1 and 2).
    """
    result = check_file(path, model, fmt=fmt, timeout_s=timeout_s)
    write = out.write if out is not None else _stdout_write
    verdict = _verdict(result)
    write(
        f"{path}: {verdict} ({result.model}, {result.operations} operations, "
        f"{result.partitions} partition(s), {result.elapsed_ns / 1e6:.1f} ms)\n"
    )
    if result.linearizable is not True:
        write(result.explanation + "\n")
    if result.linearizable is None:
        return EXIT_UNKNOWN
    return EXIT_OK if result.linearizable else EXIT_VIOLATION


def cli_check_corpus(
    directory: str | Path,
    out: IO[str] | None = None,
    *,
    timeout_s: float | None = None,
    select: str | None = None,
    failed_cas: str | None = None,
    verbose: bool = False,
) -> int:
    """Check a corpus by its manifest; print a line per mismatch (per file with `verbose`) and
    the per-set table. Exit code 0 when every verdict matches, 1 otherwise. `select` keeps the
    manifest paths containing that substring."""
    write = out.write if out is not None else _stdout_write

    def on_file(v: FileVerdict) -> None:
        if verbose or not v.matched:
            mark = "ok" if v.matched else "MISMATCH"
            write(
                f"{mark:8} {v.path}: expected {v.expected}, got {v.got} "
                f"({v.elapsed_ns / 1e6:.1f} ms)\n"
            )

    keep = None if select is None else (lambda rel: select in rel)
    report = check_corpus(
        directory, timeout_s=timeout_s, select=keep, failed_cas=failed_cas, on_file=on_file
    )
    write(report.table() + "\n")
    if not report.files:
        write("no file of the manifest was selected\n")
        return EXIT_VIOLATION
    bad = report.mismatches
    write(
        f"{len(report.files) - len(bad)} of {len(report.files)} verdicts match the manifest"
        f" ({report.elapsed_ns / 1e9:.2f} s)\n"
    )
    return EXIT_OK if not bad else EXIT_VIOLATION


def _stdout_write(text: str) -> int:
    return sys.stdout.write(text)
