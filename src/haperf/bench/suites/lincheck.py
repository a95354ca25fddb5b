"""Linearizability checker benchmarks: checking mid-size histories from the lincheck corpus.

Owns the lincheck group. Each row times check() on one history already parsed (parsing is
outside the timed region): etcd_099 (one register, 82 operations from 5 clients with many
indeterminate writes; Knossos timed out on it), c10-ok (10 clients, 10 keys, get/put/append,
checked per key) and memstress3-12 (a Knossos timeout-test history). The peer is the same search
in pure Python (ReferenceSearch), so the ratio is what the Cython core buys. Corpus rows are
available only where the corpus is (haperf.chaos.corpus.find_corpus: $HAPERF_LINCHECK_CORPUS or
beside the checkout). lincheck.harness_10k needs no corpus: a seeded history shaped like the
chaos harness's (8 clients, 2 keys, unique write values, 5% info and 3% fail outcomes), made by
executing the operations against real registers, so it is linearizable.
"""

import random
from collections.abc import Callable
from typing import Any

from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.chaos.history import Op as Event

SEED = 20261122

# (row suffix, corpus path, model, what)
HISTORIES = (
    ("etcd_099", "porcupine/jepsen/etcd_099.log", "etcd-cas-register", "82 ops, 5 clients"),
    ("kv_c10_ok", "porcupine/kv/c10-ok.txt", "kv-get-put-append", "337 ops, 10 keys"),
    (
        "memstress3_12",
        "knossos/cas-register/good/memstress3-12.edn",
        "knossos-cas-register",
        "Knossos timeout test",
    ),
)


def harness_history(seed: int, ops: int, keys: int = 2, clients: int = 8) -> list[Event]:
    """A linearizable history like the chaos harness records: each operation takes effect at
    one instant inside its window (info: maybe never; fail: never), on one register per key."""
    rng = random.Random(seed)
    free_at = [0] * clients
    planned: list[list[Any]] = []
    for value in range(1, ops + 1):
        client = min(range(clients), key=free_at.__getitem__)
        start = free_at[client] + rng.randint(0, 5)
        at = start + rng.randint(1, 40)
        end = at + rng.randint(1, 40)
        free_at[client] = end + 1
        f = rng.choice(("read", "write", "cas"))
        arg = (
            None
            if f == "read"
            else value
            if f == "write"
            else (rng.randint(value - 9, value - 1), value)
        )
        roll = rng.random()
        outcome = "info" if roll < 0.05 else "fail" if roll < 0.08 else "ok"
        applies = outcome == "ok" or (outcome == "info" and rng.random() < 0.5)
        planned.append(
            [at, client, f, f"k{rng.randrange(keys)}", arg, start, end, outcome, applies, None]
        )
    registers: dict[str, object] = {}
    for p in sorted(planned, key=lambda p: p[0]):
        _, _, f, key, arg, _, _, outcome, applies, _ = p
        if not applies:
            continue
        if f == "read":
            p[9] = registers.get(key)
        elif f == "write":
            registers[key] = arg
        elif registers.get(key) == arg[0]:
            registers[key] = arg[1]
        elif outcome == "ok":
            p[7] = "fail"  # a cas whose comparison failed: definitely not applied
    events: list[tuple[Any, ...]] = []
    for _, client, f, key, arg, start, end, outcome, _, read in planned:
        out = (read if outcome == "ok" else None) if f == "read" else arg
        events.append((start, 0, client, "invoke", f, key, arg))
        events.append((end, 1, client, outcome, f, key, out))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    process = list(range(clients))
    history = []
    for t, _, client, typ, f, key, v in events:
        history.append(Event(process[client], typ, f, key, v, t))
        if typ == "info":
            process[client] += clients  # Jepsen's rule: a process with an unknown outcome retires
    return history


def _harness(native: bool) -> Callable[[], Op]:
    def setup() -> Op:
        from haperf.chaos.lincheck import check

        history = harness_history(SEED, 10_000)
        result = check(history, native=native)
        if result.linearizable is not True:
            raise RuntimeError(f"the synthetic harness history must be linearizable: {result}")
        steps = float(result.steps)

        def run() -> object:
            return check(history, native=native)

        return Op(run, extra=lambda: {"operations": 10_000.0, "search_steps": steps})

    return setup


def _available() -> bool:
    from haperf.chaos.corpus import find_corpus

    return find_corpus() is not None


def _op(rel: str, model: str, *, native: bool) -> Callable[[], Op]:
    def setup() -> Op:
        from haperf.chaos.corpus import find_corpus, load
        from haperf.chaos.lincheck import check

        corpus = find_corpus()
        if corpus is None:
            raise ImportError("the lincheck corpus is not available", name="lincheck-corpus")
        _, ops = load(corpus / rel)
        result = check(ops, model, native=native)
        if result.linearizable is None:
            raise RuntimeError(f"{rel}: no verdict")
        steps = float(result.steps)

        def run() -> object:
            return check(ops, model, native=native)

        return Op(run, extra=lambda: {"operations": float(len(ops)), "search_steps": steps})

    return setup


register_all(
    [
        Benchmark(
            f"lincheck.{name}",
            "lincheck",
            f"check() on {rel.rsplit('/', 1)[-1]} ({what}), parsed beforehand",
            _op(rel, model, native=True),
            peers=(
                Peer(
                    "ReferenceSearch",
                    _op(rel, model, native=False),
                    note="the same search in pure Python",
                ),
            ),
            available=_available,
        )
        for name, rel, model, what in HISTORIES
    ]
    + [
        Benchmark(
            "lincheck.harness_10k",
            "lincheck",
            "check() on a seeded harness-like history: 10,000 ops, 8 clients, 2 keys, 5% info",
            _harness(native=True),
            peers=(
                Peer(
                    "ReferenceSearch",
                    _harness(native=False),
                    note="the same search in pure Python",
                ),
            ),
        )
    ]
)
