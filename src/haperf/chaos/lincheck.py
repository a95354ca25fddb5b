"""Linearizability checking: Wing & Gong's search with Lowe's improvements, per-key decomposition.

    >>> from haperf.chaos.history import read_history
    >>> from haperf.chaos.lincheck import check
    >>> result = check(read_history("history.jsonl"))          # doctest: +SKIP
    >>> result.linearizable, result.key, result.explanation   # doctest: +SKIP

Owns the models (what each operation does to the state, and how `fail`, `info` and unknown
reads are read), the encoding of a paired history into the integer form the search core takes,
the per-key decomposition (P-compositionality: a history is linearizable iff each key's
sub-history is), the timeout loop, and the explanation of a violation.

The search itself is `haperf._native.lincheck.Search` (Cython); `ReferenceSearch` here is the
same algorithm in plain Python, kept small and obvious so tests can check the native core
against it.

Invariants:
- A `fail` operation is either removed (it did not happen: Knossos and haperf's own histories)
  or, for the porcupine/etcd reading of a failed cas, kept as an operation that observed a
  value different from the expected one. Which one is a property of the model.
- An `info` operation (or one that never completed) may take effect at any point after its
  invocation, or never: it has a call entry and no return entry, and the search succeeds as
  soon as every completed operation is linearized.
- A read whose result is unknown (`fail`/`info` read, Knossos's `nil` read) constrains nothing
  and changes nothing, so it is removed before the search; so is every read of a model that
  discards its result.
- Verdicts: True (a linearization exists for every key), False (some key has none: `key` names
  it), None (the time or memory budget ran out before a verdict; `key` names where).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from haperf.chaos.history import Op, Operation, pair
from haperf.errors import ConfigError

# Operation kinds of the search core (the same numbers as haperf._native.lincheck).
K_READ = 0  # legal iff state == a; state unchanged
K_WRITE = 1  # state = a
K_CAS = 2  # legal iff state == a; state = b
K_CAS_FAILED = 3  # legal iff state != a; state unchanged (porcupine's reading of a failed cas)
K_STEP = 4  # state = step(state, op) computed by the model in Python; < 0 = illegal

VERDICT_LINEARIZABLE = 1
VERDICT_VIOLATION = 0
VERDICT_RUNNING = -1
VERDICT_OUT_OF_MEMORY = -2

# Search steps per native call between two looks at the clock: about a millisecond of work,
# so a timeout is honoured promptly and the clock costs nothing measurable.
STEPS_PER_SLICE = 20_000
# The memo cache of (linearized set, state) pairs is the search's memory; past this many bytes
# the check gives up with an unknown verdict instead of exhausting the machine.
CACHE_BYTES_MAX = 512 << 20
# Lines of context in an explanation (candidates and the tail of the linearized prefix).
EXPLAIN_OPS_MAX = 12


@dataclass(frozen=True, slots=True)
class Model:
    """How operations act on the state.

    `kind`: "register" (read/write/cas), "kv" (get/put/append on strings) or "multi-register"
    (txn of [read k v] / [write k v] micro-operations over several registers).
    `initial`: the state before the first operation (per key when partitioned).
    `failed_cas`: "absent" (a failed cas did not happen: Knossos, haperf) or "observed" (it ran
    and saw a value other than the expected one: porcupine's etcd tests).
    `nil_read`: "absent" (a read of null saw the key absent) or "unknown" (Knossos: null means
    the read's value is not known, so it constrains nothing).
    `partition`: check each key on its own (P-compositionality).
    """

    name: str
    kind: str
    initial: Any = None
    failed_cas: str = "absent"
    nil_read: str = "absent"
    partition: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("register", "kv", "multi-register"):
            raise ConfigError(f"model kind must be register, kv or multi-register: {self.kind!r}")
        if self.failed_cas not in ("absent", "observed"):
            raise ConfigError(f"failed_cas must be 'absent' or 'observed': {self.failed_cas!r}")
        if self.nil_read not in ("absent", "unknown"):
            raise ConfigError(f"nil_read must be 'absent' or 'unknown': {self.nil_read!r}")


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        # haperf's own histories: per-key registers, initially absent; a fail did not happen.
        Model("cas-register", "register", None),
        # Porcupine's etcd tests: a failed cas ran and saw another value.
        Model("etcd-cas-register", "register", None, failed_cas="observed"),
        # Knossos: initial 0, a nil read is unknown, a failed op did not happen.
        Model("knossos-cas-register", "register", 0, nil_read="unknown"),
        Model("kv-get-put-append", "kv", ""),
        Model(
            "knossos-multi-register",
            "multi-register",
            (("x", 0), ("y", 0)),
            nil_read="unknown",
            partition=False,
        ),
    )
}
MODELS["kv"] = replace(MODELS["kv-get-put-append"], name="kv")
MODELS["multi-register"] = replace(MODELS["knossos-multi-register"], name="multi-register")


def get_model(model: str | Model) -> Model:
    """The Model named `model` (one of MODELS), or `model` itself; ConfigError if unknown."""
    if isinstance(model, Model):
        return model
    found = MODELS.get(model)
    if found is None:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return found


# ---------------------------------------------------------------------------------------------
# Encoding: paired operations -> integer arrays for the search core.


@dataclass(slots=True)
class Problem:
    """One partition's history as the search core takes it.

    Operation i: kinds[i], a[i], b[i] (interned values), calls[i] < rets[i] (event positions;
    rets[i] == -1 when the operation may take effect any time after its call, or never).
    `values[id]` is the value an id stands for; `ops[i]` the Operation it came from.
    """

    key: str | None
    kinds: list[int] = field(default_factory=list)
    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    rets: list[int] = field(default_factory=list)
    ops: list[Operation] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    ids: dict[Any, int] = field(default_factory=dict)
    initial: int = 0
    step: Callable[[int, int], int] | None = None

    def intern(self, value: Any) -> int:
        found = self.ids.get(value)
        if found is None:
            found = len(self.values)
            self.ids[value] = found
            self.values.append(value)
        return found

    def add(self, kind: int, a: int, b: int, op: Operation) -> None:
        self.kinds.append(kind)
        self.a.append(a)
        self.b.append(b)
        self.calls.append(op.call)
        self.rets.append(-1 if op.ret is None else op.ret)
        self.ops.append(op)


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _encode_register(problem: Problem, model: Model, ops: Sequence[Operation]) -> None:
    problem.initial = problem.intern(model.initial)
    for op in ops:
        if op.outcome == "fail" and not (op.f == "cas" and model.failed_cas == "observed"):
            continue  # it did not happen
        if op.f == "read":
            if op.outcome != "ok" or (op.output is None and model.nil_read == "unknown"):
                continue  # an unknown result constrains nothing and changes nothing
            problem.add(K_READ, problem.intern(_freeze(op.output)), 0, op)
        elif op.f == "write":
            problem.add(K_WRITE, problem.intern(_freeze(op.value)), 0, op)
        elif op.f == "cas":
            expected, new = op.value
            kind = K_CAS_FAILED if op.outcome == "fail" else K_CAS
            problem.add(kind, problem.intern(_freeze(expected)), problem.intern(_freeze(new)), op)
        else:
            raise ConfigError(
                f"model {model.name} has no operation {op.f!r} (line {op.line}); registers "
                "take read, write and cas"
            )


def _bound_pending(problem: Problem) -> None:
    """Tighten a register history's uncertain (info) operations without changing its verdict.

    1. Drop every info write or info cas whose value nothing that remains ever needs. A value
       is needed when a completed operation observes it (an ok read returns it, an ok cas
       expects it), or a kept info cas expects it (to the fixpoint). Proof sketch: remove the
       dropped operations from any linearization; an operation that stays is a write (legal
       anywhere) or needs the state it sees, and that state was never set by a dropped
       operation (its value is not needed), so every operation stays legal. Conversely a
       dropped operation is allowed never to happen. Not done when a failed cas is read as
       observing "some other value" (etcd-cas-register): such a cas needs almost any value.
    2. An info write or cas whose value only it writes (as in haperf's harness) and that a
       completed operation observes must have happened before the first such observer
       returned: it gets that return, so the search handles it as a completed operation.
    Without this, every info operation may be linearized anywhere until the end of the
    history, and refuting a violation late in a long history doubles the search per pending
    operation.
    """
    n = len(problem.kinds)
    kinds, a, b, rets = problem.kinds, problem.a, problem.b, problem.rets
    writers: dict[int, int] = {}
    first_observer_ret: dict[int, int] = {}
    observes_anything = False
    for i in range(n):
        kind = kinds[i]
        if kind == K_WRITE:
            writers[a[i]] = writers.get(a[i], 0) + 1
        elif kind == K_CAS:
            writers[b[i]] = writers.get(b[i], 0) + 1
        elif kind == K_CAS_FAILED:
            observes_anything = True
        observer = kind in (K_READ, K_CAS) and rets[i] >= 0
        if observer and rets[i] < first_observer_ret.get(a[i], rets[i] + 1):
            first_observer_ret[a[i]] = rets[i]
    keep = [True] * n
    if not observes_anything:
        needed = set(first_observer_ret)
        pending_cas = [i for i in range(n) if rets[i] < 0 and kinds[i] == K_CAS]
        for _ in range(len(pending_cas) + 1):  # each round adds a value or stops
            grown = {a[i] for i in pending_cas if b[i] in needed} - needed
            if not grown:
                break
            needed |= grown
        for i in range(n):
            if rets[i] < 0 and kinds[i] in (K_WRITE, K_CAS):
                keep[i] = (a[i] if kinds[i] == K_WRITE else b[i]) in needed
    for i in range(n):
        if rets[i] >= 0 or kinds[i] not in (K_WRITE, K_CAS) or not keep[i]:
            continue
        value = a[i] if kinds[i] == K_WRITE else b[i]
        observer_ret = first_observer_ret.get(value)
        if value == problem.initial or writers[value] != 1 or observer_ret is None:
            continue
        if observer_ret > problem.calls[i]:  # else: seen before it was written; the search says
            rets[i] = observer_ret
    if all(keep):
        return
    for name in ("kinds", "a", "b", "calls", "rets", "ops"):
        column = getattr(problem, name)
        setattr(problem, name, [x for x, k in zip(column, keep, strict=True) if k])


def _impossible_observation(problem: Problem) -> int:
    """An operation that completed observing a register value no operation writes (and not the
    initial one): no search is needed to refute that. Its index, or -1."""
    written = {problem.initial}
    for kind, a, b in zip(problem.kinds, problem.a, problem.b, strict=True):
        if kind == K_WRITE:
            written.add(a)
        elif kind == K_CAS:
            written.add(b)
    for i, (kind, a) in enumerate(zip(problem.kinds, problem.a, strict=True)):
        if kind in (K_READ, K_CAS) and problem.rets[i] >= 0 and a not in written:
            return i
    return -1


def _encode_kv(problem: Problem, model: Model, ops: Sequence[Operation]) -> None:
    problem.initial = problem.intern(model.initial)
    appends: list[str] = []
    transitions: dict[int, int] = {}

    def step(state: int, index: int) -> int:
        # Only appends reach here: concatenate, then intern the new string.
        memo_key = state * len(problem.kinds) + index
        found = transitions.get(memo_key)
        if found is None:
            found = problem.intern(problem.values[state] + appends[index])
            transitions[memo_key] = found
        return found

    for op in ops:
        if op.outcome == "fail":
            continue
        if op.f in ("get", "read"):
            if op.outcome != "ok":
                continue
            output = "" if op.output is None else op.output
            problem.add(K_READ, problem.intern(output), 0, op)
            appends.append("")
        elif op.f in ("put", "write"):
            problem.add(K_WRITE, problem.intern(op.value), 0, op)
            appends.append("")
        elif op.f == "append":
            problem.add(K_STEP, 0, 0, op)
            appends.append(op.value)
        else:
            raise ConfigError(
                f"model {model.name} has no operation {op.f!r} (line {op.line}); key-value "
                "stores take get, put and append"
            )
    problem.step = step


def _encode_multi(problem: Problem, model: Model, ops: Sequence[Operation]) -> None:
    initial = dict(model.initial)
    registers = sorted(initial)
    slot = {name: i for i, name in enumerate(registers)}
    problem.initial = problem.intern(tuple(initial[r] for r in registers))
    txns: list[list[tuple[bool, int, Any]]] = []

    def step(state: int, index: int) -> int:
        values = list(problem.values[state])
        for is_write, register, value in txns[index]:
            if is_write:
                values[register] = value
            elif value is not None and values[register] != value:
                return -1
        return problem.intern(tuple(values))

    for op in ops:
        if op.outcome == "fail":
            continue
        if op.f != "txn":
            raise ConfigError(f"model {model.name} takes txn operations, got {op.f!r}")
        micro = op.output if op.outcome == "ok" and op.output is not None else op.value
        txn: list[tuple[bool, int, Any]] = []
        for m in micro:
            f, register, value = m
            if register not in slot:
                raise ConfigError(f"txn at line {op.line} names unknown register {register!r}")
            if f == "write":
                txn.append((True, slot[register], value))
            elif op.outcome == "ok":
                txn.append((False, slot[register], value))  # None: unknown, unconstrained
        if not any(w for w, _, _ in txn) and op.outcome != "ok":
            continue  # an unknown read-only transaction constrains nothing
        problem.add(K_STEP, 0, 0, op)
        txns.append(txn)
    problem.step = step


def encode(
    ops: Sequence[Operation], model: Model, key: str | None, *, bound_pending: bool = True
) -> Problem:
    """Encode one partition's operations for the search core under `model`.

    `bound_pending=False` leaves info operations as they are (tests compare both encodings).
    """
    problem = Problem(key)
    if model.kind == "register":
        _encode_register(problem, model, ops)
        if bound_pending:
            _bound_pending(problem)
    elif model.kind == "kv":
        _encode_kv(problem, model, ops)
    else:
        _encode_multi(problem, model, ops)
    return problem


def partitions(ops: Sequence[Operation], model: Model) -> list[tuple[str | None, list[Operation]]]:
    """Split by key when the model allows it (sorted by key, so the order is reproducible)."""
    if not model.partition:
        return [(None, list(ops))]
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    return [(key, by_key[key]) for key in sorted(by_key)]


# ---------------------------------------------------------------------------------------------
# The search, in Python (reference) and in Cython (haperf._native.lincheck.Search).


class ReferenceSearch:
    """Wing & Gong's search with Lowe's memo cache, written for clarity (tests compare it with
    the native core). Same interface as haperf._native.lincheck.Search.

    The history is a list of entries in real-time order: a call entry per operation and a
    return entry per completed one. Walking the list, a call entry whose operation is legal in
    the current state is linearized: both its entries are lifted out of the list and the walk
    restarts at the head. Reaching a return entry means that operation should have been
    linearized already: undo the last choice (put its entries back) and try the next call.
    A (set of linearized operations, state) pair seen before is not explored twice (Lowe).
    """

    def __init__(  # noqa: PLR0917 - the same positional signature as the native Search
        self,
        kinds: Sequence[int],
        a: Sequence[int],
        b: Sequence[int],
        calls: Sequence[int],
        rets: Sequence[int],
        initial: int,
        step: Callable[[int, int], int] | None = None,
        cache_bytes_max: int = CACHE_BYTES_MAX,
    ) -> None:
        n = len(kinds)
        events = sorted(
            [(calls[i], 0, i) for i in range(n)]
            + [(rets[i], 1, i) for i in range(n) if rets[i] >= 0]
        )
        self.n = n
        self.kinds, self.a, self.b, self.step_fn = list(kinds), list(a), list(b), step
        # Entry 0 is the head; entries 1..E are the events; 0 as a successor means "end".
        self.op_of = [-1] + [i for _, _, i in events]
        self.is_call = [False] + [kind == 0 for _, kind, _ in events]
        count = len(events)
        self.next = [*range(1, count + 1), 0]
        self.prev = [0, *range(count)]
        self.ret_entry = [0] * n
        self.call_entry = [0] * n
        for e in range(1, count + 1):
            if self.is_call[e]:
                self.call_entry[self.op_of[e]] = e
            else:
                self.ret_entry[self.op_of[e]] = e
        self.remaining = self.completed = sum(1 for r in rets if r >= 0)
        self.best_progress = 0
        self.state = initial
        self.linearized = 0  # bitset as a Python int
        self.cache: set[tuple[int, int]] = set()
        self.stack: list[tuple[int, int]] = []  # (call entry, state before)
        self.entry = self.next[0]
        self.steps = 0
        self.best: list[int] = []
        self.best_state = initial
        self.stuck = -1

    def _apply(self, state: int, i: int) -> int:
        kind, a = self.kinds[i], self.a[i]
        if kind == K_READ:
            return state if state == a else -1
        if kind == K_WRITE:
            return a
        if kind == K_CAS:
            return self.b[i] if state == a else -1
        if kind == K_CAS_FAILED:
            return state if state != a else -1
        assert self.step_fn is not None, "K_STEP needs a step function"
        return self.step_fn(state, i)

    def _lift(self, e: int) -> None:
        nxt, prv = self.next, self.prev
        nxt[prv[e]] = nxt[e]
        prv[nxt[e]] = prv[e]
        r = self.ret_entry[self.op_of[e]]
        if r:
            nxt[prv[r]] = nxt[r]
            prv[nxt[r]] = prv[r]

    def _unlift(self, e: int) -> None:
        nxt, prv = self.next, self.prev
        r = self.ret_entry[self.op_of[e]]
        if r:
            nxt[prv[r]] = r
            prv[nxt[r]] = r
        nxt[prv[e]] = e
        prv[nxt[e]] = e

    def run(self, steps_max: int) -> int:
        """Search for at most `steps_max` steps: VERDICT_LINEARIZABLE, _VIOLATION or _RUNNING."""
        for _ in range(steps_max):
            if self.remaining == 0:
                return VERDICT_LINEARIZABLE
            self.steps += 1
            e = self.entry
            assert e != 0, "a return entry stays in the list while operations remain"
            i = self.op_of[e]
            if self.is_call[e]:
                new = self._apply(self.state, i)
                if new >= 0:
                    bits = self.linearized | (1 << i)
                    if (bits, new) not in self.cache:
                        self.cache.add((bits, new))
                        self.stack.append((e, self.state))
                        self.state = new
                        self.linearized = bits
                        self._lift(e)
                        if self.ret_entry[i]:
                            self.remaining -= 1
                        self.entry = self.next[0]
                        continue
                self.entry = self.next[e]
                continue
            # The deepest point counts completed operations only (info ones are optional).
            if self.completed - self.remaining > self.best_progress or self.stuck < 0:
                self.best_progress = self.completed - self.remaining
                self.best = [self.op_of[c] for c, _ in self.stack]
                self.best_state = self.state
                self.stuck = i
            if not self.stack:
                return VERDICT_VIOLATION
            c, self.state = self.stack.pop()
            j = self.op_of[c]
            self.linearized &= ~(1 << j)
            self._unlift(c)
            if self.ret_entry[j]:
                self.remaining += 1
            self.entry = self.next[c]
        return VERDICT_LINEARIZABLE if self.remaining == 0 else VERDICT_RUNNING

    @property
    def cache_entries(self) -> int:
        return len(self.cache)


def _native_search() -> type[Any] | None:
    try:
        from haperf._native.lincheck import Search
    except ImportError:  # a source tree without the compiled module: the reference is used
        return None
    return Search


_NATIVE = _native_search()


# ---------------------------------------------------------------------------------------------
# The facade.


@dataclass(frozen=True, slots=True)
class Failure:
    """Where the search got stuck on a violating key, in terms of the history's operations.

    `prefix`: the sequence of operations found that linearizes the most completed operations
    (in that order).
    `state`: the model state after it. `stuck`: an operation that returned before any
    extension of the prefix could include it. `candidates`: the other operations that could
    have gone next (concurrent with `stuck`), none of which led anywhere.
    """

    prefix: tuple[Operation, ...]
    state: Any
    stuck: Operation
    candidates: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict of check(): linearizable True / False / None (budget ran out, unknown).

    `key`: the key whose sub-history is not linearizable (or timed out); None when the history
    is linearizable or the model is not partitioned. `explanation`: a readable account.
    """

    linearizable: bool | None
    key: str | None
    explanation: str
    model: str = ""
    operations: int = 0
    partitions: int = 0
    steps: int = 0
    elapsed_ns: int = 0
    failure: Failure | None = None


def _describe(op: Operation) -> str:
    if op.f in ("read", "get"):
        what = f"{op.f} -> {op.output!r}"
    elif op.f == "cas":
        expected, new = op.value
        what = f"cas {expected!r} -> {new!r}" + (
            " (failed: saw another value)" if op.outcome == "fail" else ""
        )
    elif op.f == "txn":
        what = f"txn {list(op.output if op.output is not None else op.value)!r}"
    else:
        what = f"{op.f} {op.value!r}"
    status = (
        " [info: may take effect any time after its call, or never]" if op.outcome == "info" else ""
    )
    where = f"line {op.line}: " if op.line else ""
    return f"{where}process {op.process} {what}{status}"


def _where(key: str | None) -> str:
    # Single-register corpora put every operation under the empty key.
    return f"key {key!r}" if key else "the history"


def _explain(problem: Problem, search: Any, model: Model) -> tuple[str, Failure]:
    prefix = tuple(problem.ops[i] for i in search.best)
    stuck_index = search.stuck
    stuck = problem.ops[stuck_index]
    state = problem.values[search.best_state]
    done = set(search.best)
    stuck_ret = problem.rets[stuck_index]
    candidates = tuple(
        problem.ops[i]
        for i in range(len(problem.kinds))
        if i not in done
        and i != stuck_index
        and problem.calls[i] < stuck_ret
        and (problem.rets[i] < 0 or problem.rets[i] > problem.calls[stuck_index])
    )
    where = _where(problem.key)
    lines = [
        f"{where} is not linearizable under {model.name}: the longest linearizable prefix has "
        f"{len(prefix)} of {len(problem.kinds)} operations, leaving the state {state!r}.",
        f"This operation returned before it could be linearized: {_describe(stuck)}",
    ]
    if candidates:
        lines.append(
            f"It was concurrent with {len(candidates)} other unlinearized operation(s); no order "
            "of them makes it legal:"
        )
        lines += [f"  {_describe(op)}" for op in candidates[:EXPLAIN_OPS_MAX]]
        if len(candidates) > EXPLAIN_OPS_MAX:
            lines.append(f"  ... and {len(candidates) - EXPLAIN_OPS_MAX} more")
    if prefix:
        tail = prefix[-EXPLAIN_OPS_MAX:]
        lines.append(f"The prefix ends with (last {len(tail)}, in linearization order):")
        lines += [f"  {_describe(op)}" for op in tail]
    return "\n".join(lines), Failure(prefix, state, stuck, candidates)


def _as_operations(history: Sequence[Op] | Sequence[Operation]) -> list[Operation]:
    if not history:
        return []
    if isinstance(history[0], Operation):
        return [op for op in history if isinstance(op, Operation)]
    return pair([op for op in history if isinstance(op, Op)])


def check(
    history: Sequence[Op] | Sequence[Operation],
    model: str | Model = "cas-register",
    *,
    timeout_s: float | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    native: bool = True,
    cache_bytes_max: int = CACHE_BYTES_MAX,
) -> Result:
    """Is `history` linearizable under `model`? See Result.

    `history` is a list of events (Op, as read_history returns them; they are paired here) or
    of paired Operations. Each key is checked on its own when the model allows it (sorted by
    key); the first violating key ends the check. `timeout_s` bounds the whole check (None: no
    bound); when it runs out the verdict is None. `native=False` runs the Python reference
    search (slow; for tests).
    """
    spec = get_model(model)
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive (or None for no limit), got {timeout_s!r}")
    ops = _as_operations(history)
    start = clock()
    deadline = None if timeout_s is None else start + int(timeout_s * 1e9)
    search_type: Any = _NATIVE if native and _NATIVE is not None else ReferenceSearch
    parts = partitions(ops, spec)
    # Every partition's search advances in turn, a slice at a time, so a violation in any key
    # ends the check as soon as it is found, however long another key would take to prove.
    active: list[tuple[str | None, Problem, Any]] = []
    for key, part in parts:
        problem = encode(part, spec, key)
        if spec.kind == "register" and (bad := _impossible_observation(problem)) >= 0:
            op = problem.ops[bad]
            text = (
                f"{_where(key)} is not linearizable under {spec.name}: this operation observed "
                f"the value {problem.values[problem.a[bad]]!r}, which no operation in the "
                f"history writes (nor is it the initial value): {_describe(op)}"
            )
            failure = Failure((), None, op, ())
            return Result(
                False, key, text, spec.name, len(ops), len(parts), 0, clock() - start, failure
            )
        search = search_type(
            problem.kinds,
            problem.a,
            problem.b,
            problem.calls,
            problem.rets,
            problem.initial,
            problem.step,
            cache_bytes_max,
        )
        active.append((key, problem, search))
    searches = [s for _, _, s in active]
    undecided: tuple[str | None, str] | None = None
    while active:
        still: list[tuple[str | None, Problem, Any]] = []
        for key, problem, search in active:
            verdict = search.run(STEPS_PER_SLICE)
            if verdict == VERDICT_VIOLATION:
                text, failure = _explain(problem, search, spec)
                steps = sum(s.steps for s in searches)
                return Result(
                    False,
                    key,
                    text,
                    spec.name,
                    len(ops),
                    len(parts),
                    steps,
                    clock() - start,
                    failure,
                )
            if verdict == VERDICT_OUT_OF_MEMORY and undecided is None:
                undecided = (
                    key,
                    f"gave up on {_where(key)}: the search cache reached its "
                    f"limit of {cache_bytes_max} bytes (raise cache_bytes_max)",
                )
            elif verdict == VERDICT_RUNNING:
                still.append((key, problem, search))
        active = still
        if active and deadline is not None and clock() >= deadline:
            key, _, search = active[0]
            undecided = undecided or (
                key,
                f"timed out after {timeout_s} s with {len(active)} partition(s) "
                f"undecided, among them {_where(key)} ({search.steps} search steps, "
                f"{search.cache_entries} cached states)",
            )
            break
    steps = sum(s.steps for s in searches)
    elapsed = clock() - start
    if undecided is not None:
        return Result(
            None, undecided[0], undecided[1], spec.name, len(ops), len(parts), steps, elapsed
        )
    text = (
        f"linearizable under {spec.name}: {len(ops)} operations in {len(parts)} "
        f"partition(s), {steps} search steps"
    )
    return Result(True, None, text, spec.name, len(ops), len(parts), steps, elapsed)
