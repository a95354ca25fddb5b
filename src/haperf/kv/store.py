"""haperf.kv.store: KVStore, the replicated key-value state machine (apply/snapshot/restore/query).

Owns the data (bytes keys -> bytes values), the TTLs, the replicated clock and the snapshot
format. KVStore implements haperf.raft.host.StateMachine.

Invariants:
- apply is deterministic: it reads no clock and no randomness. Time comes in each write command
  (`now_ns`, the proposing leader's wall clock); the store keeps `clock_ns`, the largest now_ns
  applied so far, so replicated time never runs backwards even if a new leader's clock is behind.
  A key with expire_at_ns <= clock_ns is expired on every replica at the same log index.
- apply never raises for bad input: a malformed command returns a KVCommandError instance, a
  command the stored value cannot take (INCRBY on "abc") returns a KVValueError instance, and in
  both cases the state is unchanged (everything is parsed and checked before the first change).
  An exception out of apply would stop the Raft node (fail-stop), so it is reserved for bugs.
- Reads (get/mget/exists/keys/query) never change state. They treat a key as expired when
  expire_at_ns <= max(the caller's now_ns, clock_ns).
- Expired keys are removed lazily (when a write touches them) and by a bounded sweep
  (EXPIRE_SWEEP_MAX keys per applied write) driven by a heap of expiry times; both happen inside
  apply, so every replica removes the same keys at the same index.
- restore() builds the new state aside and swaps it in only after the whole snapshot checked
  out (version, lengths, count, CRC32C): a bad snapshot raises KVSnapshotError and leaves the
  store as it was.
"""

import heapq
import struct
from collections.abc import Iterable, Iterator

from haperf._native.kvstore import (
    EXPIRE_HEAP_MIN_REBUILD,
    EXPIRE_HEAP_SLACK,
    EXPIRE_SWEEP_MAX,
    KVCore,
    parse_records,
)
from haperf.checksum import crc32c
from haperf.errors import ConfigError, KVCommandError, KVSnapshotError
from haperf.kv import commands as c

__all__ = [
    "EXPIRE_HEAP_MIN_REBUILD",
    "EXPIRE_HEAP_SLACK",
    "EXPIRE_SWEEP_MAX",
    "SNAPSHOT_VERSION",
    "KVStore",
]

SNAPSHOT_MAGIC = b"HKVS"
SNAPSHOT_END = b"HKVE"
SNAPSHOT_VERSION = 1
# magic, version, flags, record count, clock_ns, applied index
SNAP_HEAD = struct.Struct("<4sHHQQQ")
# key length, value length, expire_at_ns (0 = no TTL)
SNAP_RECORD = struct.Struct("<IIQ")
# end magic, record count (again), CRC32C of every byte before the CRC field
SNAP_TAIL = struct.Struct("<4sQI")
SNAPSHOT_CHUNK_BYTES = 1 << 20


class KVStore(KVCore):
    """An in-memory key-value state machine with TTLs; see the module docstring for guarantees.

    apply() is KVCore.apply (native, haperf._native.kvstore); reads, queries and snapshots are
    here.

    `key_bytes_max`/`value_bytes_max` must be the same on every replica (they decide results).
    """

    __slots__ = ()

    def __init__(
        self, *, key_bytes_max: int = c.KEY_BYTES_MAX, value_bytes_max: int = c.VALUE_BYTES_MAX
    ) -> None:
        if not 1 <= key_bytes_max < 1 << 32 or not 0 <= value_bytes_max < 1 << 32:
            raise ConfigError(
                f"key_bytes_max must be in 1..2**32-1 and value_bytes_max in 0..2**32-1, got "
                f"{key_bytes_max} and {value_bytes_max}"
            )
        super().__init__(key_bytes_max, value_bytes_max)

    def _live_at(self, key: bytes, clock: int) -> bytes | None:
        value = self._data.get(key)
        if value is not None and self._expires:
            exp = self._expires.get(key)
            if exp is not None and exp <= clock:
                return None
        return value

    # ----------------------------------------------------------------- reads (no state change)

    def get(self, key: bytes, now_ns: int = 0) -> bytes | None:
        """The value of `key`, or None when absent or expired at max(now_ns, clock_ns)."""
        value = self._data.get(key)
        if value is not None and self._expires:
            exp = self._expires.get(key)
            if exp is not None and exp <= max(now_ns, self.clock_ns):
                return None
        return value

    def mget(self, keys: Iterable[bytes], now_ns: int = 0) -> list[bytes | None]:
        if not self._expires:
            get = self._data.get
            return [get(k) for k in keys]
        clock = max(now_ns, self.clock_ns)
        return [self._live_at(k, clock) for k in keys]

    def exists(self, keys: Iterable[bytes], now_ns: int = 0) -> int:
        """How many of `keys` are live (a key named twice counts twice, as in Redis)."""
        clock = max(now_ns, self.clock_ns)
        return sum(1 for k in keys if self._live_at(k, clock) is not None)

    def keys(self, prefix: bytes = b"", limit: int = 1000, now_ns: int = 0) -> list[bytes]:
        """Up to `limit` live keys starting with `prefix`, in byte order.

        Scans every key (O(n), in C: a few ms per million keys); the limit bounds the reply.
        """
        if limit < 1 or limit > c.KEYS_LIMIT_MAX:
            raise KVCommandError(f"keys limit must be in 1..{c.KEYS_LIMIT_MAX}, got {limit}")
        found = self.prefix_scan(prefix, max(now_ns, self.clock_ns))
        return heapq.nsmallest(limit, found)

    def ttl_ns(self, key: bytes, now_ns: int = 0) -> int | None:
        """Remaining time to live: None when the key is absent, -1 when it has no TTL."""
        clock = max(now_ns, self.clock_ns)
        if self._live_at(key, clock) is None:
            return None
        exp = self._expires.get(key)
        return -1 if exp is None else exp - clock

    def __len__(self) -> int:
        """Number of stored keys, including expired ones not yet removed."""
        return len(self._data)

    def query(self, q: object) -> object:
        """StateMachine read hook: `q` is an encoded query (commands.encode_get/mget/...)."""
        if not isinstance(q, bytes):
            raise KVCommandError(
                f"a kv query is bytes from haperf.kv.commands, got {type(q).__name__}"
            )
        cmd = c.decode(q)
        if cmd.op == c.OP_GET:
            return self.get(cmd.keys[0], cmd.now_ns)
        if cmd.op == c.OP_MGET:
            return self.mget(cmd.keys, cmd.now_ns)
        if cmd.op == c.OP_EXISTS:
            return self.exists(cmd.keys, cmd.now_ns)
        if cmd.op == c.OP_KEYS:
            return self.keys(cmd.keys[0], cmd.limit, cmd.now_ns)
        raise KVCommandError(f"opcode {cmd.op} is a write, not a query; propose it instead")

    # ----------------------------------------------------------------- snapshots

    def iter_snapshot(self, chunk_bytes: int = SNAPSHOT_CHUNK_BYTES) -> Iterator[bytes]:
        """The snapshot as chunks of about `chunk_bytes` (built at once, natively: the state
        may change as soon as this returns)."""
        head = SNAP_HEAD.pack(
            SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 0, len(self._data), self.clock_ns, self.applied_index
        )
        chunks = self.snapshot_records(chunk_bytes)
        crc = crc32c(head)
        for chunk in chunks:
            crc = crc32c(chunk, crc)
        tail = SNAP_TAIL.pack(SNAPSHOT_END, len(self._data), 0)[:12]
        crc = crc32c(tail, crc)
        return iter([head, *chunks, tail + crc.to_bytes(4, "little")])

    def snapshot(self) -> bytes:
        """The whole state as one versioned, checksummed byte string (see docs/kv.md)."""
        return b"".join(self.iter_snapshot())

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's; KVSnapshotError (state unchanged) if it is bad."""
        self.restore_stream((data,))

    def restore_stream(self, chunks: Iterable[bytes]) -> None:
        """restore() from chunks (as iter_snapshot yields them, or any split of the bytes)."""
        reader = _SnapshotReader(self.key_bytes_max, self.value_bytes_max)
        for chunk in chunks:
            reader.feed(chunk)
        data, expires, clock, applied = reader.finish()
        heap = [(t, k) for k, t in expires.items()]
        heapq.heapify(heap)
        self._data = data
        self._expires = expires
        self._heap = heap
        self.clock_ns = clock
        self.applied_index = applied


