"""Concurrent clients doing read/write/cas on a few keys, recorded as a Jepsen-style history.

Owns `HistoryLog` (the JSON-lines history file, one record per line, in the order the events
happened), `WorkloadConfig`, `Workload` and `classify` (the exact mapping of a client error to
an outcome, NODE_API.md section 6).

Outcomes: `ok` when the server answered; `fail` only when the operation certainly did not take
effect (the connection was refused before anything was sent, the server said it is not the
leader or dropped the proposal, a cas found another value); `info` for everything uncertain (a
timeout, a connection lost after the request went out, CommitUnknownError, a stopping node).
Reads are recorded by the same rule, although a read that never happened changes nothing.

Jepsen's process rule: a process has at most one operation in flight; after an `info` its
operation may still take effect at any later time, so the process retires and the client goes
on under a fresh process id (old id + number of clients).

Invariants: every write and cas writes a value no other operation writes (a run-wide counter),
so a read names the one write it observed; every invoke gets exactly one completion record
(the per-operation timeout bounds it); the clients stop invoking at the deadline and the last
completions arrive within one operation timeout after it.
"""

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from haperf.chaos.history import op_from_record
from haperf.errors import (
    CommitUnknownError,
    ConfigError,
    HaperfError,
    NotLeaderError,
    ProposalDroppedError,
)

CLIENTS_MAX = 1_024
KEYS_MAX = 1_000
OP_TIMEOUT_NS_DEFAULT = 2_000_000_000
OP_TIMEOUT_NS_MAX = 60_000_000_000
RECONNECT_PAUSE_NS = 50_000_000
OPS_MAX = 10_000_000
FINAL_READ_ATTEMPTS_MAX = 200
NEMESIS = "nemesis"


class HistoryLog:
    """Appends history records as JSON lines to `path` (and keeps them in memory for counts).

    Record shape (NODE_API.md section 6): `{"process", "type", "f", "key", "value", "time"}`,
    `time` in ns from the log's creation on the monotonic clock. Nemesis records have
    `process: "nemesis"`, `type: "info"`, `f` the fault kind, `key: null` and `value`
    `{"phase": "start"|"stop", ...}` (haperf.chaos.history's reader skips them). Client records
    are validated by history.op_from_record as they are written (HistoryWriter cannot be used
    as is: it rejects the nemesis records). The file is flushed on every record, so a crash of
    the harness still leaves a readable prefix.
    """

    def __init__(self, path: str | Path | None, *, clock_ns: Callable[[], int] | None = None):
        self._clock_ns = clock_ns or time.monotonic_ns
        self._origin_ns = self._clock_ns()
        self._file: IO[bytes] | None = open(path, "wb") if path is not None else None  # noqa: SIM115
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []

    def now_ns(self) -> int:
        return self._clock_ns() - self._origin_ns

    def record(self, process: int | str, type: str, f: str, key: str | None, value: Any) -> None:
        rec = {
            "process": process,
            "type": type,
            "f": f,
            "key": key,
            "value": value,
            "time": self.now_ns(),
        }
        if process != NEMESIS:
            # The checker's own record rules (history.op_from_record), applied while writing:
            # the harness cannot record a client operation the checker would reject.
            op_from_record(rec, str(self.path or "<history>"), len(self.records) + 1)
        self.records.append(rec)
        if self._file is not None:
            self._file.write(orjson.dumps(rec) + b"\n")
            self._file.flush()

    def nemesis(self, f: str, phase: str, value: dict[str, Any]) -> None:
        self.record(NEMESIS, "info", f, None, {"phase": phase, **value})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class KV(Protocol):
    """The part of haperf.kv.client.KVClient the workload uses."""

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: Any) -> Any: ...

    async def cas(self, key: str, expected: Any, new: Any) -> Any: ...

    async def close(self) -> None: ...


Connect = Callable[[str, bool], Awaitable[KV]]
"""connect(address, follow_redirects) -> a KV client for that node."""


def classify(exc: BaseException) -> str:
    """ "fail" when the error proves the operation did not happen, else "info"."""
    if isinstance(exc, ProposalDroppedError | NotLeaderError | ConnectionRefusedError):
        return "fail"
    return "info"


