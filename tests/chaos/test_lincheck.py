"""The linearizability checker on hand-built histories with known verdicts, and on generated ones.

Owns the checker's semantic tests: the classic anomalies (stale read, lost update, a write that
failed yet is seen), the meaning of `info` (may happen later, or never) and `fail` under each
model, per-key decomposition, the explanation of a violation, the timeout and memory bounds
(driven by a fake clock, never by wall time), and the property tests: histories produced by
executing random concurrent operations are linearizable, a corrupted read is caught, and the
native search agrees step for step with the Python reference.
"""

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haperf.chaos.history import Op, Operation, pair
from haperf.chaos.lincheck import (
    MODELS,
    VERDICT_OUT_OF_MEMORY,
    VERDICT_RUNNING,
    Model,
    ReferenceSearch,
    check,
    encode,
    partitions,
)
from haperf.errors import ConfigError
from tests.chaos.lincheck_helpers import executed_history, h

BOTH = pytest.mark.parametrize("native", [True, False], ids=["native", "reference"])


@BOTH
def test_sequential_history_is_linearizable(native: bool) -> None:
    history = h(
        (0, "invoke", "read", None), (0, "ok", "read", None),
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "read", None), (1, "ok", "read", 1),
        (1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2]),
        (0, "invoke", "read", None), (0, "ok", "read", 2),
    )  # fmt: skip
    result = check(history, native=native)
    assert result.linearizable is True
    assert result.key is None
    assert result.operations == 5


@BOTH
def test_stale_read_is_a_violation_and_is_explained(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "write", 2), (1, "ok", "write", 2),
        (2, "invoke", "read", None), (2, "ok", "read", 1),
    )  # fmt: skip
    result = check(history, native=native)
    assert result.linearizable is False
    assert result.key == "k"
    assert result.failure is not None
    assert result.failure.stuck.f == "read"
    assert result.failure.stuck.output == 1
    assert [op.value for op in result.failure.prefix] == [1, 2]
    assert result.failure.state == 2
    assert "key 'k' is not linearizable" in result.explanation
    assert "process 2 read -> 1" in result.explanation


@BOTH
def test_read_concurrent_with_a_write_may_see_either_value(native: bool) -> None:
    for seen in (1, 2):
        history = h(
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (2, "invoke", "read", None),
            (2, "ok", "read", seen), (1, "ok", "write", 2),
        )  # fmt: skip
        assert check(history, native=native).linearizable is True
    # ... but not a value nobody wrote.
    history = h(
        (1, "invoke", "write", 2), (2, "invoke", "read", None),
        (2, "ok", "read", 3), (1, "ok", "write", 2),
    )  # fmt: skip
    assert check(history, native=native).linearizable is False


@BOTH
def test_lost_update_two_cas_from_the_same_value_both_succeed(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 0), (0, "ok", "write", 0),
        (1, "invoke", "cas", [0, 1]), (2, "invoke", "cas", [0, 2]),
        (1, "ok", "cas", [0, 1]), (2, "ok", "cas", [0, 2]),
    )  # fmt: skip
    result = check(history, native=native)
    assert result.linearizable is False
    assert result.failure is not None
    assert result.failure.stuck.f == "cas"


@BOTH
def test_info_write_may_take_effect_after_it_was_reported(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "write", 2), (1, "info", "write", 2),
        (0, "invoke", "read", None), (0, "ok", "read", 1),
        (0, "invoke", "read", None), (0, "ok", "read", 2),
    )  # fmt: skip
    assert check(history, native=native).linearizable is True
    # It happens at most once: 1, then 2, then 1 again needs a second write of 1.
    again = [*history, Op(0, "invoke", "read", "k", None, 8), Op(0, "ok", "read", "k", 1, 9)]
    assert check(again, native=native).linearizable is False


@BOTH
def test_info_write_may_never_happen_and_unfinished_invokes_count_as_info(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "cas", [5, 6]), (1, "info", "cas", [5, 6]),
        (2, "invoke", "write", 3),  # never completes
        (0, "invoke", "read", None), (0, "ok", "read", 1),
    )  # fmt: skip
    assert check(history, native=native).linearizable is True
    ops = pair(history)
    assert [op.outcome for op in ops] == ["ok", "info", "info", "ok"]
    assert ops[2].ret is None


@BOTH
def test_failed_write_did_not_happen(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "write", 2), (1, "fail", "write", 2),
        (0, "invoke", "read", None), (0, "ok", "read", 2),
    )  # fmt: skip
    assert check(history, native=native).linearizable is False


