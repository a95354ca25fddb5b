"""Stub for haperf._native.raftmsg: the Raft message types shared by core, codec and runtime."""

from enum import IntEnum
from typing import Final

from typing_extensions import Buffer

class MsgType(IntEnum):
    MSG_PROP = 1
    MSG_APP = 2
    MSG_APP_RESP = 3
    MSG_VOTE = 4
    MSG_VOTE_RESP = 5
    MSG_PREVOTE = 6
    MSG_PREVOTE_RESP = 7
    MSG_HEARTBEAT = 8
    MSG_HEARTBEAT_RESP = 9
    MSG_SNAP = 10
    MSG_SNAP_RESP = 11
    MSG_TIMEOUT_NOW = 12
    MSG_READ_INDEX = 13
    MSG_READ_INDEX_RESP = 14

class EntryType(IntEnum):
    ENTRY_NORMAL = 0
    ENTRY_CONF_CHANGE = 1

MSG_PROP: Final = MsgType.MSG_PROP
MSG_APP: Final = MsgType.MSG_APP
MSG_APP_RESP: Final = MsgType.MSG_APP_RESP
MSG_VOTE: Final = MsgType.MSG_VOTE
MSG_VOTE_RESP: Final = MsgType.MSG_VOTE_RESP
MSG_PREVOTE: Final = MsgType.MSG_PREVOTE
MSG_PREVOTE_RESP: Final = MsgType.MSG_PREVOTE_RESP
MSG_HEARTBEAT: Final = MsgType.MSG_HEARTBEAT
MSG_HEARTBEAT_RESP: Final = MsgType.MSG_HEARTBEAT_RESP
MSG_SNAP: Final = MsgType.MSG_SNAP
MSG_SNAP_RESP: Final = MsgType.MSG_SNAP_RESP
MSG_TIMEOUT_NOW: Final = MsgType.MSG_TIMEOUT_NOW
MSG_READ_INDEX: Final = MsgType.MSG_READ_INDEX
MSG_READ_INDEX_RESP: Final = MsgType.MSG_READ_INDEX_RESP
ENTRY_NORMAL: Final = EntryType.ENTRY_NORMAL
ENTRY_CONF_CHANGE: Final = EntryType.ENTRY_CONF_CHANGE
MSG_TYPE_NAMES: dict[int, str]

class Entry:
    term: int
    index: int
    type: int
    data: Buffer
    def __init__(
        self, term: int = 0, index: int = 0, data: Buffer = b"", type: int = 0
    ) -> None: ...

class ConfState:
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    voters_outgoing: tuple[int, ...]
    auto_leave: bool
    def __init__(
        self,
        voters: tuple[int, ...] | list[int] = (),
        learners: tuple[int, ...] | list[int] = (),
        voters_outgoing: tuple[int, ...] | list[int] = (),
        auto_leave: bool = False,
    ) -> None: ...

class SnapshotMeta:
    index: int
    term: int
    conf: ConfState
    def __init__(self, index: int = 0, term: int = 0, conf: ConfState | None = None) -> None: ...

class Message:
    type: int
    to: int
    frm: int
    term: int
    log_term: int
    index: int
    commit: int
    reject: bool
    reject_hint: int
    hint_term: int
    entries: list[Entry]
    context: bytes
    snapshot: SnapshotMeta | None
    snap_offset: int
    snap_data: Buffer
    snap_done: bool
    def __init__(
        self,
        type: int = 0,
        to: int = 0,
        frm: int = 0,
        term: int = 0,
        log_term: int = 0,
        index: int = 0,
        commit: int = 0,
        reject: bool = False,
        reject_hint: int = 0,
        hint_term: int = 0,
        entries: list[Entry] | None = None,
        context: bytes = b"",
        snapshot: SnapshotMeta | None = None,
        snap_offset: int = 0,
        snap_data: Buffer = b"",
        snap_done: bool = False,
    ) -> None: ...