UNCERTAIN = (CommitUnknownError, HaperfError, OSError, TimeoutError, EOFError)


def decode(raw: Any) -> Any:
    """A value as stored by the KV (bytes/str/int/None) -> the history's value (int or str)."""
    if raw is None:
        return None
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """Clients, keys and operation mix. `read_p` + `write_p` <= 1; the rest is cas."""

    clients: int = 5
    keys: int = 3
    seed: int = 0
    read_p: float = 0.4
    write_p: float = 0.3
    op_timeout_ns: int = OP_TIMEOUT_NS_DEFAULT
    ops_max: int = OPS_MAX

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= CLIENTS_MAX:
            raise ConfigError(f"clients must be in 1..{CLIENTS_MAX}, got {self.clients}")
        if not 1 <= self.keys <= KEYS_MAX:
            raise ConfigError(f"keys must be in 1..{KEYS_MAX}, got {self.keys}")
        if not (self.read_p >= 0 and self.write_p >= 0 and self.read_p + self.write_p <= 1):
            raise ConfigError(f"need read_p, write_p >= 0 and <= 1 in sum: {self}")
        if not 0 < self.op_timeout_ns <= OP_TIMEOUT_NS_MAX:
            raise ConfigError(f"op_timeout_ns must be in 1..{OP_TIMEOUT_NS_MAX}")
        if not 0 < self.ops_max <= OPS_MAX:
            raise ConfigError(f"ops_max must be in 1..{OPS_MAX}")


def key_name(i: int) -> str:
    return f"k{i}"


@dataclass(slots=True)
class _Client:
    """One client: its process id, its home node, and two connections to it. Reads go to the
    home node and are answered there (followers included: ReadIndex through the leader), so
    follower reads are exercised; writes and cas follow the home node's redirect to the leader.
    """

    slot: int
    process: int
    rng: random.Random
    address_index: int
    reader: KV | None = None
    writer: KV | None = None