@BOTH
def test_absent_key_reads_null_and_a_read_before_any_write_must_be_null(native: bool) -> None:
    assert check(h((0, "invoke", "read", None), (0, "ok", "read", None))).linearizable is True
    result = check(h((0, "invoke", "read", None), (0, "ok", "read", 5)), native=native)
    assert result.linearizable is False


@BOTH
def test_failed_cas_reading_depends_on_the_model(native: bool) -> None:
    # The register holds 1 when a cas 1 -> 2 fails.
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2]),
    )  # fmt: skip
    # Knossos / haperf: the cas did not happen, nothing to explain.
    assert check(history, "cas-register", native=native).linearizable is True
    # Porcupine's etcd reading: the cas ran and saw a value other than 1: impossible here.
    assert check(history, "etcd-cas-register", native=native).linearizable is False
    # ... and possible when another write could have intervened.
    racing = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "cas", [1, 2]), (2, "invoke", "write", 7),
        (1, "fail", "cas", [1, 2]), (2, "ok", "write", 7),
    )  # fmt: skip
    assert check(racing, "etcd-cas-register", native=native).linearizable is True


@BOTH
def test_each_key_is_checked_on_its_own_and_the_bad_key_is_named(native: bool) -> None:
    history = h(
        (0, "invoke", "write", 1, "a"), (0, "ok", "write", 1, "a"),
        (1, "invoke", "write", 1, "b"), (1, "ok", "write", 1, "b"),
        (0, "invoke", "read", None, "a"), (0, "ok", "read", 1, "a"),
        # Reading b's old value (absent) after the write of 1 completed: stale.
        (1, "invoke", "read", None, "b"), (1, "ok", "read", None, "b"),
    )  # fmt: skip
    result = check(history, native=native)
    assert result.linearizable is False
    assert result.key == "b"
    assert result.partitions == 2
    # Read a's value from b: not allowed either; keys do not share state.
    crossed = h(
        (0, "invoke", "write", 1, "a"), (0, "ok", "write", 1, "a"),
        (1, "invoke", "read", None, "b"), (1, "ok", "read", 1, "b"),
    )  # fmt: skip
    assert check(crossed, native=native).key == "b"


def test_knossos_model_nil_read_is_unconstrained_and_initial_is_zero() -> None:
    history = h(
        (0, "invoke", "read", None), (0, "ok", "read", 0),
        (0, "invoke", "write", 4), (0, "ok", "write", 4),
        (1, "invoke", "read", None), (1, "ok", "read", None),
    )  # fmt: skip
    assert check(history, "knossos-cas-register").linearizable is True
    assert check(history, "cas-register").linearizable is False  # 0 is not absent


def _paired(*rows: tuple[int, str, str, object, object]) -> list[Operation]:
    out = []
    for i, (process, f, key, value, output) in enumerate(rows):
        out.append(Operation(process, f, key, value, output, "ok", 2 * i, 2 * i + 1, i + 1))
    return out


def test_kv_model_appends_and_puts() -> None:
    good = _paired(
        (0, "append", "x", "ab", None),
        (0, "append", "x", "cd", None),
        (1, "get", "x", None, "abcd"),
        (1, "put", "y", "z", None),
        (1, "get", "y", None, "z"),
        (1, "get", "w", None, ""),
    )
    assert check(good, "kv").linearizable is True
    bad = _paired((0, "append", "x", "ab", None), (1, "get", "x", None, "b"))
    result = check(bad, "kv")
    assert result.linearizable is False
    assert result.key == "x"


def test_multi_register_transactions_are_checked_whole() -> None:
    good = _paired(
        (0, "txn", "", ((("write", "x", 1), ("write", "y", 2))), None),
        (1, "txn", "", (("read", "x", None), ("read", "y", None)),
         (("read", "x", 1), ("read", "y", 2))),
    )  # fmt: skip
    assert check(good, "multi-register").linearizable is True
    torn = _paired(
        (0, "txn", "", (("write", "x", 1), ("write", "y", 2)), None),
        (1, "txn", "", (("read", "x", None), ("read", "y", None)),
         (("read", "x", 1), ("read", "y", 0))),
    )  # fmt: skip
    result = check(torn, "multi-register")
    assert result.linearizable is False
    assert result.key is None
    assert result.partitions == 1


