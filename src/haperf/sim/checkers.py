"""Safety checkers: Raft's guarantees, checked against what every node does, after every event.

Owns Violation, the Checker base class and the checkers (Raft paper, Figure 3, and reads):

- ElectionSafety: at most one leader per term (Raft 5.2).
- LogMatching: two entries with the same index and term hold the same command and follow
  entries with the same term, so the logs agree up to there (Raft 5.3). Checked at every write:
  by induction over indexes, (index, term) -> (command, previous term) must be one function
  across all nodes and all time.
- LeaderCompleteness: a leader's log holds every entry committed in an earlier term (Raft 5.4).
- StateMachineSafety: no two nodes apply (or commit) different commands at one index, and each
  node applies in increasing index order (Raft 5.4.3).
- CommitMonotonic: a node's commit index never decreases while it runs (Raft 5.3; a restart may
  reload an older commit, since the commit index need not be synced) and never passes its log.
- NoAckLost: a proposal whose result a client saw stays at its index on every node that applies
  that index, and in every later leader's log.
- ReadLinearizable: a linearizable read (ReadIndex) is served at an index at or after every
  write acknowledged before the read started (Raft thesis 6.4).

Invariants: checkers only observe (they never change the simulation), keep state proportional to
the number of distinct entries, and do work proportional to what changed in the event (except
LeaderCompleteness and NoAckLost, which scan once per new leader). The first violation of a run
is the one reported; `Violation` names the checker, seed, node, term and index.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haperf.sim.disk import DiskState


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken guarantee: which checker, where, when, and what it saw."""

    checker: str
    seed: int
    node: int
    term: int
    index: int
    time_ns: int
    event: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.checker} violated (seed {self.seed}, node {self.node}, term {self.term}, "
            f"index {self.index}, t={self.time_ns} ns, event {self.event}): {self.message}"
        )


class Reporter:
    """Collects violations; `where` is set by the runner before each event."""

    __slots__ = ("event", "seed", "time_ns", "violations")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.time_ns = 0
        self.event = 0
        self.violations: list[Violation] = []

    def fail(self, checker: str, node: int, term: int, index: int, message: str) -> None:
        self.violations.append(
            Violation(checker, self.seed, node, term, index, self.time_ns, self.event, message)
        )


class Checker:
    """Base class: every hook is a no-op; a checker overrides what it needs.

    Hooks: `on_status` after every event that touched a node (its role, term and commit, and
    its log as written so far), `on_append` before a node writes entries, `on_apply` when a
    node's state machine applies a command, `on_ack` when a client sees a proposal's result,
    `on_restart` when a crashed node starts again, `finish` once at the end of the run.
    """

    name = "checker"

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def fail(self, node: int, term: int, index: int, message: str) -> None:
        self.reporter.fail(self.name, node, term, index, message)

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        return None

    def on_append(self, node: int, entries: Sequence[Any], prev_term: int | None) -> None:
        return None

    def on_apply(self, node: int, index: int, data: bytes) -> None:
        return None

    def on_ack(self, node: int, index: int, data: bytes, term: int) -> None:
        return None

    def on_restart(self, node: int, log: DiskState) -> None:
        return None

    def on_read(self, node: int, index: int, acked_before: int) -> None:
        return None

    def finish(self, logs: dict[int, DiskState]) -> None:
        return None


class ElectionSafety(Checker):
    """Raft 5.2: at most one leader can be elected in a given term."""

    name = "election_safety"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        self.leaders: dict[int, int] = {}

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        if not is_leader:
            return
        first = self.leaders.setdefault(term, node)
        if first != node:
            self.fail(node, term, 0, f"node {node} is leader of term {term}, node {first} was too")


class LogMatching(Checker):
    """Raft 5.3: same (index, term) => same command and the same log before it."""

    name = "log_matching"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        # (index, term) -> (type, command, term of the previous entry or None if unknown)
        self.seen: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}

    def on_append(self, node: int, entries: Sequence[Any], prev_term: int | None) -> None:
        seen = self.seen
        for e in entries:
            index, term = int(e.index), int(e.term)
            mine = (int(e.type), bytes(e.data), prev_term)
            known = seen.get((index, term))
            if known is None:
                seen[(index, term)] = mine
            elif known[0] != mine[0] or known[1] != mine[1]:
                self.fail(
                    node,
                    term,
                    index,
                    f"entry ({index}, term {term}) holds {mine[1]!r} on node {node} but "
                    f"{known[1]!r} elsewhere",
                )
                return
            elif known[2] is not None and prev_term is not None and known[2] != prev_term:
                self.fail(
                    node,
                    term,
                    index,
                    f"entry ({index}, term {term}) follows an entry of term {prev_term} on node "
                    f"{node} but of term {known[2]} elsewhere: the logs differ before it",
                )
                return
            prev_term = term