@dataclass(slots=True)
class WorkloadStats:
    """Operations by (f, type): e.g. counts["write"]["ok"]."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    processes: int = 0

    def add(self, f: str, outcome: str) -> None:
        per = self.counts.setdefault(f, {"ok": 0, "fail": 0, "info": 0})
        per[outcome] += 1


class Workload:
    """Runs `config.clients` clients against `addresses` (RESP "host:port" of every node)."""

    def __init__(
        self,
        config: WorkloadConfig,
        addresses: Sequence[str],
        connect: Connect,
        history: HistoryLog,
    ) -> None:
        if not addresses:
            raise ConfigError("the workload needs at least one node address")
        self.config = config
        self.addresses = list(addresses)
        self.connect = connect
        self.history = history
        self.stats = WorkloadStats(processes=config.clients)
        self._values = itertools.count(1)
        self._next_process = config.clients
        self._last_seen: dict[str, Any] = {}
        self._ops = 0
        self.last_errors: dict[str, str] = {}  # error type -> its latest message (diagnostics)

    async def run(self, duration_ns: int) -> WorkloadStats:
        """Run every client until `duration_ns` has passed (plus in-flight completions)."""
        deadline = time.monotonic_ns() + duration_ns
        rng = random.Random(f"haperf-workload/{self.config.seed}")
        clients = [
            _Client(slot, slot, random.Random(rng.getrandbits(64)), slot % len(self.addresses))
            for slot in range(self.config.clients)
        ]
        try:
            await asyncio.gather(*(self._client_loop(c, deadline) for c in clients))
        finally:
            for c in clients:
                await self._drop_connection(c)
        return self.stats

    async def _client_loop(self, client: _Client, deadline_ns: int) -> None:
        while time.monotonic_ns() < deadline_ns and self._ops < self.config.ops_max:
            await self._one_op(client)

    async def _connection(self, client: _Client, *, for_read: bool) -> KV:
        """The client's reader (no redirects) or writer (follows them) to its home node."""
        kv = client.reader if for_read else client.writer
        if kv is None:
            address = self.addresses[client.address_index]
            kv = await self.connect(address, not for_read)
            if for_read:
                client.reader = kv
            else:
                client.writer = kv
        return kv

    async def _next_node(self, client: _Client) -> None:
        """After an error: drop both connections and move to the next node."""
        await self._drop_connection(client)
        client.address_index = (client.address_index + 1) % len(self.addresses)

    def _choose(self, client: _Client) -> tuple[str, str, Any]:
        rng = client.rng
        key = key_name(rng.randrange(self.config.keys))
        roll = rng.random()
        if roll < self.config.read_p:
            return "read", key, None
        if roll < self.config.read_p + self.config.write_p or key not in self._last_seen:
            return "write", key, next(self._values)
        return "cas", key, [self._last_seen[key], next(self._values)]

    async def _one_op(self, client: _Client) -> None:
        self._ops += 1
        f, key, value = self._choose(client)
        self.history.record(client.process, "invoke", f, key, value)
        try:
            result = await asyncio.wait_for(
                self._call(client, f, key, value), self.config.op_timeout_ns / 1e9
            )
        except (*UNCERTAIN, ConnectionRefusedError) as exc:
            outcome = classify(exc)
            self._complete(client, outcome, f, key, value, error=exc)
            await self._next_node(client)
            if outcome == "info":
                # Jepsen: the op may still happen later; this process is done.
                self._retire(client)
            else:
                await asyncio.sleep(RECONNECT_PAUSE_NS / 1e9)
            return
        if f == "read":
            got = decode(result)
            self._complete(client, "ok", f, key, got)
            if got is not None:
                self._last_seen[key] = got
        elif f == "write":
            self._complete(client, "ok", f, key, value)
            self._last_seen[key] = value
        elif result:
            self._complete(client, "ok", f, key, value)
            self._last_seen[key] = value[1]
        else:
            self._complete(client, "fail", f, key, value)

    async def _call(self, client: _Client, f: str, key: str, value: Any) -> Any:
        if f == "read":
            return await (await self._connection(client, for_read=True)).get(key)
        kv = await self._connection(client, for_read=False)
        if f == "write":
            return await kv.set(key, str(value))
        return await kv.cas(key, str(value[0]), str(value[1]))

    def _retire(self, client: _Client) -> None:
        client.process = self._next_process
        self._next_process += 1
        self.stats.processes += 1

    def _complete(
        self,
        client: _Client,
        outcome: str,
        f: str,
        key: str,
        value: Any,
        *,
        error: BaseException | None = None,
    ) -> None:
        self.stats.add(f, outcome)
        self.history.record(client.process, outcome, f, key, value)
        if error is not None:
            self.last_errors[f"{type(error).__name__}"] = str(error)[:200]

    async def _drop_connection(self, client: _Client) -> None:
        for kv in (client.reader, client.writer):
            if kv is not None:
                # A failing close means the connection was already broken: it is gone anyway.
                with contextlib.suppress(*UNCERTAIN):
                    await asyncio.wait_for(kv.close(), 1.0)
        client.reader = client.writer = None

    async def final_reads(self, attempts_max: int = FINAL_READ_ATTEMPTS_MAX) -> dict[str, Any]:
        """Read every key once with a fresh process until each read is ok (bounded retries).

        Returns key -> value (None = absent). A key that never reads ok is missing from the
        result (and the runner reports it).
        """
        out: dict[str, Any] = {}
        client = _Client(-1, self._next_process, random.Random(0), 0)
        self._next_process += 1
        for i in range(self.config.keys):
            key = key_name(i)
            for _ in range(attempts_max):
                self.history.record(client.process, "invoke", "read", key, None)
                try:
                    raw = await asyncio.wait_for(
                        self._call(client, "read", key, None), self.config.op_timeout_ns / 1e9
                    )
                except (*UNCERTAIN, ConnectionRefusedError) as exc:
                    outcome = classify(exc)
                    self._complete(client, outcome, "read", key, None, error=exc)
                    await self._next_node(client)
                    if outcome == "info":
                        self._retire(client)
                    await asyncio.sleep(RECONNECT_PAUSE_NS / 1e9)
                    continue
                out[key] = decode(raw)
                self._complete(client, "ok", "read", key, out[key])
                break
        await self._drop_connection(client)
        return out
