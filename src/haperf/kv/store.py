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
import re
import struct
from collections.abc import Iterable, Iterator

from haperf.checksum import crc32c
from haperf.errors import KVCommandError, KVSnapshotError, KVValueError
from haperf.kv import commands as c

# Most expired keys one applied write removes from the expiry heap (bounded work per apply).
EXPIRE_SWEEP_MAX = 16
# The expiry heap is rebuilt from the live TTL table when stale entries make it this many times
# larger than the table (plus a constant), so rewriting a key's TTL cannot grow it without bound.
EXPIRE_HEAP_SLACK = 2
EXPIRE_HEAP_MIN_REBUILD = 1024

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

# A Redis-style integer: optional minus, no leading zeros, no sign '+', no spaces (string2ll).
_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")

_SET_SIZE = c.SET_HEAD.size
_set_unpack = c.SET_HEAD.unpack_from
_del_unpack = c.DEL_HEAD.unpack_from
_cas_unpack = c.CAS_HEAD.unpack_from
_incr_unpack = c.INCR_HEAD.unpack_from
_SET_FLAGS = c.FLAG_NX | c.FLAG_XX | c.FLAG_GET | c.FLAG_KEEPTTL
_CAS_FLAGS = c.FLAG_EXPECT_ABSENT | c.FLAG_KEEPTTL


def _bad(message: str) -> KVCommandError:
    return KVCommandError(message)


