"""Stub for haperf._native.raft: the Raft state machine (RawNode), Config, Ready."""

from collections.abc import Callable, Iterable
from typing import Any, Final

from typing_extensions import Buffer

from haperf._native.confchange import ConfChange, Membership
from haperf._native.raftlog import RaftLog
from haperf._native.raftmsg import ConfState, Entry, Message, SnapshotMeta
from haperf._native.tracker import Progress

ROLE_NAMES: tuple[str, str, str, str]
FOLLOWER: Final[int]
CANDIDATE: Final[int]
LEADER: Final[int]
PRE_CANDIDATE: Final[int]
TRANSFER_CONTEXT: Final[bytes]
ELECTION_TICK_MAX: Final[int]
PROPOSAL_ENTRIES_MAX: Final[int]
PEERS_MAX: Final[int]

class Config:
    id: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    election_tick: int
    heartbeat_tick: int
    pre_vote: bool
    check_quorum: bool
    inflight_msgs_max: int
    msg_bytes_max: int
    committed_bytes_max: int
    lease_read: bool
    lease_drift_ticks: int
    forward_proposals: bool
    snapshot_chunk_bytes: int
    snapshot_bytes_max: int
    pending_reads_max: int
    uncommitted_entries_max: int
    def __init__(
        self,
        id: int,
        voters: Iterable[int] = (),
        learners: Iterable[int] = (),
        *,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        pre_vote: bool = True,
        check_quorum: bool = True,
        inflight_msgs_max: int = 256,
        msg_bytes_max: int = 1 << 20,
        committed_bytes_max: int = 64 << 20,
        lease_read: bool = False,
        lease_drift_ticks: int = 2,
        forward_proposals: bool = True,
        snapshot_chunk_bytes: int = 1 << 20,
        snapshot_bytes_max: int = 1 << 30,
        pending_reads_max: int = 4096,
        uncommitted_entries_max: int = 1 << 20,
    ) -> None: ...

class HardState:
    term: int
    vote: int
    commit: int
    def __init__(self, term: int = 0, vote: int = 0, commit: int = 0) -> None: ...

class SoftState:
    leader: int
    role: int
    def __init__(self, leader: int = 0, role: int = 0) -> None: ...
    @property
    def role_name(self) -> str: ...

class Ready:
    soft_state: SoftState | None
    hard_state: HardState | None
    entries: list[Entry]
    snapshot: tuple[SnapshotMeta, bytes] | None
    committed_entries: list[Entry]
    messages: list[Message]
    read_states: list[tuple[int, bytes]]
    must_sync: bool

class RawNode:
    config: Config
    id: int
    term: int
    vote: int
    lead: int
    lead_transferee: int
    removal_index: int
    role: int
    log: RaftLog
    membership: Membership
    randomized_election_timeout: int
    tick_count: int
    rng_state: int
    def __init__(
        self,
        config: Config,
        rng_seed: int,
        *,
        hard_state: HardState | None = None,
        snapshot: tuple[SnapshotMeta, Buffer] | None = None,
        entries: Iterable[Entry] = (),
        applied: int = 0,
    ) -> None: ...
    @property
    def commit(self) -> int: ...
    @property
    def applied(self) -> int: ...
    @property
    def last_index(self) -> int: ...
    @property
    def role_name(self) -> str: ...
    def tick(self) -> None: ...
    def step(self, m: Message) -> None: ...
    def campaign(self) -> None: ...
    def propose(self, data: Buffer) -> int: ...
    def propose_batch(self, datas: list[bytes]) -> int: ...
    def propose_conf_change(self, cc: ConfChange) -> int: ...
    def apply_conf_change(self, change: ConfChange | Buffer) -> ConfState: ...
    def conf_state(self) -> ConfState: ...
    def read_index(self, ctx: bytes) -> None: ...
    def transfer_leader(self, to: int) -> None: ...
    def report_unreachable(self, id: int) -> None: ...
    def report_snapshot(self, id: int, ok: bool) -> None: ...
    def compact(self, index: int, data: Buffer) -> SnapshotMeta: ...
    def has_ready(self) -> bool: ...
    def ready(self) -> Ready: ...
    def advance(self, rd: Ready) -> None: ...
    def status(self) -> dict[str, object]: ...
    def progress(self, id: int) -> Progress | None: ...
    def lease_valid(self) -> bool: ...

def apply_entries(
    entries: list[Entry],
    applied: int,
    apply: Callable[[int, bytes], object],
    apply_conf_change: Callable[[Buffer], object],
    proposals: dict[int, Any],
    resolve: Callable[[int, int, object], None],
) -> int: ...
