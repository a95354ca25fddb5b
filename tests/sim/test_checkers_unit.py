"""Checkers fed scripted observations: what they must flag and what they must let pass.

The case that matters most: a leader elected late in an OLD term (its vote replies were
delayed) may lack entries that a NEWER term committed. Raft's Leader Completeness only speaks of
leaders of later terms, so that is not a violation (the 100,000-seed sweep met it as seed
38611 with 5 nodes, a removed node winning term 4 after term 5 had committed).
"""

from haperf._native.raftmsg import Entry
from haperf.sim.checkers import LeaderCompleteness, NoAckLost, Reporter
from haperf.sim.disk import DiskState


def _log(terms: list[int]) -> DiskState:
    return DiskState(entries=[Entry(t, i + 1, f"c{i + 1}".encode()) for i, t in enumerate(terms)])


def test_stale_leader_of_an_older_term_may_lack_newer_commits() -> None:
    reporter = Reporter(seed=1)
    lc = LeaderCompleteness(reporter)
    full = _log([1, 1, 3, 3])
    lc.on_status(2, True, 5, 4, full)  # node 2 leads term 5 and commits up to 4
    lc.on_status(5, True, 4, 0, _log([1, 1]))  # node 5 wins term 4 late, without 3..4
    assert reporter.violations == []
    lc.on_status(4, True, 6, 0, _log([1, 1]))  # a leader of term 6 without them: a violation
    (v,) = reporter.violations
    assert v.checker == "leader_completeness" and v.node == 4 and v.term == 6 and v.index == 3
    assert "committed in term 5" in v.message


def test_acknowledged_entries_are_required_of_later_leaders_only() -> None:
    reporter = Reporter(seed=1)
    na = NoAckLost(reporter)
    na.on_ack(2, 3, b"c3", 5)
    na.on_status(5, True, 4, 0, _log([1, 1]))
    assert reporter.violations == []
    na.on_status(3, True, 6, 0, _log([1, 1]))
    (v,) = reporter.violations
    assert v.checker == "no_ack_lost" and v.index == 3 and v.node == 3


def test_acknowledged_twice_at_one_index() -> None:
    reporter = Reporter(seed=9)
    na = NoAckLost(reporter)
    na.on_ack(1, 7, b"a", 2)
    na.on_ack(1, 7, b"b", 3)
    assert [v.checker for v in reporter.violations] == ["no_ack_lost"]
    assert "seed 9" in str(reporter.violations[0])