class KVStore:
    """An in-memory key-value state machine with TTLs; see the module docstring for guarantees.

    `key_bytes_max`/`value_bytes_max` must be the same on every replica (they decide results).
    """

    __slots__ = (
        "_data",
        "_expires",
        "_heap",
        "applied_index",
        "clock_ns",
        "key_bytes_max",
        "value_bytes_max",
    )

    def __init__(
        self, *, key_bytes_max: int = c.KEY_BYTES_MAX, value_bytes_max: int = c.VALUE_BYTES_MAX
    ) -> None:
        from haperf.errors import ConfigError

        if not 1 <= key_bytes_max < 1 << 32 or not 0 <= value_bytes_max < 1 << 32:
            raise ConfigError(
                f"key_bytes_max must be in 1..2**32-1 and value_bytes_max in 0..2**32-1, got "
                f"{key_bytes_max} and {value_bytes_max}"
            )
        self.key_bytes_max = key_bytes_max
        self.value_bytes_max = value_bytes_max
        self._data: dict[bytes, bytes] = {}
        self._expires: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []
        self.clock_ns = 0
        self.applied_index = 0

    # ----------------------------------------------------------------- apply (the write path)

    def apply(self, index: int, data: bytes) -> object:
        """Apply one encoded command (haperf.kv.commands); return its result (see docs/kv.md).

        SET -> True/False (written or not: NX/XX), or the old value (bytes | None) with GET;
        DEL -> how many keys existed; CAS -> True/False; INCRBY -> the new int, or KVValueError;
        anything malformed -> KVCommandError. Errors are returned, never raised.
        """
        self.applied_index = index
        if not data:
            return _bad("empty kv command")
        op = data[0]
        if op == 1:
            # SET, inlined: the hot path.
            n = len(data)
            if n < _SET_SIZE:
                return _bad(f"SET command truncated: {n} bytes, the header needs {_SET_SIZE}")
            _, flags, now, exp, klen = _set_unpack(data)
            end = _SET_SIZE + klen
            if end > n or flags & ~_SET_FLAGS or flags & 3 == 3:
                return _bad(f"SET command malformed (flags {flags:#x}, key_len {klen}, {n} B)")
            if klen > self.key_bytes_max or n - end > self.value_bytes_max:
                return _bad(
                    f"SET key {klen} B / value {n - end} B above the limits "
                    f"({self.key_bytes_max} / {self.value_bytes_max})"
                )
            key = data[_SET_SIZE:end]
            self.clock_ns = max(self.clock_ns, now)
            if flags == 0 and exp == 0:
                self._data[key] = data[end:]
                if self._expires:
                    self._expires.pop(key, None)
                    if self._heap[0][0] <= self.clock_ns:
                        self._sweep()
                return True
            return self._set(key, data[end:], flags, exp)
        if op == 4:
            return self._incrby(data)
        if op == 2:
            return self._delete(data)
        if op == 3:
            return self._cas(data)
        return _bad(f"unknown kv write opcode {op}; this build knows 1-4")

    def _live(self, key: bytes, clock: int) -> bytes | None:
        value = self._data.get(key)
        if value is not None and self._expires:
            exp = self._expires.get(key)
            if exp is not None and exp <= clock:
                return None
        return value

    def _set_ttl(self, key: bytes, exp: int, keep: bool, was_live: bool) -> None:
        if exp:
            self._expires[key] = exp
            heapq.heappush(self._heap, (exp, key))
            if len(self._heap) > EXPIRE_HEAP_SLACK * len(self._expires) + EXPIRE_HEAP_MIN_REBUILD:
                self._heap = [(t, k) for k, t in self._expires.items()]
                heapq.heapify(self._heap)
        elif not (keep and was_live) and self._expires:
            self._expires.pop(key, None)

    def _set(self, key: bytes, value: bytes, flags: int, exp: int) -> object:
        old = self._live(key, self.clock_ns)
        if (flags & c.FLAG_NX and old is not None) or (flags & c.FLAG_XX and old is None):
            written = False
        else:
            self._data[key] = value
            self._set_ttl(key, exp, bool(flags & c.FLAG_KEEPTTL), old is not None)
            written = True
        self._after_write()
        if flags & c.FLAG_GET:
            return old
        return written

    def _delete(self, data: bytes) -> object:
        if len(data) < c.DEL_HEAD.size:
            return _bad("DEL command truncated")
        _, now, count = _del_unpack(data)
        if count < 1 or count > c.KEYS_PER_COMMAND_MAX:
            return _bad(f"DEL names {count} keys, outside 1..{c.KEYS_PER_COMMAND_MAX}")
        try:
            keys = c.split_keys(data, c.DEL_HEAD.size, count)
        except KVCommandError as err:
            return err
        self.clock_ns = max(self.clock_ns, now)
        clock = self.clock_ns
        removed = 0
        store = self._data
        expires = self._expires
        for key in keys:
            if key in store:
                if self._live(key, clock) is not None:
                    removed += 1
                del store[key]
                if expires:
                    expires.pop(key, None)
        self._after_write()
        return removed

    def _cas(self, data: bytes) -> object:
        n = len(data)
        if n < c.CAS_HEAD.size:
            return _bad("CAS command truncated")
        _, flags, now, exp, klen, elen = _cas_unpack(data)
        start = c.CAS_HEAD.size
        if (
            start + klen + elen > n
            or flags & ~_CAS_FLAGS
            or (flags & c.FLAG_EXPECT_ABSENT and elen)
        ):
            return _bad(f"CAS command malformed (flags {flags:#x}, key_len {klen})")
        if (
            klen > self.key_bytes_max
            or elen > self.value_bytes_max
            or n - start - klen - elen > self.value_bytes_max
        ):
            return _bad("CAS key or value above the store's size limits")
        key = data[start : start + klen]
        self.clock_ns = max(self.clock_ns, now)
        current = self._live(key, self.clock_ns)
        if flags & c.FLAG_EXPECT_ABSENT:
            match = current is None
        else:
            match = current is not None and current == data[start + klen : start + klen + elen]
        if match:
            self._data[key] = data[start + klen + elen :]
            self._set_ttl(key, exp, bool(flags & c.FLAG_KEEPTTL), current is not None)
        self._after_write()
        return match

    def _incrby(self, data: bytes) -> object:
        n = len(data)
        if n < c.INCR_HEAD.size:
            return _bad("INCRBY command truncated")
        _, now, delta, klen = _incr_unpack(data)
        if c.INCR_HEAD.size + klen != n or klen > self.key_bytes_max:
            return _bad(f"INCRBY key length {klen} does not fit the command ({n} B) or limits")
        key = data[c.INCR_HEAD.size :]
        self.clock_ns = max(self.clock_ns, now)
        current = self._live(key, self.clock_ns)
        if current is None:
            value = delta
            was_live = False
        else:
            if _INTEGER.fullmatch(current) is None:
                return KVValueError("ERR value is not an integer or out of range")
            value = int(current)
            if not c.INT64_MIN <= value <= c.INT64_MAX:
                return KVValueError("ERR value is not an integer or out of range")
            value += delta
            if not c.INT64_MIN <= value <= c.INT64_MAX:
                return KVValueError("ERR increment or decrement would overflow")
            was_live = True
        self._data[key] = b"%d" % value
        # INCR keeps a live key's TTL (as Redis does); a missing or expired key starts without.
        self._set_ttl(key, 0, True, was_live)
        self._after_write()
        return value

    def _after_write(self) -> None:
        heap = self._heap
        if heap and heap[0][0] <= self.clock_ns:
            self._sweep()

    def _sweep(self) -> None:
        """Remove up to EXPIRE_SWEEP_MAX keys whose expiry has passed (skipping stale entries)."""
        heap = self._heap
        clock = self.clock_ns
        expires = self._expires
        for _ in range(EXPIRE_SWEEP_MAX):
            if not heap or heap[0][0] > clock:
                return
            exp, key = heapq.heappop(heap)
            if expires.get(key) == exp:
                del expires[key]
                del self._data[key]

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
        return [self._live(k, clock) for k in keys]

    def exists(self, keys: Iterable[bytes], now_ns: int = 0) -> int:
        """How many of `keys` are live (a key named twice counts twice, as in Redis)."""
        clock = max(now_ns, self.clock_ns)
        return sum(1 for k in keys if self._live(k, clock) is not None)

    def keys(self, prefix: bytes = b"", limit: int = 1000, now_ns: int = 0) -> list[bytes]:
        """Up to `limit` live keys starting with `prefix`, in byte order.

        Scans every key (O(n)); the limit bounds the reply, not the scan.
        """
        if limit < 1 or limit > c.KEYS_LIMIT_MAX:
            raise KVCommandError(f"keys limit must be in 1..{c.KEYS_LIMIT_MAX}, got {limit}")
        clock = max(now_ns, self.clock_ns)
        expires = self._expires
        found = (
            k
            for k in self._data
            if k.startswith(prefix) and not (k in expires and expires[k] <= clock)
        )
        return heapq.nsmallest(limit, found)

    def ttl_ns(self, key: bytes, now_ns: int = 0) -> int | None:
        """Remaining time to live: None when the key is absent, -1 when it has no TTL."""
        clock = max(now_ns, self.clock_ns)
        if self._live(key, clock) is None:
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
        """The snapshot as chunks of about `chunk_bytes` (consume it before the next apply)."""
        crc = 0
        head = SNAP_HEAD.pack(
            SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 0, len(self._data), self.clock_ns, self.applied_index
        )
        parts = [head]
        size = len(head)
        pack = SNAP_RECORD.pack
        expires = self._expires
        for key, value in self._data.items():
            parts.append(pack(len(key), len(value), expires.get(key, 0)))
            parts.append(key)
            parts.append(value)
            size += 16 + len(key) + len(value)
            if size >= chunk_bytes:
                chunk = b"".join(parts)
                crc = crc32c(chunk, crc)
                yield chunk
                parts = []
                size = 0
        body = b"".join(parts) + SNAP_TAIL.pack(SNAPSHOT_END, len(self._data), 0)[:12]
        crc = crc32c(body, crc)
        yield body + crc.to_bytes(4, "little")

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
    """Incremental snapshot parser: records are decoded as soon as their bytes have arrived."""

    def __init__(self, key_bytes_max: int, value_bytes_max: int) -> None:
        self.key_bytes_max = key_bytes_max
        self.value_bytes_max = value_bytes_max
        self.buf = bytearray()
        self.crc = 0
        self.head: tuple[int, int, int] | None = None
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, int] = {}
        self.records = 0
        self.offset = 0  # bytes consumed (and checksummed) so far

    def _consume(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.crc = crc32c(out, self.crc)
        self.offset += n
        return out

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        if self.head is None:
            if len(self.buf) < SNAP_HEAD.size:
                return
            magic, version, flags, count, clock, applied = SNAP_HEAD.unpack(
                self._consume(SNAP_HEAD.size)
            )
            if magic != SNAPSHOT_MAGIC:
                raise KVSnapshotError(f"not a haperf kv snapshot (magic {magic!r})")
            if version != SNAPSHOT_VERSION or flags != 0:
                raise KVSnapshotError(
                    f"kv snapshot version {version} flags {flags:#x}; this build reads version "
                    f"{SNAPSHOT_VERSION}: upgrade haperf on this node"
                )
            self.head = (count, clock, applied)
        count = self.head[0]
        while self.records < count and len(self.buf) >= SNAP_RECORD.size:
            klen, vlen, exp = SNAP_RECORD.unpack_from(self.buf)
            if klen > self.key_bytes_max or vlen > self.value_bytes_max:
                raise KVSnapshotError(
                    f"kv snapshot record {self.records} at offset {self.offset} has key {klen} B "
                    f"/ value {vlen} B, above this store's limits: corrupted or a store with "
                    "other limits"
                )
            need = SNAP_RECORD.size + klen + vlen
            if len(self.buf) < need:
                return
            raw = self._consume(need)
            key = raw[16 : 16 + klen]
            if key in self.data:
                raise KVSnapshotError(f"kv snapshot names key {key!r} twice: corrupted")
            self.data[key] = raw[16 + klen :]
            if exp:
                self.expires[key] = exp
            self.records += 1

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
        self._consume(12)
        if magic != SNAPSHOT_END or count != self.head[0]:
            raise KVSnapshotError("kv snapshot trailer does not match its header: corrupted")
        if crc != self.crc:
            raise KVSnapshotError(
                f"kv snapshot checksum mismatch (stored {crc:#010x}, computed {self.crc:#010x}):"
                " corrupted; restore from another replica"
            )
        return self.data, self.expires, self.head[1], self.head[2]