def _hard_history(writers: int = 16) -> list[Op]:
    """Overlapping writes of 0..writers-1, then sequential reads of 0, 1 and 0 again: each value
    is written once, so this is refuted only after every order of the writes is ruled out."""
    events = [Op(p, "invoke", "write", "k", p, p) for p in range(writers)]
    events += [Op(p, "ok", "write", "k", p, writers + p) for p in range(writers)]
    t = 2 * writers
    for i, seen in enumerate((0, 1, 0)):
        events += [
            Op(99, "invoke", "read", "k", None, t + 2 * i),
            Op(99, "ok", "read", "k", seen, t + 2 * i + 1),
        ]
    return events


def test_timeout_gives_an_unknown_verdict_naming_the_key() -> None:
    ticks: Iterator[int] = iter([0, *[10**12] * 1000])
    result = check(_hard_history(), timeout_s=1.0, clock=lambda: next(ticks))
    assert result.linearizable is None
    assert result.key == "k"
    assert "timed out" in result.explanation


def test_memory_bound_gives_an_unknown_verdict() -> None:
    result = check(_hard_history(), cache_bytes_max=1 << 16)
    assert result.linearizable is None
    assert "cache" in result.explanation


def test_hard_history_is_refuted_without_limits() -> None:
    result = check(_hard_history(12))
    assert result.linearizable is False
    assert result.failure is not None
    assert result.failure.stuck.f == "read"
    assert result.steps > 1000
    assert len(result.failure.candidates) == 0  # every write returned before the reads began
    assert check(_hard_history(12), native=False).steps == result.steps


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        check([], "nope")
    with pytest.raises(ConfigError, match="timeout_s"):
        check([], timeout_s=0)
    with pytest.raises(ConfigError, match="kind"):
        Model("m", "queue")
    with pytest.raises(ConfigError, match="no operation"):
        check(_paired((0, "append", "k", "x", None)), "cas-register")


def test_native_search_validates_its_arrays() -> None:
    from haperf._native.lincheck import K_STEP, Search

    with pytest.raises(ValueError, match="same length"):
        Search([0], [0, 1], [0], [0], [1], 0)
    with pytest.raises(ValueError, match="unknown kind"):
        Search([9], [0], [0], [0], [1], 0)
    with pytest.raises(ValueError, match="no step function"):
        Search([K_STEP], [0], [0], [0], [1], 0)
    with pytest.raises(ValueError, match="not after its call"):
        Search([0], [0], [0], [5], [5], 0)


def test_empty_history_is_linearizable() -> None:
    assert check([]).linearizable is True
    assert set(MODELS) >= {"cas-register", "etcd-cas-register", "knossos-cas-register", "kv"}


# --- properties ------------------------------------------------------------------------------


@settings(deadline=None)
@given(executed_history())
def test_executed_histories_are_linearizable(case: tuple[list[Op], list[int]]) -> None:
    events, _ = case
    result = check(events)
    assert result.linearizable is True, result.explanation
    assert check(events, native=False).linearizable is True


@settings(deadline=None)
@given(executed_history(keys=1), st.data())
def test_a_read_inserted_at_a_quiet_point_is_checked(
    case: tuple[list[Op], list[int]], data: st.DataObject
) -> None:
    events, quiescent = case
    at = data.draw(st.sampled_from(quiescent))
    # The register's true value at `at` is whatever a sequential replay of the operations that
    # took effect gives, which the history alone does not say; a value nobody ever wrote can
    # never be read, so that read must be refuted wherever it is placed.
    corrupted = [
        *events[:at],
        Op(1000, "invoke", "read", "k0", None, at),
        Op(1000, "ok", "read", "k0", 12345, at),
        *events[at:],
    ]
    result = check(corrupted)
    assert result.linearizable is False
    assert result.failure is not None
    assert result.failure.stuck.output == 12345
    # The same read returning null is fine right at the start, before any operation.
    if at == 0:
        fresh = [Op(1000, "invoke", "read", "k0", None, 0), Op(1000, "ok", "read", "k0", None, 0)]
        assert check(fresh + events).linearizable is True


@st.composite
def arbitrary_history(draw: st.DrawFn, *, unique: bool = False, events_max: int = 24) -> list[Op]:
    """Well-formed but otherwise random: values read need not have been written. `unique`:
    every write (and cas) writes a fresh value, as haperf's harness does."""
    events: list[Op] = []
    flight: dict[int, tuple[str, object]] = {}
    fresh = iter(range(10, 10_000))
    for _ in range(draw(st.integers(1, events_max))):
        p = draw(st.integers(0, 3))
        t = len(events)
        if p in flight:
            f, value = flight.pop(p)
            typ = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
            seen = st.sampled_from([None, 0, 1, 2, 10, 11, 12, 13])
            out = draw(seen) if f == "read" else value
            events.append(Op(p, typ, f, "k", out if typ == "ok" or f != "read" else None, t))
        else:
            f = draw(st.sampled_from(["read", "write", "cas"]))
            value = None
            if f == "write":
                value = next(fresh) if unique else draw(st.integers(0, 2))
            elif f == "cas":
                new = next(fresh) if unique else draw(st.integers(0, 2))
                value = (draw(st.sampled_from([None, 0, 1, 2, 10, 11, 12, 13])), new)
            flight[p] = (f, value)
            events.append(Op(p, "invoke", f, "k", value, t))
    return events


