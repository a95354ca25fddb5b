"""haperf.kv.commands: the compact binary encoding of key-value commands (the Raft log payload).

Owns the command byte format and the encode functions the RESP server (and any embedder) uses to
build log entries, plus `decode()` (for tools and tests; KVStore.apply parses in place).

Every command starts with one opcode byte. Integers are little-endian. Write commands carry
`now_ns`, the proposing leader's wall clock (ns since the epoch), so apply is deterministic: a
TTL is stored as an absolute `expire_at_ns`, and "is this key expired?" is judged against the
store's replicated clock, never a replica's own clock.

    SET     B op=1 | B flags (NX=1 XX=2 GET=4 KEEPTTL=8) | Q now_ns | Q expire_at_ns (0 = none)
            | I key_len | key | value (the rest)
    DEL     B op=2 | Q now_ns | I count | count x (I key_len | key)
    CAS     B op=3 | B flags (EXPECT_ABSENT=1 KEEPTTL=8) | Q now_ns | Q expire_at_ns
            | I key_len | I expected_len | key | expected | new value (the rest)
    INCRBY  B op=4 | Q now_ns | q delta | I key_len | key

Queries (for `node.read(query)` / `KVStore.query`) use the same style, with no effect on state:

    GET     B op=16 | Q now_ns | key (the rest)
    MGET    B op=17 | Q now_ns | I count | count x (I key_len | key)   (EXISTS: op=18, same body)
    KEYS    B op=19 | Q now_ns | I limit | prefix (the rest)

Invariants: encoders check the size limits and raise KVCommandError before any byte is built;
decoding never trusts a length (every length is checked against what is left) and a bad command
raises KVCommandError, so state is never touched by a partially understood command.
"""

import struct
from dataclasses import dataclass

from haperf.errors import KVCommandError

OP_SET = 1
OP_DEL = 2
OP_CAS = 3
OP_INCRBY = 4
OP_GET = 16
OP_MGET = 17
OP_EXISTS = 18
OP_KEYS = 19

FLAG_NX = 1
FLAG_XX = 2
FLAG_GET = 4
FLAG_KEEPTTL = 8
FLAG_EXPECT_ABSENT = 1

# Default size limits. Every replica must run with the same limits (they are part of the state
# machine's definition, like its code); the RESP server checks them before proposing, so a
# too-large request is refused without touching the log.
KEY_BYTES_MAX = 1 << 16
VALUE_BYTES_MAX = 1 << 20
# Most keys one DEL/MGET/EXISTS may name, and most keys one KEYS query returns.
KEYS_PER_COMMAND_MAX = 1 << 16
KEYS_LIMIT_MAX = 1 << 16

SET_HEAD = struct.Struct("<BBQQI")
DEL_HEAD = struct.Struct("<BQI")
CAS_HEAD = struct.Struct("<BBQQII")
INCR_HEAD = struct.Struct("<BQqI")
QUERY_HEAD = struct.Struct("<BQ")
MANY_HEAD = struct.Struct("<BQI")
LEN = struct.Struct("<I")

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_set_pack = SET_HEAD.pack
_SET_HEAD_SIZE = SET_HEAD.size


def _check_key(key: bytes, key_bytes_max: int) -> None:
    if len(key) > key_bytes_max:
        raise KVCommandError(
            f"key of {len(key)} bytes is above key_bytes_max={key_bytes_max}; use a shorter key"
        )


def _check_value(value: bytes, value_bytes_max: int) -> None:
    if len(value) > value_bytes_max:
        raise KVCommandError(
            f"value of {len(value)} bytes is above value_bytes_max={value_bytes_max}; "
            "store large blobs elsewhere and keep a reference here"
        )


def encode_set(
    key: bytes,
    value: bytes,
    now_ns: int,
    *,
    flags: int = 0,
    expire_at_ns: int = 0,
    key_bytes_max: int = KEY_BYTES_MAX,
    value_bytes_max: int = VALUE_BYTES_MAX,
) -> bytes:
    """SET key value [NX|XX] [GET] [KEEPTTL]; `expire_at_ns` > 0 sets an absolute expiry."""
    if len(key) > key_bytes_max:
        _check_key(key, key_bytes_max)
    if len(value) > value_bytes_max:
        _check_value(value, value_bytes_max)
    return _set_pack(OP_SET, flags, now_ns, expire_at_ns, len(key)) + key + value