class LeaderCompleteness(Checker):
    """Raft 5.4: an entry committed in term T is in the log of every leader of a term after T.

    The term an entry was committed in is the term of the first node seen to count it as
    committed (normally the leader that committed it). A leader of an older term can still be
    elected after that (its vote replies were slow) and may lack the entry: it cannot commit
    anything, since every majority has moved on, and Raft does not require it to hold the entry.
    """

    name = "leader_completeness"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        # index -> (term of the committed entry, term it was first seen committed in)
        self.committed: dict[int, tuple[int, int]] = {}
        self.commit_seen: dict[int, int] = {}  # node -> highest commit index recorded from it
        self.checked: dict[tuple[int, int], bool] = {}  # (node, term) leaderships checked

    def on_restart(self, node: int, log: DiskState) -> None:
        self.commit_seen[node] = 0

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        done = self.commit_seen.get(node, 0)
        if commit > done:
            committed = self.committed
            for index in range(max(done, log.snapshot_index) + 1, commit + 1):
                t = log.term_at(index)
                if t is not None:
                    committed.setdefault(index, (t, term))
            self.commit_seen[node] = commit
        if is_leader and (node, term) not in self.checked:
            self.checked[(node, term)] = True
            offset = log.snapshot_index
            for index, (t, commit_term) in self.committed.items():
                if index > offset and commit_term < term and log.term_at(index) != t:
                    self.fail(
                        node,
                        term,
                        index,
                        f"node {node} leads term {term} without the entry (index {index}, term "
                        f"{t}) committed in term {commit_term} (its log has term "
                        f"{log.term_at(index)} there, last index {log.last_index})",
                    )
                    return


class StateMachineSafety(Checker):
    """Raft 5.4.3: every node applies the same command at the same index, in index order."""

    name = "state_machine_safety"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        self.applied: dict[int, tuple[bytes, int]] = {}  # index -> (command, first node)
        self.last_applied: dict[int, int] = {}
        self.committed: dict[int, tuple[int, bytes, int]] = {}  # index -> (term, command, node)
        self.commit_seen: dict[int, int] = {}

    def on_restart(self, node: int, log: DiskState) -> None:
        self.last_applied[node] = log.snapshot_index
        self.commit_seen[node] = 0

    def on_apply(self, node: int, index: int, data: bytes) -> None:
        last = self.last_applied.get(node, 0)
        if index <= last:
            self.fail(node, 0, index, f"node {node} applied index {index} after index {last}")
            return
        self.last_applied[node] = index
        first = self.applied.setdefault(index, (data, node))
        if first[0] != data:
            self.fail(
                node,
                0,
                index,
                f"node {node} applied {data!r} at index {index}, node {first[1]} applied "
                f"{first[0]!r}",
            )

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        done = self.commit_seen.get(node, 0)
        if commit <= done:
            return
        committed = self.committed
        for index in range(max(done, log.snapshot_index) + 1, commit + 1):
            e = log.entry(index)
            if e is None:
                continue
            mine = (int(e.term), bytes(e.data), node)
            first = committed.setdefault(index, mine)
            if first[0] != mine[0] or first[1] != mine[1]:
                self.fail(
                    node,
                    mine[0],
                    index,
                    f"node {node} committed ({index}, term {mine[0]}, {mine[1]!r}) but node "
                    f"{first[2]} committed (term {first[0]}, {first[1]!r}) there",
                )
                return
        self.commit_seen[node] = commit


class CommitMonotonic(Checker):
    """Raft 5.3: a running node's commit index only grows, and never passes its last index."""

    name = "commit_monotonic"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        self.commit: dict[int, int] = {}

    def on_restart(self, node: int, log: DiskState) -> None:
        self.commit.pop(node, None)

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        last = self.commit.get(node, 0)
        if commit < last:
            self.fail(node, term, commit, f"node {node} commit index went back {last} -> {commit}")
        elif commit > log.last_index:
            self.fail(
                node,
                term,
                commit,
                f"node {node} commit index {commit} is past its last log index {log.last_index}",
            )
        self.commit[node] = commit


class NoAckLost(Checker):
    """A proposal acknowledged to a client is never lost or replaced.

    Leaders are checked like LeaderCompleteness checks them: a leader of a term after the one
    the acknowledging node was in must hold the acknowledged entry.
    """

    name = "no_ack_lost"

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(reporter)
        self.acked: dict[int, tuple[bytes, int]] = {}  # index -> (command, term at the ack)
        self.checked: dict[tuple[int, int], bool] = {}

    def on_ack(self, node: int, index: int, data: bytes, term: int) -> None:
        known = self.acked.setdefault(index, (data, term))
        if known[0] != data:
            self.fail(
                node,
                term,
                index,
                f"index {index} acknowledged twice: {known[0]!r}, then {data!r} via node {node}",
            )

    def on_apply(self, node: int, index: int, data: bytes) -> None:
        acked = self.acked.get(index)
        if acked is not None and acked[0] != data:
            self.fail(
                node,
                0,
                index,
                f"acknowledged proposal {acked[0]!r} at index {index} lost: node {node} "
                f"applied {data!r} there",
            )

    def on_status(self, node: int, is_leader: bool, term: int, commit: int, log: DiskState) -> None:
        if not is_leader or (node, term) in self.checked:
            return
        self.checked[(node, term)] = True
        offset = log.snapshot_index
        for index, (data, ack_term) in self.acked.items():
            if index <= offset or ack_term >= term:
                continue
            e = log.entry(index)
            if e is None or bytes(e.data) != data:
                self.fail(
                    node,
                    term,
                    index,
                    f"acknowledged proposal {data!r} at index {index} (acknowledged in term "
                    f"{ack_term}) is not in the log of node {node}, leader of term {term}",
                )
                return


class ReadLinearizable(Checker):
    """Thesis 6.4: a read returns state at least as new as every write acknowledged before it."""

    name = "read_linearizable"

    def on_read(self, node: int, index: int, acked_before: int) -> None:
        if index < acked_before:
            self.fail(
                node, 0, index,
                f"a read served by node {node} at index {index} misses the write acknowledged "
                f"at index {acked_before} before the read started (stale read)",
            )


CHECKERS: tuple[type[Checker], ...] = (
    ElectionSafety,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    CommitMonotonic,
    NoAckLost,
    ReadLinearizable,
)
CHECKER_NAMES = tuple(c.name for c in CHECKERS)