LONG = st.one_of(
    executed_history(keys=1, clients_max=6, ops_max=130).map(lambda case: case[0]),
    arbitrary_history(unique=True, events_max=200),
)


@settings(deadline=None)
@given(
    st.one_of(arbitrary_history(), LONG),
    st.sampled_from(["cas-register", "etcd-cas-register"]),
    st.booleans(),
)
def test_native_search_matches_the_reference_step_for_step(
    events: list[Op], model: str, bound: bool
) -> None:
    """Same steps, verdict and deepest point: the native cache (a window of the bitset plus
    the pending region) keys exactly the sets the reference's whole bitsets do. The long
    histories span several bitset words and keep info operations pending."""
    spec = MODELS[model]
    from haperf._native.lincheck import Search

    for key, ops in partitions(pair(events), spec):
        problem = encode(ops, spec, key, bound_pending=bound)
        args = (problem.kinds, problem.a, problem.b, problem.calls, problem.rets, problem.initial)
        native = Search(*args)
        reference = ReferenceSearch(*args)
        while True:
            v1, v2 = native.run(997), reference.run(997)
            assert v1 == v2
            assert native.steps == reference.steps
            if v1 != VERDICT_RUNNING:
                break
        assert native.best == reference.best
        assert native.stuck == reference.stuck
        assert native.best_state == reference.best_state
        # A cache too small for the search evicts (or gives up), and never changes a verdict.
        tight = Search(*args, None, 1 << 16)
        assert tight.run(10**8) in (v1, VERDICT_OUT_OF_MEMORY)


@settings(deadline=None)
@given(
    st.one_of(arbitrary_history(), arbitrary_history(unique=True)),
    st.sampled_from(["cas-register", "etcd-cas-register", "knossos-cas-register"]),
)
def test_bounding_info_operations_never_changes_the_verdict(events: list[Op], model: str) -> None:
    from haperf._native.lincheck import Search

    spec = MODELS[model]
    for key, ops in partitions(pair(events), spec):
        verdicts = []
        for bound in (True, False):
            problem = encode(ops, spec, key, bound_pending=bound)
            search = Search(
                problem.kinds, problem.a, problem.b, problem.calls, problem.rets, problem.initial
            )
            verdicts.append(search.run(10**7))
        assert verdicts[0] == verdicts[1] != VERDICT_RUNNING


def test_info_writes_are_bounded_by_their_first_observer_or_dropped() -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "info", "write", 1),      # read below: must precede it
        (1, "invoke", "write", 2), (1, "info", "write", 2),      # never observed: dropped
        (2, "invoke", "cas", [1, 3]), (2, "info", "cas", [1, 3]),  # 3 only needed by a drop
        (3, "invoke", "read", None), (3, "ok", "read", 1),
        (4, "invoke", "cas", [3, 4]), (4, "info", "cas", [3, 4]),  # 4 never seen: dropped
    )  # fmt: skip
    spec = MODELS["cas-register"]
    problem = encode(pair(history), spec, "k")
    assert [(op.f, op.value) for op in problem.ops] == [("write", 1), ("read", None)]
    assert problem.rets[0] == 7  # the read's return
    assert check(history).linearizable is True


def test_a_value_nobody_wrote_is_refuted_without_a_search() -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "read", None), (1, "ok", "read", 42),
    )  # fmt: skip
    result = check(history)
    assert result.linearizable is False
    assert result.steps == 0
    assert "observed the value 42, which no operation in the history writes" in result.explanation
    assert result.failure is not None and result.failure.stuck.output == 42


