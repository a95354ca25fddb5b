"""One PySyncObj cluster member serving a replicated dict over a small RESP port.

Run as `python -m clusterbench.pysyncobj_server --self 127.0.0.1:R --partner ... --resp PORT
--data DIR`. Owns the PySyncObj side of the peer comparison: a `SyncObj` holding a dict, with
`set` and `get` as replicated methods (a `get` goes through the Raft log, which is the only
linearizable read PySyncObj offers), PySyncObj's file journal and full-dump file in DIR (PySyncObj
never fsyncs them: the journal is an mmap), and an asyncio RESP server so that redis-benchmark
and the benchmark's own clients drive it exactly as they drive haperf.

Commands: SET k v, GET k (through the log), LGET k (this member's local copy, not
linearizable), PING, STATUS (JSON: state, leader, commit and applied index), CONFIG GET x (an
empty value, for redis-benchmark's start-up probe). Invariants: replies on a connection come back in
request order; PySyncObj's callbacks run on its own thread and are handed to the event loop in
batches (one wake-up per batch, not per write); at most PENDING_PER_CONNECTION_MAX requests wait
per connection.
"""

import argparse
import asyncio
import collections
import json
import threading
from pathlib import Path
from typing import Any, cast

from pysyncobj import (  # type: ignore[import-untyped]
    FAIL_REASON,
    SyncObj,
    SyncObjConf,
    replicated,
)

from clusterbench.resp import RespParser, RespProtocolError

PENDING_PER_CONNECTION_MAX = 65_536
_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}
_FAIL_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}


class ReplicatedDict(SyncObj):  # type: ignore[misc]
    """The replicated state machine: a dict of bytes."""

    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._data: dict[bytes, bytes] = {}

    @replicated  # type: ignore[untyped-decorator]
    def set(self, key: bytes, value: bytes) -> bool:
        self._data[key] = value
        return True

    @replicated  # type: ignore[untyped-decorator]
    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def local_get(self, key: bytes) -> bytes | None:
        return self._data.get(key)


def _bulk(value: bytes | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Completions:
    """Results from PySyncObj's thread, drained on the loop with one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: collections.deque[tuple[list[Any], bytes]] = collections.deque()
        self._wake_pending = False
        self._lock = threading.Lock()

    def post(self, slot: list[Any], reply: bytes) -> None:
        """Called on PySyncObj's thread: queue the reply, wake the loop if nobody has yet."""
        self._done.append((slot, reply))
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        touched: dict[int, RespSession] = {}
        done = self._done
        while done:
            slot, reply = done.popleft()
            slot[0] = reply
            session: RespSession = slot[1]
            touched[id(session)] = session
        for session in touched.values():
            session.flush()


class RespSession(asyncio.Protocol):
    """One client connection: parse commands, start them, write replies in order."""

    def __init__(self, kv: ReplicatedDict, completions: Completions) -> None:
        self._kv = kv
        self._completions = completions
        self._parser = RespParser()
        self._pending: collections.deque[list[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            commands = self._parser.feed(data)
        except (RespProtocolError, ValueError) as exc:
            if self._transport is not None:
                self._transport.write(b"-ERR protocol error: %s\r\n" % str(exc).encode())
                self._transport.close()
            return
        for command in commands:
            self._start(command)
        self.flush()

    def _callback(self, slot: list[Any], kind: str) -> Any:
        post = self._completions.post

        def done(result: Any, error: int) -> None:
            if error != FAIL_REASON.SUCCESS:
                name = _FAIL_NAMES.get(error, str(error))
                post(slot, b"-ERR pysyncobj %s\r\n" % name.encode())
            elif kind == "set":
                post(slot, b"+OK\r\n")
            else:
                post(slot, _bulk(result))

        return done

    def _start(self, command: Any) -> None:
        slot: list[Any] = [None, self]
        self._pending.append(slot)
        if not isinstance(command, list) or not command or not isinstance(command[0], bytes):
            slot[0] = b"-ERR expected a RESP array of bulk strings\r\n"
            return
        if len(self._pending) > PENDING_PER_CONNECTION_MAX:
            slot[0] = b"-ERR too many requests in flight on this connection\r\n"
            return
        name = command[0].upper()
        if name == b"SET" and len(command) >= 3:
            self._kv.set(command[1], command[2], callback=self._callback(slot, "set"))
        elif name == b"GET" and len(command) == 2:
            self._kv.get(command[1], callback=self._callback(slot, "get"))
        elif name == b"LGET" and len(command) == 2:
            slot[0] = _bulk(self._kv.local_get(command[1]))
        elif name == b"PING":
            slot[0] = b"+PONG\r\n"
        elif name == b"STATUS":
            slot[0] = _bulk(json.dumps(status(self._kv)).encode())
        elif name == b"CONFIG" and len(command) == 3:
            # redis-benchmark asks for `save` and `appendonly` at start; nothing to configure.
            slot[0] = b"*2\r\n" + _bulk(command[2]) + _bulk(b"")
        else:
            slot[0] = b"-ERR unknown command or wrong number of arguments\r\n"

    def flush(self) -> None:
        pending = self._pending
        out = []
        while pending and pending[0][0] is not None:
            out.append(pending.popleft()[0])
        if out and self._transport is not None:
            self._transport.writelines(out)


def status(kv: ReplicatedDict) -> dict[str, Any]:
    st = kv.getStatus()
    leader = st.get("leader")
    return {
        "state": _STATE_NAMES.get(st["state"], str(st["state"])),
        "leader": None if leader is None else str(leader),
        "self": str(st["self"]),
        "commit_idx": st["commit_idx"],
        "last_applied": st["last_applied"],
        "log_len": st["log_len"],
    }


async def serve(args: argparse.Namespace) -> None:
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    # PySyncObj's defaults for the Raft timings (0.4-1.4 s election timeout, 0.1 s append
    # period); its file journal plus a full dump so that a restarted member recovers its state.
    conf = SyncObjConf(
        journalFile=str(data / "journal"),
        fullDumpFile=str(data / "dump"),
        commandsWaitLeader=True,
    )
    kv = ReplicatedDict(args.self_addr, list(args.partner), conf)
    loop = asyncio.get_running_loop()
    completions = Completions(loop)
    server = await loop.create_server(
        lambda: RespSession(kv, completions), "127.0.0.1", args.resp, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--partner", action="append", default=[])
    parser.add_argument("--resp", type=int, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
