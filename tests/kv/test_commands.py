"""The kv command codec and snapshot format: round trips, fuzzing, corruption.

Owns the tests that bad bytes never corrupt state: decode() of random and mutated commands gives
a Command or KVCommandError and nothing else; KVStore.apply of the same bytes returns (never
raises) and, whenever it returns a KVCommandError, leaves the state byte-for-byte unchanged; a
snapshot survives any chunking, and every truncation and sampled bit flip of it is refused with
KVSnapshotError while the store keeps its previous state.
"""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import KVCommandError, KVSnapshotError
from haperf.kv import commands as c
from haperf.kv.store import KVStore

small = st.binary(max_size=12)
now_st = st.integers(min_value=0, max_value=2**64 - 1)

command_st = st.one_of(
    st.builds(
        lambda k, v, now, flags, exp: c.encode_set(k, v, now, flags=flags, expire_at_ns=exp),
        small,
        small,
        now_st,
        st.sampled_from([0, 1, 2, 4, 8, 5, 6, 12]),
        now_st,
    ),
    st.builds(c.encode_delete, st.lists(small, min_size=1, max_size=4), now_st),
    st.builds(
        lambda k, e, n, now, exp, keep: c.encode_cas(k, e, n, now, expire_at_ns=exp, keep_ttl=keep),
        small,
        st.one_of(st.none(), small),
        small,
        now_st,
        now_st,
        st.booleans(),
    ),
    st.builds(
        c.encode_incrby,
        small,
        st.integers(min_value=c.INT64_MIN, max_value=c.INT64_MAX),
        now_st,
    ),
)
query_st = st.one_of(
    st.builds(c.encode_get, small, now_st),
    st.builds(c.encode_mget, st.lists(small, min_size=1, max_size=4), now_st),
    st.builds(c.encode_exists, st.lists(small, min_size=1, max_size=4), now_st),
    st.builds(c.encode_keys, small, st.integers(min_value=1, max_value=c.KEYS_LIMIT_MAX), now_st),
)


@given(command_st)
def test_encode_decode_round_trip(data: bytes) -> None:
    cmd = c.decode(data)
    if cmd.op == c.OP_SET:
        again = c.encode_set(cmd.keys[0], cmd.value or b"", cmd.now_ns, flags=cmd.flags,
                             expire_at_ns=cmd.expire_at_ns)
    elif cmd.op == c.OP_DEL:
        again = c.encode_delete(list(cmd.keys), cmd.now_ns)
    elif cmd.op == c.OP_CAS:
        again = c.encode_cas(cmd.keys[0], cmd.expected, cmd.value or b"", cmd.now_ns,
                             expire_at_ns=cmd.expire_at_ns, keep_ttl=bool(cmd.flags & 8))
    else:
        assert cmd.op == c.OP_INCRBY
        again = c.encode_incrby(cmd.keys[0], cmd.delta, cmd.now_ns)
    assert again == data


@given(query_st)
def test_queries_decode(data: bytes) -> None:
    cmd = c.decode(data)
    assert cmd.op in (c.OP_GET, c.OP_MGET, c.OP_EXISTS, c.OP_KEYS)


def _seeded_store() -> KVStore:
    store = KVStore()
    store.apply(1, c.encode_set(b"a", b"1", 10))
    store.apply(2, c.encode_set(b"b", b"x", 10, expire_at_ns=50))
    return store


def _check_apply_is_safe(data: bytes) -> None:
    store = _seeded_store()
    before = store.snapshot()
    try:
        c.decode(data)
        decodable = True
    except KVCommandError:
        decodable = False
    result = store.apply(3, data)
    if isinstance(result, KVCommandError):
        store.applied_index = 2  # apply records the index even for a refused command
        assert store.snapshot() == before
    elif data and data[0] in (1, 2, 3, 4):
        # Whatever the store accepted as a write, decode() accepts too (one grammar).
        assert decodable, data


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_or_corrupt(data: bytes) -> None:
    _check_apply_is_safe(data)


@given(command_st, st.data())
def test_mutated_commands_never_raise_or_corrupt(data: bytes, draw: st.DataObject) -> None:
    raw = bytearray(data)
    for _ in range(draw.draw(st.integers(min_value=1, max_value=3))):
        how = draw.draw(st.sampled_from(["flip", "cut", "grow"]))
        if how == "flip" and raw:
            i = draw.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[i] ^= 1 << draw.draw(st.integers(min_value=0, max_value=7))
        elif how == "cut":
            del raw[draw.draw(st.integers(min_value=0, max_value=len(raw))) :]
        else:
            raw += draw.draw(st.binary(min_size=1, max_size=4))
    _check_apply_is_safe(bytes(raw))