def test_info_operations_only_needed_through_a_chain_are_kept() -> None:
    history = h(
        (0, "invoke", "write", 1), (0, "info", "write", 1),      # needed by cas 1 -> 2
        (1, "invoke", "cas", [1, 2]), (1, "info", "cas", [1, 2]),  # needed: 2 is read
        (2, "invoke", "write", 5), (2, "info", "write", 5),      # needed by nobody
        (3, "invoke", "cas", [5, 6]), (3, "info", "cas", [5, 6]),  # 6 never read: dropped
        (4, "invoke", "read", None), (4, "ok", "read", 2),
    )  # fmt: skip
    problem = encode(pair(history), MODELS["cas-register"], "k")
    assert [op.value for op in problem.ops] == [1, (1, 2), None]
    # The cas is bounded by the read of 2; the write of 1 is needed only by that cas, which
    # no completed operation observes, so it stays pending.
    assert problem.rets == [-1, 9, 9]
    assert check(history).linearizable is True


def _planted_stale_read(seed: int, operations: int) -> tuple[list[Op], Operation, Operation]:
    """A harness-like history and a copy where a late read returns a value that was certainly
    overwritten before the read began: (planted history, the late read, the old read)."""
    from haperf.bench.suites.lincheck import harness_history

    history = harness_history(seed, operations)
    paired = pair(history)
    reads = [op for op in paired if op.f == "read" and op.outcome == "ok" and op.output]
    late = reads[-20]
    # An old read of the same key, with an ok write on that key strictly between the two reads.
    old = next(
        r
        for r in reversed(reads[:-200])
        if r.key == late.key
        and r.ret is not None
        and any(
            w.key == late.key and w.f == "write" and w.outcome == "ok" and w.ret is not None
            and w.call > r.ret and w.ret < late.call
            for w in paired
        )
    )  # fmt: skip
    planted = list(history)
    assert late.ret is not None
    event = planted[late.ret]  # pair() numbers events by their index in the history
    planted[late.ret] = Op(event.process, "ok", "read", event.key, old.output, event.time)
    return planted, late, old


def test_long_harness_like_history_and_a_planted_stale_read() -> None:
    from haperf.bench.suites.lincheck import harness_history

    assert check(harness_history(7, 4000)).linearizable is True
    planted, late, old = _planted_stale_read(7, 4000)
    result = check(planted)
    assert result.linearizable is False
    assert result.key == late.key
    assert result.failure is not None
    assert result.failure.stuck.output == old.output


def test_a_full_cache_evicts_far_states_and_still_reaches_the_verdict() -> None:
    from haperf._native.lincheck import VERDICT_VIOLATION, Search

    planted, late, _ = _planted_stale_read(11, 6000)
    ops = [op for op in pair(planted) if op.key == late.key]
    problem = encode(ops, MODELS["cas-register"], late.key)
    args = (problem.kinds, problem.a, problem.b, problem.calls, problem.rets, problem.initial)
    roomy = Search(*args)
    assert roomy.run(10**9) == VERDICT_VIOLATION
    assert roomy.evictions == 0
    assert roomy.cache_bytes > 1 << 20
    tight = Search(*args, None, 1 << 18)  # a quarter of what the roomy search held
    assert tight.run(10**9) == VERDICT_VIOLATION
    assert tight.evictions > 0
    assert tight.cache_bytes <= 1 << 18
    assert tight.steps >= roomy.steps  # evicted states may be explored again, never skipped
    assert check(planted, cache_bytes_max=1 << 18).linearizable is False


def _brute_force(ops: list[Operation]) -> bool:
    """An independent oracle for tiny histories under cas-register: try every subset of the
    info operations and every order of the chosen operations that respects real time."""
    from itertools import combinations, permutations

    must = [op for op in ops if op.outcome == "ok"]
    optional = [op for op in ops if op.outcome == "info" and op.f != "read"]

    def legal(order: tuple[Operation, ...]) -> bool:
        for i, first in enumerate(order):
            for later in order[i + 1 :]:
                if later.ret is not None and later.ret < first.call:
                    return False  # `later` returned before `first` was invoked
        state: object = None
        for op in order:
            if op.f == "read":
                if op.output != state:
                    return False
            elif op.f == "write":
                state = op.value
            else:
                if state != op.value[0]:
                    return False
                state = op.value[1]
        return True

    for size in range(len(optional) + 1):
        for extra in combinations(optional, size):
            if any(legal(order) for order in permutations([*must, *extra])):
                return True
    return False


@settings(deadline=None)
@given(st.one_of(arbitrary_history(events_max=14), arbitrary_history(unique=True, events_max=14)))
def test_verdicts_match_a_brute_force_oracle_on_tiny_histories(events: list[Op]) -> None:
    for key, ops in partitions(pair(events), MODELS["cas-register"]):
        expected = _brute_force(ops)
        assert check(ops).linearizable is expected, (key, ops)
        assert check(ops, native=False).linearizable is expected
