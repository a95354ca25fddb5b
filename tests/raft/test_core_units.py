"""Unit tests of the core helpers: majorities (quorum), Progress and Inflights (tracker), the
in-memory log (raftlog), through their Python entry points.
"""

from hypothesis import given
from hypothesis import strategies as st

from haperf._native import quorum
from haperf._native.raftlog import RaftLog
from haperf._native.tracker import Inflights, Progress


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=64))
def test_committed_index_is_the_largest_value_a_majority_reached(values: list[int]) -> None:
    """Raft 5.3/5.4: an index is committed when a majority stores it."""
    got = quorum.committed_index(values)
    assert sum(v >= got for v in values) > len(values) // 2
    assert sum(v >= got + 1 for v in values) <= len(values) // 2


def test_empty_configuration_agrees_with_anything() -> None:
    """Thesis 4.3: an empty outgoing config must not constrain a joint decision."""
    assert quorum.committed_index([]) == 2**64 - 1
    assert quorum.vote_result(0, 0, 0) == 1


@given(st.integers(1, 15), st.data())
def test_vote_result_matches_majority_arithmetic(n: int, data: st.DataObject) -> None:
    """Raft 5.2: a candidate wins with votes from a majority; it has lost once a majority is
    out of reach."""
    granted = data.draw(st.integers(0, n))
    rejected = data.draw(st.integers(0, n - granted))
    res = quorum.vote_result(n, granted, rejected)
    q = n // 2 + 1
    if granted >= q:
        assert res == 1
    elif n - rejected < q:
        assert res == 2
    else:
        assert res == 0


def test_inflights_bound_and_release() -> None:
    """Thesis 3.5 flow control: the window holds at most its size."""
    progress = Progress(2, 3)
    window = progress.inflights
    assert isinstance(window, Inflights) and window.size == 3
    assert window.indexes() == []
    assert progress.state_name == "probe"
    assert "Progress(id=2" in repr(progress)


def test_raftlog_term_lookup_around_the_snapshot() -> None:
    log = RaftLog(5, 2)
    assert log.last == 5 and log.term_of(5) == 2
    assert log.term_of(4) == 0 and log.term_of(6) == 0
    assert (log.committed, log.applied, log.stable) == (5, 5, 5)
