"""Linearizability checker benchmarks: checking mid-size histories from the lincheck corpus.

Owns the lincheck group. Each row times check() on one history already parsed (parsing is
outside the timed region): etcd_099 (one register, 82 operations from 5 clients with many
indeterminate writes; Knossos timed out on it), c10-ok (10 clients, 10 keys, get/put/append,
checked per key) and memstress3-12 (a Knossos timeout-test history). The peer is the same search
in pure Python (ReferenceSearch), so the ratio is what the Cython core buys. Rows are available
only where the corpus is (haperf.chaos.corpus.find_corpus: $HAPERF_LINCHECK_CORPUS or beside
the checkout).
"""

from collections.abc import Callable

from haperf.bench.registry import Benchmark, Op, Peer, register_all

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
)