def encode_delete(
    keys: list[bytes], now_ns: int, *, key_bytes_max: int = KEY_BYTES_MAX
) -> bytes:
    """DEL key [key ...]: the result is how many existed (and were not expired)."""
    _check_count(len(keys))
    parts = [DEL_HEAD.pack(OP_DEL, now_ns, len(keys))]
    for key in keys:
        _check_key(key, key_bytes_max)
        parts.append(LEN.pack(len(key)))
        parts.append(key)
    return b"".join(parts)


def encode_cas(
    key: bytes,
    expected: bytes | None,
    new: bytes,
    now_ns: int,
    *,
    expire_at_ns: int = 0,
    keep_ttl: bool = False,
    key_bytes_max: int = KEY_BYTES_MAX,
    value_bytes_max: int = VALUE_BYTES_MAX,
) -> bytes:
    """Compare-and-set: write `new` only if the current value is `expected` (None = absent)."""
    _check_key(key, key_bytes_max)
    _check_value(new, value_bytes_max)
    flags = FLAG_KEEPTTL if keep_ttl else 0
    if expected is None:
        flags |= FLAG_EXPECT_ABSENT
        expected = b""
    else:
        _check_value(expected, value_bytes_max)
    head = CAS_HEAD.pack(OP_CAS, flags, now_ns, expire_at_ns, len(key), len(expected))
    return head + key + expected + new


def encode_incrby(
    key: bytes, delta: int, now_ns: int, *, key_bytes_max: int = KEY_BYTES_MAX
) -> bytes:
    """INCRBY key delta (a signed 64-bit delta); the result is the new value."""
    _check_key(key, key_bytes_max)
    if not INT64_MIN <= delta <= INT64_MAX:
        raise KVCommandError(f"increment {delta} is outside the signed 64-bit range")
    return INCR_HEAD.pack(OP_INCRBY, now_ns, delta, len(key)) + key


def _check_count(count: int) -> None:
    if count < 1 or count > KEYS_PER_COMMAND_MAX:
        raise KVCommandError(
            f"a command names 1..{KEYS_PER_COMMAND_MAX} keys, got {count}; split the request"
        )


def encode_get(key: bytes, now_ns: int) -> bytes:
    """Query: the value of `key` or None."""
    return QUERY_HEAD.pack(OP_GET, now_ns) + key


def _encode_many(op: int, keys: list[bytes], now_ns: int) -> bytes:
    _check_count(len(keys))
    parts = [MANY_HEAD.pack(op, now_ns, len(keys))]
    for key in keys:
        parts.append(LEN.pack(len(key)))
        parts.append(key)
    return b"".join(parts)


def encode_mget(keys: list[bytes], now_ns: int) -> bytes:
    """Query: a list with each key's value or None."""
    return _encode_many(OP_MGET, keys, now_ns)


def encode_exists(keys: list[bytes], now_ns: int) -> bytes:
    """Query: how many of the keys exist (a key named twice counts twice, as in Redis)."""
    return _encode_many(OP_EXISTS, keys, now_ns)


def encode_keys(prefix: bytes, limit: int, now_ns: int) -> bytes:
    """Query: up to `limit` live keys starting with `prefix`, sorted."""
    if limit < 1 or limit > KEYS_LIMIT_MAX:
        raise KVCommandError(f"keys limit must be in 1..{KEYS_LIMIT_MAX}, got {limit}")
    return MANY_HEAD.pack(OP_KEYS, now_ns, limit) + prefix


@dataclass(frozen=True, slots=True)
class Command:
    """A decoded command or query (for tools, tests and logs; apply does not build these)."""

    op: int
    now_ns: int
    keys: tuple[bytes, ...]
    value: bytes | None = None
    expected: bytes | None = None
    flags: int = 0
    expire_at_ns: int = 0
    delta: int = 0
    limit: int = 0


