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
    """Many overlapping writes, then a read of a value nobody wrote: refuted only by search."""
    events = [Op(p, "invoke", "write", "k", p, p) for p in range(writers)]
    events += [Op(p, "ok", "write", "k", p, writers + p) for p in range(writers)]
    t = 2 * writers
    return [*events, Op(99, "invoke", "read", "k", None, t), Op(99, "ok", "read", "k", 777, t + 1)]


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
    assert result.failure.stuck.output == 777
    assert len(result.failure.candidates) == 0  # every write returned before the read began


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
def arbitrary_history(draw: st.DrawFn) -> list[Op]:
    """Well-formed but otherwise random: values read need not have been written."""
    events: list[Op] = []
    flight: dict[int, tuple[str, object]] = {}
    for _ in range(draw(st.integers(1, 24))):
        p = draw(st.integers(0, 3))
        t = len(events)
        if p in flight:
            f, value = flight.pop(p)
            typ = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
            out = draw(st.one_of(st.none(), st.integers(0, 2))) if f == "read" else value
            events.append(Op(p, typ, f, "k", out if typ == "ok" or f != "read" else None, t))
        else:
            f = draw(st.sampled_from(["read", "write", "cas"]))
            value = None
            if f == "write":
                value = draw(st.integers(0, 2))
            elif f == "cas":
                value = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            flight[p] = (f, value)
            events.append(Op(p, "invoke", f, "k", value, t))
    return events


@settings(deadline=None)
@given(arbitrary_history(), st.sampled_from(["cas-register", "etcd-cas-register"]))
def test_native_search_matches_the_reference_step_for_step(events: list[Op], model: str) -> None:
    spec = MODELS[model]
    from haperf._native.lincheck import Search

    for key, ops in partitions(pair(events), spec):
        problem = encode(ops, spec, key)
        args = (problem.kinds, problem.a, problem.b, problem.calls, problem.rets, problem.initial)
        native = Search(*args)
        reference = ReferenceSearch(*args)
        while True:
            v1, v2 = native.run(7), reference.run(7)
            assert v1 == v2
            assert native.steps == reference.steps
            if v1 != VERDICT_RUNNING:
                break
        assert native.best == reference.best
        assert native.stuck == reference.stuck
        assert native.best_state == reference.best_state
