"""Stub for haperf._native.raftlog: the in-memory Raft log since the last snapshot."""

from haperf._native.raftmsg import Entry

class RaftLog:
    entries: list[Entry]
    snap_index: int
    snap_term: int
    committed: int
    applying: int
    applied: int
    stable: int
    def __init__(self, snap_index: int = 0, snap_term: int = 0) -> None: ...
    @property
    def last(self) -> int: ...
    def term_of(self, index: int) -> int: ...