class _SnapshotReader:
    """Incremental snapshot parser: records are decoded (natively) as soon as they arrived."""

    def __init__(self, key_bytes_max: int, value_bytes_max: int) -> None:
        self.key_bytes_max = key_bytes_max
        self.value_bytes_max = value_bytes_max
        self.buf = b""
        self.crc = 0
        self.head: tuple[int, int, int] | None = None
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, int] = {}
        self.records = 0
        self.offset = 0  # bytes consumed (and checksummed) so far

    def _consumed(self, n: int) -> None:
        self.crc = crc32c(memoryview(self.buf)[:n], self.crc)
        self.buf = self.buf[n:]
        self.offset += n

    def feed(self, chunk: bytes) -> None:
        self.buf = self.buf + bytes(chunk) if self.buf else bytes(chunk)
        if self.head is None:
            if len(self.buf) < SNAP_HEAD.size:
                return
            magic, version, flags, count, clock, applied = SNAP_HEAD.unpack_from(self.buf)
            if magic != SNAPSHOT_MAGIC:
                raise KVSnapshotError(f"not a haperf kv snapshot (magic {magic!r})")
            if version != SNAPSHOT_VERSION or flags != 0:
                raise KVSnapshotError(
                    f"kv snapshot version {version} flags {flags:#x}; this build reads version "
                    f"{SNAPSHOT_VERSION}: upgrade haperf on this node"
                )
            self._consumed(SNAP_HEAD.size)
            self.head = (count, clock, applied)
        left = self.head[0] - self.records
        if left and len(self.buf) >= SNAP_RECORD.size:
            end, done = parse_records(
                self.buf,
                0,
                left,
                self.records,
                self.key_bytes_max,
                self.value_bytes_max,
                self.data,
                self.expires,
            )
            self.records += done
            self._consumed(end)

    def finish(self) -> tuple[dict[bytes, bytes], dict[bytes, int], int, int]:
        if self.head is None or self.records < self.head[0]:
            raise KVSnapshotError(
                f"kv snapshot truncated after {self.offset + len(self.buf)} bytes "
                f"({self.records} records read)"
            )
        if len(self.buf) != SNAP_TAIL.size:
            raise KVSnapshotError(
                f"kv snapshot has {len(self.buf)} bytes after its records, expected the "
                f"{SNAP_TAIL.size}-byte trailer: truncated or corrupted"
            )
        magic, count, crc = SNAP_TAIL.unpack(self.buf)
        self._consumed(12)
        if magic != SNAPSHOT_END or count != self.head[0]:
            raise KVSnapshotError("kv snapshot trailer does not match its header: corrupted")
        if crc != self.crc:
            raise KVSnapshotError(
                f"kv snapshot checksum mismatch (stored {crc:#010x}, computed {self.crc:#010x}):"
                " corrupted; restore from another replica"
            )
        return self.data, self.expires, self.head[1], self.head[2]
