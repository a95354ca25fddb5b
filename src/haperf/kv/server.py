"""haperf.kv.server: RespServer, the Redis-protocol front end (RESP2; RESP3 after HELLO 3).

Owns the RESP command table, the per-connection protocol and the mapping of Raft outcomes to
RESP replies. One RespServer serves one node; `node` is a haperf.raft.RaftNode (or anything with
the same propose_many/barrier/is_leader/leader_id/member_metadata/status API).

How a request batch is served (everything one read from the socket completed):
- commands are taken in order and grouped into runs: a run of writes is proposed together with
  one node.propose_many (one log append); a run of reads waits for one node.barrier()
  (linearizable ReadIndex; concurrent barriers are batched by the node; on a follower the
  barrier asks the leader, so followers serve reads too) and is then answered from the store
  before the next await; commands that touch no data (PING, ECHO, INFO...) are
  answered in place. Reads right after this batch's own writes were applied need no barrier:
  those writes committed after the reads arrived, so everything acknowledged before is applied.
- the replies of the whole batch go out in one write, in request order.
- while a batch is being served, requests that arrive are queued and the connection stops
  reading (pause_reading) until the batch is answered; it also stops while the socket's write
  buffer is above its high-water mark. So nothing buffers without bound: a connection holds at
  most the batch being served, one more read's worth of requests, and their replies.

Error replies (see docs/kv.md): `-MOVED 0 host:port` (this node is not the leader; the address
is the leader's RESP address: redis-py raises MovedError with .host/.port, `redis-cli -c`
follows it), `-TRYAGAIN ...` (no leader known yet: retry), `-UNKNOWN ...` (the write may or may
not have been applied: read to find out), `-DROPPED ...` (the write was definitely not applied:
safe to retry), `-ERR ...` (bad request; nothing was applied). A stream that cannot be
resynchronised gets `-ERR Protocol error: ...` and is closed.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from haperf._version import __version__
from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    KVCommandError,
    KVValueError,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedError,
    ProtocolError,
)
from haperf.kv import commands as c
from haperf.kv.resp import ErrorReply, RequestParser, encode_replies, encode_reply
from haperf.kv.store import KVStore
from haperf.runtime.address import parse_address

log = logging.getLogger("haperf.kv.server")

CLIENTS_MAX = 10_000
# Most keys one KEYS reply lists (the store scans everything; this bounds the reply).
KEYS_REPLY_MAX = 10_000
# Most requests one batch may hold before it is cut and served in parts (bounds one
# propose_many and one reply buffer).
BATCH_COMMANDS_MAX = 4096
# TTL bounds: EX/PX values above this are refused (about 292 years in ns fits a u64 with room).
TTL_MS_MAX = 1 << 43

OK = "OK"
# What immediate() returns for a command it does not know.
UNKNOWN = object()
PONG = "PONG"
REDIS_COMPAT_VERSION = "7.0.0"


class KVNode(Protocol):
    """What the server needs from a Raft node (haperf.raft.RaftNode has all of it)."""

    @property
    def id(self) -> int: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def leader_id(self) -> int: ...
    async def propose_many(self, commands: list[bytes]) -> list[object]: ...
    async def barrier(self) -> int: ...
    def member_metadata(self, node_id: int) -> Mapping[str, str]: ...
    def status(self) -> dict[str, Any]: ...


def _err(message: str) -> ErrorReply:
    return ErrorReply(message)


def _arity(name: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for '{name.lower()}' command")


SYNTAX_ERROR = ErrorReply("ERR syntax error")
NOT_INTEGER = ErrorReply("ERR value is not an integer or out of range")


def _int(raw: bytes) -> int | None:
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits or len(digits) > 19 or not digits.isdigit():
        return None
    if len(digits) > 1 and digits[0] == 48:  # no leading zeros, as Redis's string2ll
        return None
    value = int(raw)
    if not c.INT64_MIN <= value <= c.INT64_MAX:
        return None
    return value


_NODE_ERRORS = (NotLeaderError, CommitUnknownError, ProposalDroppedError, NodeStoppedError)

# A write: the encoded command and how to turn its apply result into a reply.
Write = tuple[bytes, Callable[[object], object]]
# A read: run after the barrier with the wall clock; returns the reply.
Read = Callable[[int], object]


def _set_reply(result: object) -> object:
    # None: a node in ack="leader" mode acknowledged the plain SET after its own fsync, before
    # apply (a plain SET always writes).
    if result is True or result is None:
        return OK
    if result is False:
        return None
    return _result_error(result)


def _cond_set_reply(result: object) -> object:
    """SET NX/XX: the result decides the reply, so it is never proposed with ack="leader"."""
    if result is True:
        return OK
    if result is False:
        return None
    return _result_error(result)


def _plain(result: object) -> object:
    if isinstance(result, int | bytes) or result is None:
        return result
    return _result_error(result)


def _cas_reply(result: object) -> object:
    if isinstance(result, bool):
        return int(result)
    return _result_error(result)


def _result_error(result: object) -> object:
    if isinstance(result, KVValueError):
        return ErrorReply(str(result))
    if isinstance(result, KVCommandError):
        return ErrorReply(f"ERR {result}")
    return result


class RespServer:
    """A RESP2 server over a node and its KVStore (see the module docstring)."""

    def __init__(
        self,
        node: KVNode,
        store: KVStore,
        listen: str,
        *,
        request_bytes_max: int = c.VALUE_BYTES_MAX * 2 + 65536,
        clients_max: int = CLIENTS_MAX,
        args_max: int = c.KEYS_PER_COMMAND_MAX + 8,
        keys_reply_max: int = KEYS_REPLY_MAX,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        host, port = parse_address(listen, what="listen")
        if clients_max < 1 or request_bytes_max < 1024 or args_max < 4 or keys_reply_max < 1:
            raise ConfigError(
                f"clients_max ({clients_max}), args_max ({args_max}), keys_reply_max "
                f"({keys_reply_max}) must be positive and request_bytes_max >= 1024 "
                f"(got {request_bytes_max})"
            )
        self.node = node
        self.store = store
        self.listen = listen
        self.request_bytes_max = request_bytes_max
        self.clients_max = clients_max
        self.args_max = args_max
        self.keys_reply_max = keys_reply_max
        self.wall_clock_ns = wall_clock_ns
        self._host = host
        self._port = int(port)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._next_id = 0
        self.counters: dict[str, int] = {
            "connections": 0,
            "rejected_connections": 0,
            "commands": 0,
            "writes": 0,
            "reads": 0,
            "batches": 0,
            "protocol_errors": 0,
            "redirects": 0,
            "unknown_outcomes": 0,
        }
        self._table = self._commands()
        # A RaftNode configured with ack="leader" acknowledges before apply (see _flush_writes).
        self.leader_ack = getattr(getattr(node, "config", None), "ack", "quorum") == "leader"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self._host, self._port, reuse_address=True
        )

    @property
    def address(self) -> str:
        """The bound "host:port" (the real port when listen asked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.listen
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def close(self) -> None:
        """Stop listening and close every connection (requests in flight are abandoned)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "RespServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ helpers

    def redirect(self, leader_id: int = 0) -> ErrorReply:
        """The reply for a request this node cannot serve because it is not the leader."""
        self.counters["redirects"] += 1
        leader = leader_id or self.node.leader_id
        if leader and leader != self.node.id:
            address = self.node.member_metadata(leader).get("resp", "")
            if address:
                return ErrorReply(f"MOVED 0 {address}")
            return ErrorReply(
                f"TRYAGAIN the leader is node {leader} but its RESP address is not known yet; "
                "retry shortly"
            )
        return ErrorReply("TRYAGAIN no leader is known (election in progress); retry shortly")

    def failure(self, err: BaseException) -> ErrorReply:
        """The reply for a request the node failed (see the module docstring)."""
        if isinstance(err, NotLeaderError):
            return self.redirect(err.leader_id)
        if isinstance(err, CommitUnknownError):
            self.counters["unknown_outcomes"] += 1
            return ErrorReply(f"UNKNOWN outcome unknown, the write may have been applied: {err}")
        if isinstance(err, ProposalDroppedError | NodeStoppedError):
            return ErrorReply(f"DROPPED not applied, safe to retry: {err}")
        raise err

    def _leader_info(self) -> list[object]:
        node = self.node
        leader = node.leader_id
        address = node.member_metadata(leader).get("resp") if leader else None
        return [
            leader,
            address.encode() if address else None,
            node.id,
            b"leader" if node.is_leader else b"follower",
        ]

    def info_text(self, section: bytes | None = None) -> bytes:
        status = self.node.status()
        leader = self.node.leader_id
        leader_resp = self.node.member_metadata(leader).get("resp", "") if leader else ""
        role = "master" if self.node.is_leader else "slave"
        sections = {
            b"server": [
                "# Server",
                f"redis_version:{REDIS_COMPAT_VERSION}",
                f"haperf_version:{__version__}",
                "redis_mode:standalone",
                f"tcp_port:{self.address.rpartition(':')[2]}",
            ],
            b"clients": ["# Clients", f"connected_clients:{len(self._connections)}"],
            b"replication": ["# Replication", f"role:{role}"],
            b"raft": [
                "# Raft",
                f"raft_node_id:{self.node.id}",
                f"raft_role:{status.get('role', '')}",
                f"raft_term:{status.get('term', 0)}",
                f"raft_leader_id:{leader}",
                f"raft_leader_resp:{leader_resp}",
                f"raft_commit_index:{status.get('commit', 0)}",
                f"raft_applied_index:{status.get('applied', 0)}",
                f"raft_last_index:{status.get('last_index', 0)}",
            ],
            b"stats": ["# Stats"] + [f"kv_{k}:{v}" for k, v in self.counters.items()],
            b"keyspace": [
                "# Keyspace",
                f"db0:keys={len(self.store)},expires={len(self.store._expires)},avg_ttl=0",
            ],
        }
        if section is not None and section.lower() not in (b"all", b"default", b"everything"):
            lines = sections.get(section.lower(), [])
        else:
            lines = [line for block in sections.values() for line in [*block, ""]]
        return "\r\n".join(lines).encode() + b"\r\n"

    # ------------------------------------------------------------------ the command table

    def _commands(self) -> dict[bytes, Callable[[list[bytes]], Any]]:
        table: dict[bytes, Callable[[list[bytes]], Any]] = {
            b"GET": self._get,
            b"SET": self._set,
            b"DEL": self._del,
            b"UNLINK": self._del,
            b"INCR": self._incr,
            b"DECR": self._decr,
            b"INCRBY": self._incrby,
            b"DECRBY": self._decrby,
            b"EXISTS": self._exists,
            b"MGET": self._mget,
            b"SETNX": self._setnx,
            b"CAS": self._cas,
            b"TTL": self._ttl,
            b"PTTL": self._pttl,
            b"KEYS": self._keys,
            b"DBSIZE": self._dbsize,
        }
        table.update({name.lower(): fn for name, fn in table.items()})
        return table

    # Each handler returns ("w", Write), ("r", Read) or ("i", reply).

    def _get(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 2:
            return "i", _arity("get")
        key = args[1]
        store = self.store
        return "r", lambda now: store.get(key, now)

    def _mget(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) < 2:
            return "i", _arity("mget")
        keys = args[1:]
        store = self.store
        return "r", lambda now: store.mget(keys, now)

    def _exists(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) < 2:
            return "i", _arity("exists")
        keys = args[1:]
        store = self.store
        return "r", lambda now: store.exists(keys, now)

    def _ttl(self, args: list[bytes], unit_ns: int = 1_000_000_000) -> tuple[str, object]:
        if len(args) != 2:
            return "i", _arity("ttl" if unit_ns > 1_000_000 else "pttl")
        key = args[1]
        store = self.store

        def read(now: int) -> object:
            ttl = store.ttl_ns(key, now)
            if ttl is None:
                return -2
            if ttl < 0:
                return -1
            return (ttl + unit_ns // 2) // unit_ns

        return "r", read

    def _pttl(self, args: list[bytes]) -> tuple[str, object]:
        return self._ttl(args, 1_000_000)

    def _keys(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 2:
            return "i", _arity("keys")
        pattern = args[1]
        prefix = pattern[:-1]
        if not pattern.endswith(b"*") or any(ch in prefix for ch in b"*?[\\"):
            return "i", _err("ERR haperf KEYS takes only 'prefix*' patterns (or '*')")
        store = self.store
        limit = self.keys_reply_max
        return "r", lambda now: store.keys(prefix, limit, now)

    def _dbsize(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 1:
            return "i", _arity("dbsize")
        store = self.store
        return "r", lambda now: len(store)

    def _encode(self, build: Callable[[], bytes]) -> bytes | ErrorReply:
        try:
            return build()
        except KVCommandError as err:
            return _err(f"ERR {err}")

    def _set(self, args: list[bytes]) -> tuple[str, object]:
        n = len(args)
        if n < 3:
            return "i", _arity("set")
        now = self.wall_clock_ns()
        flags = 0
        expire_at = 0
        if n > 3:
            i = 3
            while i < n:
                opt = args[i].upper()
                if opt == b"NX" and not flags & c.FLAG_XX:
                    flags |= c.FLAG_NX
                elif opt == b"XX" and not flags & c.FLAG_NX:
                    flags |= c.FLAG_XX
                elif opt == b"GET":
                    flags |= c.FLAG_GET
                elif opt == b"KEEPTTL" and not expire_at:
                    flags |= c.FLAG_KEEPTTL
                elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < n and not expire_at:
                    if flags & c.FLAG_KEEPTTL:
                        return "i", SYNTAX_ERROR
                    amount = _int(args[i + 1])
                    if amount is None:
                        return "i", NOT_INTEGER
                    if amount <= 0 or amount > TTL_MS_MAX:
                        return "i", _err("ERR invalid expire time in 'set' command")
                    if opt == b"EX":
                        expire_at = now + amount * 1_000_000_000
                    elif opt == b"PX":
                        expire_at = now + amount * 1_000_000
                    elif opt == b"EXAT":
                        expire_at = amount * 1_000_000_000
                    else:
                        expire_at = amount * 1_000_000
                    i += 1
                else:
                    return "i", SYNTAX_ERROR
                i += 1
        store = self.store
        key, value = args[1], args[2]
        if len(key) > store.key_bytes_max or len(value) > store.value_bytes_max:
            return "i", self._encode(lambda: c.encode_set(
                key, value, now, key_bytes_max=store.key_bytes_max,
                value_bytes_max=store.value_bytes_max))
        data = c.SET_HEAD.pack(c.OP_SET, flags, now, expire_at, len(key)) + key + value
        if flags & c.FLAG_GET:
            return "w", (data, _plain)
        if flags & (c.FLAG_NX | c.FLAG_XX):
            return "w", (data, _cond_set_reply)
        return "w", (data, _set_reply)

    def _setnx(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 3:
            return "i", _arity("setnx")
        kind, op = self._set([*args, b"NX"])
        if kind != "w":
            return kind, op
        assert isinstance(op, tuple)
        return "w", (op[0], lambda r: int(r) if isinstance(r, bool) else _result_error(r))

    def _del(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) < 2:
            return "i", _arity("del")
        store = self.store
        keys = args[1:]
        data = self._encode(
            lambda: c.encode_delete(keys, self.wall_clock_ns(), key_bytes_max=store.key_bytes_max)
        )
        if isinstance(data, ErrorReply):
            return "i", data
        return "w", (data, _plain)

    def _incr_by(self, key: bytes, delta: int) -> tuple[str, object]:
        data = self._encode(
            lambda: c.encode_incrby(
                key, delta, self.wall_clock_ns(), key_bytes_max=self.store.key_bytes_max
            )
        )
        if isinstance(data, ErrorReply):
            return "i", data
        return "w", (data, _plain)

    def _incr(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 2:
            return "i", _arity("incr")
        return self._incr_by(args[1], 1)

    def _decr(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 2:
            return "i", _arity("decr")
        return self._incr_by(args[1], -1)

    def _incrby(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 3:
            return "i", _arity("incrby")
        delta = _int(args[2])
        if delta is None:
            return "i", NOT_INTEGER
        return self._incr_by(args[1], delta)

    def _decrby(self, args: list[bytes]) -> tuple[str, object]:
        if len(args) != 3:
            return "i", _arity("decrby")
        delta = _int(args[2])
        if delta is None or delta == c.INT64_MIN:
            return "i", NOT_INTEGER
        return self._incr_by(args[1], -delta)

    def _cas(self, args: list[bytes]) -> tuple[str, object]:
        """CAS key expected new [EX s | PX ms | KEEPTTL]: :1 if swapped, :0 if not."""
        n = len(args)
        if n not in (4, 5, 6):
            return "i", _arity("cas")
        now = self.wall_clock_ns()
        expire_at = 0
        keep = False
        if n > 4:
            opt = args[4].upper()
            if opt == b"KEEPTTL" and n == 5:
                keep = True
            elif opt in (b"EX", b"PX") and n == 6:
                amount = _int(args[5])
                if amount is None:
                    return "i", NOT_INTEGER
                if amount <= 0 or amount > TTL_MS_MAX:
                    return "i", _err("ERR invalid expire time in 'cas' command")
                expire_at = now + amount * (1_000_000_000 if opt == b"EX" else 1_000_000)
            else:
                return "i", SYNTAX_ERROR
        store = self.store
        data = self._encode(
            lambda: c.encode_cas(
                args[1],
                args[2],
                args[3],
                now,
                expire_at_ns=expire_at,
                keep_ttl=keep,
                key_bytes_max=store.key_bytes_max,
                value_bytes_max=store.value_bytes_max,
            )
        )
        if isinstance(data, ErrorReply):
            return "i", data
        return "w", (data, _cas_reply)

    # Commands that touch no replicated data: answered in place.

    def immediate(self, conn: "_Connection", args: list[bytes]) -> object:
        name = args[0].upper()
        n = len(args)
        if name == b"PING":
            if n == 1:
                return PONG
            if n == 2:
                return args[1]
            return _arity("ping")
        if name == b"ECHO":
            return args[1] if n == 2 else _arity("echo")
        if name == b"SELECT":
            if n != 2:
                return _arity("select")
            return OK if args[1] == b"0" else _err("ERR DB index is out of range")
        if name == b"HELLO":
            return self._hello(conn, args)
        if name == b"AUTH":
            return _err(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        if name == b"COMMAND":
            if n >= 2 and args[1].upper() == b"COUNT":
                return len(self._table) // 2 + len(IMMEDIATE)
            return []
        if name == b"CLIENT":
            return self._client(conn, args)
        if name == b"CONFIG":
            if n >= 3 and args[1].upper() == b"GET":
                known = {b"save": b"", b"appendonly": b"no"}
                out: list[object] = []
                for pattern in args[2:]:
                    if pattern.lower() in known:
                        out += [pattern.lower(), known[pattern.lower()]]
                return out
            return _err("ERR haperf supports only CONFIG GET (read-only)")
        if name == b"INFO":
            return self.info_text(args[1] if n > 1 else None)
        if name in (b"LEADER", b"HAPERF.LEADER"):
            return self._leader_info()
        if name == b"CLUSTER":
            return self._cluster(args)
        if name == b"QUIT":
            conn.quit = True
            return OK
        if name == b"RESET":
            return "RESET"
        return UNKNOWN

    def _hello(self, conn: "_Connection", args: list[bytes]) -> object:
        if len(args) >= 2:
            version = _int(args[1])
            if version is None:
                return _err("ERR Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return _err("NOPROTO sorry, this protocol version is not supported")
            conn.resp3 = version == 3
        i = 2
        while i < len(args):
            opt = args[i].upper()
            if opt == b"AUTH" and i + 2 < len(args):
                return _err("ERR haperf has no authentication; connect without AUTH")
            if opt == b"SETNAME" and i + 1 < len(args):
                conn.name = args[i + 1]
                i += 2
                continue
            return SYNTAX_ERROR
        return {
            b"server": b"redis",
            b"version": REDIS_COMPAT_VERSION.encode(),
            b"proto": 3 if conn.resp3 else 2,
            b"id": conn.id,
            b"mode": b"standalone",
            b"role": b"master" if self.node.is_leader else b"replica",
            b"modules": [],
        }

    def _client(self, conn: "_Connection", args: list[bytes]) -> object:
        sub = args[1].upper() if len(args) > 1 else b""
        if sub == b"SETNAME" and len(args) == 3:
            conn.name = args[2]
            return OK
        if sub == b"GETNAME" and len(args) == 2:
            return conn.name
        if sub == b"ID" and len(args) == 2:
            return conn.id
        if sub in (b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"REPLY"):
            return OK
        shown = sub.lower().decode("latin-1")
        return _err(f"ERR unknown subcommand or wrong number of arguments for 'client|{shown}'")

    def _cluster(self, args: list[bytes]) -> object:
        sub = args[1].upper() if len(args) > 1 else b""
        node = self.node
        if sub == b"SLOTS":
            leader = node.leader_id
            address = node.member_metadata(leader).get("resp") if leader else None
            if not address:
                return []
            host, _, port = address.rpartition(":")
            return [[0, 16383, [host.encode(), int(port), str(leader).encode()]]]
        if sub in (b"LEADER", b"MYLEADER"):
            return self._leader_info()
        if sub == b"MYID":
            return str(node.id).encode()
        if sub == b"INFO":
            state = "ok" if node.leader_id else "fail"
            return (
                f"cluster_enabled:0\r\ncluster_state:{state}\r\ncluster_known_nodes:"
                f"{len(node.status().get('voters', []) or [])}\r\n"
            ).encode()
        return _err("ERR haperf supports CLUSTER SLOTS, LEADER, MYID and INFO")


IMMEDIATE = frozenset(
    {
        b"PING",
        b"ECHO",
        b"SELECT",
        b"HELLO",
        b"AUTH",
        b"COMMAND",
        b"CLIENT",
        b"CONFIG",
        b"INFO",
        b"LEADER",
        b"HAPERF.LEADER",
        b"CLUSTER",
        b"QUIT",
        b"RESET",
    }
)
_IMMEDIATE_ANY_CASE = IMMEDIATE | {n.lower() for n in IMMEDIATE}
_SET_NAMES = frozenset({b"SET", b"set"})


class _Connection(asyncio.Protocol):
    """One client connection: parse, serve batches one at a time, reply in order."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        server._next_id += 1
        self.id = server._next_id
        self.name: bytes | None = None
        self.quit = False
        # HELLO 3 switches the replies to RESP3 (null `_`, maps `%`); nothing else changes.
        self.resp3 = False
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser(
            # A bulk string is bounded only by the request size: a value above the store's
            # value_bytes_max gets a plain -ERR (the stream stays usable), not a protocol error.
            server.args_max, server.request_bytes_max, server.request_bytes_max
        )
        self.pending: list[list[bytes]] = []
        self.busy = False
        self.writing_paused = False
        self.reading_paused = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if len(server._connections) >= server.clients_max:
            server.counters["rejected_connections"] += 1
            self.transport.write(b"-ERR max number of clients reached\r\n")
            self.transport.close()
            return
        server._connections.add(self)
        server.counters["connections"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._maybe_resume()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _pause(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _maybe_resume(self) -> None:
        if (
            self.reading_paused
            and not self.busy
            and not self.writing_paused
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.reading_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            cmds = self.parser.feed(data)
        except ProtocolError as err:
            self._protocol_error(err)
            return
        if not cmds:
            if self.parser.error is not None:
                self._protocol_error(self.parser.error)
            return
        if self.busy:
            self.pending.extend(cmds)
            self._pause()
            return
        self._start(cmds)

    def _protocol_error(self, err: ProtocolError) -> None:
        self.server.counters["protocol_errors"] += 1
        assert self.transport is not None
        if self.busy:
            # Replies still owed go first; the error is sent when the batch is done.
            return
        self.transport.write(encode_reply(ErrorReply(f"ERR {err}"), self.resp3))
        self.transport.close()

    def _start(self, cmds: list[list[bytes]]) -> None:
        server = self.server
        server.counters["commands"] += len(cmds)
        server.counters["batches"] += 1
        # Fast path: a batch with nothing to propose or read is answered right here.
        if all(args[0] in _IMMEDIATE_ANY_CASE for args in cmds):
            replies = []
            for args in cmds:  # all known names
                replies.append(server.immediate(self, args))
                if self.quit:
                    break
            self._write(replies)
            if self.parser.error is not None:
                self._protocol_error(self.parser.error)
            return
        # Reading stays on (pausing and resuming costs two epoll calls per request); if more
        # requests arrive while this batch is served, data_received queues them and pauses.
        self.busy = True
        asyncio.get_running_loop().create_task(self._serve(cmds))

    def _write(self, replies: list[object]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_replies(replies, self.resp3))
        if self.quit:
            transport.close()

    async def _serve(self, cmds: list[list[bytes]]) -> None:
        try:
            while cmds:
                batch = cmds[:BATCH_COMMANDS_MAX]
                cmds = cmds[BATCH_COMMANDS_MAX:]
                try:
                    replies = await self._serve_batch(batch)
                except Exception:  # a bug must cost this connection, not the server
                    log.exception("kv server: serving a batch failed; closing the connection")
                    self.abort()
                    return
                self._write(replies)
                if self.transport is None or self.transport.is_closing():
                    return
                if not cmds and self.pending:
                    cmds, self.pending = self.pending, []
        finally:
            self.busy = False
            self.pending = []
        if self.parser.error is not None:
            self._protocol_error(self.parser.error)
            return
        self._maybe_resume()

    async def _serve_batch(self, cmds: list[list[bytes]]) -> list[object]:
        server = self.server
        table = server._table
        store = server.store
        key_max = store.key_bytes_max
        value_max = store.value_bytes_max
        set_pack = c.SET_HEAD.pack
        now = server.wall_clock_ns()  # the batch's writes share one reading of the clock
        replies: list[object] = [None] * len(cmds)
        # The pending run of writes, as parallel lists: reply slot, command bytes, result mapper.
        w_slots: list[int] = []
        w_data: list[bytes] = []
        w_maps: list[Callable[[object], object]] = []
        reads: list[tuple[int, Read]] = []
        fresh = False  # this batch's writes just applied: reads need no barrier
        for i, args in enumerate(cmds):
            name = args[0]
            if len(args) == 3 and name in _SET_NAMES:
                # The hot path: a plain SET, encoded inline (same bytes as commands.encode_set).
                key, value = args[1], args[2]
                if len(key) <= key_max and len(value) <= value_max:
                    if reads:
                        await self._flush_reads(reads, replies, fresh)
                        reads = []
                    w_slots.append(i)
                    w_data.append(set_pack(1, 0, now, 0, len(key)) + key + value)
                    w_maps.append(_set_reply)
                    continue
            handler = table.get(name) or table.get(name.upper())
            if handler is None:
                reply = server.immediate(self, args)
                replies[i] = _unknown(args) if reply is UNKNOWN else reply
                if self.quit:
                    # Nothing after QUIT is served (as Redis): answer what came before, then close.
                    del replies[i + 1 :]
                    break
                continue
            kind, op = handler(args)
            if kind == "i":
                replies[i] = op
            elif kind == "w":
                if reads:
                    await self._flush_reads(reads, replies, fresh)
                    reads = []
                data, to_reply = op
                w_slots.append(i)
                w_data.append(data)
                w_maps.append(to_reply)
            else:
                if w_slots:
                    fresh = await self._flush_writes(w_slots, w_data, w_maps, replies)
                    w_slots, w_data, w_maps = [], [], []
                reads.append((i, op))
        if w_slots:
            await self._flush_writes(w_slots, w_data, w_maps, replies)
        if reads:
            await self._flush_reads(reads, replies, fresh)
        return replies

    async def _flush_writes(
        self,
        slots: list[int],
        data: list[bytes],
        maps: list[Callable[[object], object]],
        replies: list[object],
    ) -> bool:
        server = self.server
        server.counters["writes"] += len(slots)
        node = server.node
        if not node.is_leader:
            reply = server.redirect()
            for i in slots:
                replies[i] = reply
            return False
        # In ack="leader" mode the node answers before commit and apply (results are None):
        # writes whose reply needs the result (INCR, DEL, CAS, SET NX/XX/GET) wait for a quorum.
        # Only a quorum-acknowledged batch has been applied, so only then may the reads that
        # follow it skip their barrier.
        applied = not server.leader_ack or any(m is not _set_reply for m in maps)
        try:
            if server.leader_ack and applied:
                results = await node.propose_many(data, ack="quorum")  # type: ignore[call-arg]
            else:
                results = await node.propose_many(data)
        except _NODE_ERRORS as err:
            reply = server.failure(err)
            for i in slots:
                replies[i] = reply
            return False
        for i, to_reply, result in zip(slots, maps, results, strict=True):
            replies[i] = to_reply(result)
        return applied

    async def _flush_reads(
        self, reads: list[tuple[int, Read]], replies: list[object], fresh: bool
    ) -> None:
        server = self.server
        server.counters["reads"] += len(reads)
        if not fresh:
            try:
                await server.node.barrier()
            except _NODE_ERRORS as e:
                # A read has no unknown outcome: it was simply not served.
                if isinstance(e, CommitUnknownError):
                    reply = ErrorReply(f"DROPPED the read was not served: {e}")
                else:
                    reply = server.failure(e)
                for i, _ in reads:
                    replies[i] = reply
                return
        # Linearizable from here until the next await (see the module docstring).
        now = server.wall_clock_ns()
        for i, read in reads:
            try:
                replies[i] = read(now)
            except KVCommandError as err:
                replies[i] = ErrorReply(f"ERR {err}")


def _unknown(args: list[bytes]) -> ErrorReply:
    name = args[0].decode("utf-8", "replace")[:128]
    rest = " ".join(f"'{a.decode('utf-8', 'replace')[:64]}'" for a in args[1:4])
    return ErrorReply(f"ERR unknown command '{name}', with args beginning with: {rest}")
