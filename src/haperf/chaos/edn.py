"""A small, strict EDN reader: the subset that Jepsen, Knossos and porcupine histories use.

Owns `read_edn(text, source) -> list[object]` (the top-level forms of a document) and `Keyword`.
Supported: maps `{}` (-> EdnMap, a dict that remembers its line), vectors `[]` and lists `()`
(-> tuple), keywords (`:type` -> Keyword("type")), strings with the usual escapes, integers,
`nil` (None), `true`/`false`, `;` comments, and commas as whitespace.

Invariants: anything else (floats, symbols, tags, sets, an unbalanced bracket, a map with an odd
number of forms, a string that never ends) raises HistoryFormatError naming the source and line;
nesting deeper than DEPTH_MAX is refused rather than recursed into.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from haperf.errors import HistoryFormatError

DEPTH_MAX = 64

# One match = the whitespace, commas and comments before a token (possessive: never given back,
# so a failing token cannot make the engine re-split them), then the token, or the end.
_TOKEN = re.compile(
    r"""
    (?:[\s,]+|;[^\n]*)*+
    (?:
        (?P<open>[\[({])
      | (?P<close>[\])}])
      | (?P<string>"(?:[^"\\]|\\.)*+")
      | (?P<keyword>:[^\s,;()\[\]{}"]+)
      | (?P<int>[-+]?\d+N?(?=[\s,;()\[\]{}"]|\Z))
      | (?P<atom>[^\s,;()\[\]{}"]+)
      | (?P<end>\Z)
    )
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
_CLOSER = {"[": "]", "(": ")", "{": "}"}


@dataclass(frozen=True, slots=True)
class Keyword:
    """An EDN keyword, `:name`; distinct from the string "name"."""

    name: str

    def __repr__(self) -> str:
        return f":{self.name}"


class EdnMap(dict[object, object]):
    """An EDN map; `line` is the line its `{` is on (for messages)."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


def _unescape(body: str, source: str, line: int) -> str:
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        code = body[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise HistoryFormatError(f"{source}:{line}: unknown string escape \\{code}")
    return "".join(out)


def read_edn(text: str, source: str = "<edn>") -> list[object]:
    """Every top-level form of an EDN document, in order (see the module docstring)."""
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_of(pos: int) -> int:
        return bisect_right(newlines, pos - 1) + 1

    top: list[object] = []
    # Each frame: (opening bracket, its line, the items collected so far).
    stack: list[tuple[str, int, list[object]]] = []
    keywords: dict[str, Keyword] = {}
    pos = 0
    while True:
        match = _TOKEN.match(text, pos)
        if match is None:
            # Only an unterminated string can fail every alternative.
            start = len(text) - len(text[pos:].lstrip())
            raise HistoryFormatError(f"{source}:{line_of(start)}: a string that never ends")
        kind = match.lastgroup
        assert kind is not None, "every alternative of _TOKEN is a named group"
        if kind == "end":
            break
        token = match.group(kind)
        start = match.start(kind)
        pos = match.end()
        value: object
        if kind == "open":
            if len(stack) >= DEPTH_MAX:
                raise HistoryFormatError(
                    f"{source}:{line_of(start)}: nesting deeper than {DEPTH_MAX}"
                )
            stack.append((token, line_of(start), []))
            continue
        if kind == "close":
            if not stack:
                raise HistoryFormatError(f"{source}:{line_of(start)}: {token!r} closes nothing")
            opener, line, items = stack.pop()
            if _CLOSER[opener] != token:
                raise HistoryFormatError(
                    f"{source}:{line_of(start)}: {token!r} closes the {opener!r} opened "
                    f"at line {line}"
                )
            if opener == "{":
                if len(items) % 2:
                    raise HistoryFormatError(
                        f"{source}:{line}: a map needs key/value pairs, got {len(items)} forms"
                    )
                mapping = EdnMap(line)
                for k, v in zip(items[::2], items[1::2], strict=True):
                    if k in mapping:
                        raise HistoryFormatError(f"{source}:{line}: map key {k!r} appears twice")
                    mapping[k] = v
                value = mapping
            else:
                value = tuple(items)
        elif kind == "string":
            value = _unescape(token[1:-1], source, line_of(start))
        elif kind == "keyword":
            found = keywords.get(token)
            if found is None:
                found = keywords[token] = Keyword(token[1:])
            value = found
        elif kind == "int":
            value = int(token.rstrip("N"))
        elif token == "nil":
            value = None
        elif token in ("true", "false"):
            value = token == "true"
        else:
            raise HistoryFormatError(
                f"{source}:{line_of(start)}: unsupported EDN form {token!r} (this reader "
                "takes maps, vectors, lists, keywords, strings, integers, nil and booleans)"
            )
        if stack:
            stack[-1][2].append(value)
        else:
            top.append(value)
    if stack:
        opener, line, _ = stack[-1]
        raise HistoryFormatError(f"{source}:{line}: {opener!r} is never closed")
    return top