def test_every_truncation_of_every_command_is_refused_or_exact() -> None:
    commands = [
        c.encode_set(b"key", b"value", 7, flags=c.FLAG_NX, expire_at_ns=9),
        c.encode_delete([b"a", b"bb"], 7),
        c.encode_cas(b"k", b"old", b"new", 7),
        c.encode_incrby(b"n", -3, 7),
    ]
    for data in commands:
        for cut in range(len(data)):
            truncated = data[:cut]
            with pytest.raises(KVCommandError):
                # SET/CAS values are "the rest", so a cut inside the value is a shorter value,
                # which is still one command; only cuts before the value must fail.
                cmd = c.decode(truncated)
                if cmd.op in (c.OP_SET, c.OP_CAS):
                    raise KVCommandError("value shortened, accepted as a shorter value")
            _check_apply_is_safe(truncated)


def test_unknown_opcode_and_empty_are_refused() -> None:
    store = KVStore()
    assert isinstance(store.apply(1, b""), KVCommandError)
    assert isinstance(store.apply(1, b"\x63abc"), KVCommandError)
    assert isinstance(store.apply(1, c.encode_get(b"a", 1)), KVCommandError)  # a query
    with pytest.raises(KVCommandError, match="opcode"):
        c.decode(b"\x63")
    with pytest.raises(KVCommandError):
        c.encode_delete([], 1)
    with pytest.raises(KVCommandError):
        c.encode_incrby(b"k", 2**63, 1)


# ------------------------------------------------------------------ snapshots


def _big_store(n: int = 300) -> KVStore:
    store = KVStore()
    rng = random.Random(7)
    for i in range(n):
        exp = 10**6 + i if i % 3 == 0 else 0
        store.apply(i + 1, c.encode_set(b"k%d" % i, rng.randbytes(i % 40), 1_000, expire_at_ns=exp))
    return store


def _state(store: KVStore) -> tuple[object, ...]:
    keys = store.keys(b"", 10_000, 0)
    return (
        store.clock_ns,
        store.applied_index,
        [(k, store.get(k), store.ttl_ns(k)) for k in keys],
    )


def test_snapshot_round_trip_in_any_chunking() -> None:
    store = _big_store()
    data = store.snapshot()
    assert b"".join(store.iter_snapshot(chunk_bytes=100)) == data
    rng = random.Random(3)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 30)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        copy = KVStore()
        copy.restore_stream(pieces)
        assert _state(copy) == _state(store)
    empty = KVStore()
    restored = KVStore()
    restored.restore(empty.snapshot())
    assert len(restored) == 0


def test_every_truncation_of_a_snapshot_is_refused_and_state_kept() -> None:
    data = _big_store(20).snapshot()
    target = _big_store(5)
    before = _state(target)
    for cut in range(len(data)):
        with pytest.raises(KVSnapshotError):
            target.restore(data[:cut])
        assert _state(target) == before
    with pytest.raises(KVSnapshotError):
        target.restore(data + b"\x00")


def test_bit_flips_in_a_snapshot_are_refused_and_state_kept() -> None:
    data = _big_store(40).snapshot()
    target = _big_store(5)
    before = _state(target)
    rng = random.Random(11)
    positions = list(range(min(len(data), 64))) + rng.sample(range(len(data)), 200)
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(KVSnapshotError):
            target.restore(bytes(bad))
        assert _state(target) == before


def test_snapshot_version_and_limits_are_checked() -> None:
    data = bytearray(_big_store(3).snapshot())
    data[4] = 9  # version
    with pytest.raises(KVSnapshotError, match="version 9"):
        KVStore().restore(bytes(data))
    with pytest.raises(KVSnapshotError, match="limits"):
        KVStore(value_bytes_max=2).restore(_big_store(10).snapshot())
    with pytest.raises(KVSnapshotError, match="magic"):
        KVStore().restore(b"NOPE" + bytes(40))


def test_snapshot_records_chunking_and_duplicate_keys() -> None:
    store = _big_store(10)
    chunks = store.snapshot_records(1)
    assert len(chunks) == 10  # a chunk closes as soon as it reaches chunk_bytes
    assert b"".join(chunks) == b"".join(store.snapshot_records(1 << 20))
    with pytest.raises(ValueError):
        store.snapshot_records(0)
    two = KVStore()
    two.apply(1, c.encode_set(b"a", b"1", 5))
    two.apply(2, c.encode_set(b"b", b"2", 5))
    data = two.snapshot()
    bad = data.replace(b"\x00b2", b"\x00a2")  # the second record now names key "a" again
    assert bad != data
    with pytest.raises(KVSnapshotError, match="twice"):
        KVStore().restore(bad)