def split_keys(data: bytes, offset: int, count: int) -> list[bytes]:
    """`count` length-prefixed keys from data[offset:], which they must fill exactly."""
    keys: list[bytes] = []
    end = len(data)
    for _ in range(count):
        if offset + 4 > end:
            raise KVCommandError(f"command truncated: key length at offset {offset} is cut off")
        (n,) = LEN.unpack_from(data, offset)
        offset += 4
        if offset + n > end:
            raise KVCommandError(
                f"command truncated: a key of {n} bytes at offset {offset} runs past the end "
                f"({end} bytes)"
            )
        keys.append(data[offset : offset + n])
        offset += n
    if offset != end:
        raise KVCommandError(f"command has {end - offset} trailing bytes after {count} keys")
    return keys


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise KVCommandError(
            f"{what} command truncated: {len(data)} bytes, the header alone needs {size}"
        )


def decode(data: bytes) -> Command:
    """Parse a command or query; KVCommandError for anything that is not exactly one command."""
    if not data:
        raise KVCommandError("empty kv command (the leader's no-op never reaches the store)")
    op = data[0]
    if op == OP_SET:
        _need(data, SET_HEAD.size, "SET")
        _, flags, now, exp, klen = SET_HEAD.unpack_from(data)
        start = SET_HEAD.size
        if start + klen > len(data):
            raise KVCommandError(f"SET key of {klen} bytes runs past the command end")
        if flags & ~(FLAG_NX | FLAG_XX | FLAG_GET | FLAG_KEEPTTL) or (
            flags & FLAG_NX and flags & FLAG_XX
        ):
            raise KVCommandError(f"SET has invalid flags {flags:#x}")
        key = data[start : start + klen]
        return Command(op, now, (key,), data[start + klen :], flags=flags, expire_at_ns=exp)
    if op == OP_DEL:
        _need(data, DEL_HEAD.size, "DEL")
        _, now, count = DEL_HEAD.unpack_from(data)
        if count < 1 or count > KEYS_PER_COMMAND_MAX:
            raise KVCommandError(f"DEL names {count} keys, outside 1..{KEYS_PER_COMMAND_MAX}")
        return Command(op, now, tuple(split_keys(data, DEL_HEAD.size, count)))
    if op == OP_CAS:
        _need(data, CAS_HEAD.size, "CAS")
        _, flags, now, exp, klen, elen = CAS_HEAD.unpack_from(data)
        start = CAS_HEAD.size
        if start + klen + elen > len(data):
            raise KVCommandError("CAS key and expected value run past the command end")
        if flags & ~(FLAG_EXPECT_ABSENT | FLAG_KEEPTTL) or (flags & FLAG_EXPECT_ABSENT and elen):
            raise KVCommandError(f"CAS has invalid flags {flags:#x} for expected_len {elen}")
        key = data[start : start + klen]
        expected = None if flags & FLAG_EXPECT_ABSENT else data[start + klen : start + klen + elen]
        return Command(
            op,
            now,
            (key,),
            data[start + klen + elen :],
            expected=expected,
            flags=flags,
            expire_at_ns=exp,
        )
    if op == OP_INCRBY:
        _need(data, INCR_HEAD.size, "INCRBY")
        _, now, delta, klen = INCR_HEAD.unpack_from(data)
        if INCR_HEAD.size + klen != len(data):
            raise KVCommandError(f"INCRBY key length {klen} does not match the command size")
        return Command(op, now, (data[INCR_HEAD.size :],), delta=delta)
    if op == OP_GET:
        _need(data, QUERY_HEAD.size, "GET")
        _, now = QUERY_HEAD.unpack_from(data)
        return Command(op, now, (data[QUERY_HEAD.size :],))
    if op in (OP_MGET, OP_EXISTS):
        _need(data, MANY_HEAD.size, "MGET/EXISTS")
        _, now, count = MANY_HEAD.unpack_from(data)
        if count < 1 or count > KEYS_PER_COMMAND_MAX:
            raise KVCommandError(f"query names {count} keys, outside 1..{KEYS_PER_COMMAND_MAX}")
        return Command(op, now, tuple(split_keys(data, MANY_HEAD.size, count)))
    if op == OP_KEYS:
        _need(data, MANY_HEAD.size, "KEYS")
        _, now, limit = MANY_HEAD.unpack_from(data)
        if limit < 1 or limit > KEYS_LIMIT_MAX:
            raise KVCommandError(f"KEYS limit {limit} is outside 1..{KEYS_LIMIT_MAX}")
        return Command(op, now, (data[MANY_HEAD.size :],), limit=limit)
    raise KVCommandError(f"unknown kv opcode {op}; this build knows 1-4 and 16-19")
