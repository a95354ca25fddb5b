"""Stub for haperf._native.confchange: Raft membership changes and their payload."""

from collections.abc import Iterable
from enum import IntEnum
from typing import Final

from typing_extensions import Buffer

class ConfChangeOp(IntEnum):
    CC_ADD_VOTER = 1
    CC_REMOVE_NODE = 2
    CC_ADD_LEARNER = 3

CC_ADD_VOTER: Final = ConfChangeOp.CC_ADD_VOTER
CC_REMOVE_NODE: Final = ConfChangeOp.CC_REMOVE_NODE
CC_ADD_LEARNER: Final = ConfChangeOp.CC_ADD_LEARNER
OP_NAMES: dict[int, str]

class ConfChange:
    changes: tuple[tuple[int, int], ...]
    joint: bool | None
    auto_leave: bool
    def __init__(
        self,
        changes: Iterable[tuple[int, int]] = (),
        joint: bool | None = None,
        auto_leave: bool = True,
    ) -> None: ...
    def encode(self) -> bytes: ...
    def is_leave_joint(self) -> bool: ...

class Membership:
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    voters_outgoing: tuple[int, ...]
    auto_leave: bool
    def __init__(
        self,
        voters: Iterable[int] = (),
        learners: Iterable[int] = (),
        voters_outgoing: Iterable[int] = (),
        auto_leave: bool = False,
    ) -> None: ...
    def is_joint(self) -> bool: ...
    def apply(self, cc: ConfChange) -> Membership: ...
    def all_ids(self) -> tuple[int, ...]: ...

def decode(data: Buffer) -> ConfChange: ...
