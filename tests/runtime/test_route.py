"""haperf._native.route against plain-Python references: grouping by destination (order kept,
destinations in order of first appearance, also past the linear-scan limit) and the search for
the first misrouted message; bad input raises TypeError and changes nothing.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import raftmsg as rm
from haperf._native.raftmsg import Message
from haperf._native.route import group_by_to, misrouted

U64 = (1 << 64) - 1


def reference_groups(msgs: list[Message]) -> list[tuple[int, list[Message]]]:
    groups: dict[int, list[Message]] = {}
    for m in msgs:
        groups.setdefault(m.to, []).append(m)
    return list(groups.items())


def message(to: int, frm: int = 1, n: int = 0) -> Message:
    return Message(rm.MSG_HEARTBEAT, to=to, frm=frm, commit=n)


destinations = st.one_of(st.integers(0, 40), st.sampled_from([U64, U64 - 1, 1 << 32]))


@given(st.lists(destinations, max_size=200))
def test_group_by_to_matches_the_reference(tos: list[int]) -> None:
    msgs = [message(to, n=i) for i, to in enumerate(tos)]
    got = group_by_to(msgs)
    want = reference_groups(msgs)
    assert [to for to, _ in got] == [to for to, _ in want]
    for (_, group), (_, expected) in zip(got, want, strict=True):
        assert all(a is b for a, b in zip(group, expected, strict=True))
        assert len(group) == len(expected)
    assert [m.commit for m in msgs] == list(range(len(tos)))  # the input is unchanged


def test_more_destinations_than_the_scan_keeps_first_appearance_order() -> None:
    tos = [30 - (i % 25) for i in range(100)]  # 25 destinations, above ROUTE_SCAN_MAX (16)
    got = group_by_to([message(to, n=i) for i, to in enumerate(tos)])
    assert [to for to, _ in got] == list(dict.fromkeys(tos))
    assert all([m.commit for m in group] == sorted(m.commit for m in group) for _, group in got)


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 3])), max_size=50))
def test_misrouted_finds_the_first_bad_message(pairs: list[tuple[int, int]]) -> None:
    msgs = [message(to, frm) for frm, to in pairs]
    want = next((i for i, (frm, to) in enumerate(pairs) if (frm, to) != (1, 2)), -1)
    assert misrouted(msgs, 1, 2) == want


@pytest.mark.parametrize("bad", [[1], [message(2), "x"], [None]])
def test_non_messages_raise_type_error(bad: list[object]) -> None:
    with pytest.raises(TypeError):
        group_by_to(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        misrouted([message(2, 1), *bad], 1, 2)  # type: ignore[list-item]
