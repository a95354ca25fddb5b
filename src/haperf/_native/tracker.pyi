"""Stub for haperf._native.tracker: per-follower replication progress and in-flight window."""

from enum import IntEnum
from typing import Final

class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2

PROBE: Final = ProgressState.PROBE
REPLICATE: Final = ProgressState.REPLICATE
SNAPSHOT: Final = ProgressState.SNAPSHOT
STATE_NAMES: tuple[str, str, str]

class Inflights:
    count: int
    size: int
    def __init__(self, size: int) -> None: ...
    def indexes(self) -> list[int]: ...

class Progress:
    id: int
    match: int
    next: int
    state: int
    probe_sent: bool
    recent_active: bool
    is_learner: bool
    pending_snapshot: int
    snap_offset: int
    acked_round: int
    match_rejects: int
    inflights: Inflights
    def __init__(self, id: int, inflight_msgs_max: int, is_learner: bool = False) -> None: ...
    @property
    def state_name(self) -> str: ...
