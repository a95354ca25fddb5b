"""KVStore semantics against a plain-dict model, with TTLs driven by injected command times.

Owns the store's behavioural tests: every write through the encoded command path (as Raft would
deliver it), results and reads compared with a model after every step; the replicated clock
(largest now_ns so far) decides expiry, including when a proposing leader's clock runs behind;
Redis's INCRBY edge cases; the bounded expiry sweep; size limits; query().
"""

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import ConfigError, KVCommandError, KVValueError
from haperf.kv import commands as c
from haperf.kv.store import EXPIRE_SWEEP_MAX, KVStore

KEYS = [b"a", b"b", b"ab", b"c"]
VALUES = [b"1", b"x", b"-5", b"9223372036854775807", b"-9223372036854775808", b"007", b"", b"0"]


@dataclass
class Model:
    data: dict[bytes, tuple[bytes, int]]
    clock: int = 0

    def tick(self, now: int) -> None:
        self.clock = max(self.clock, now)

    def live(self, key: bytes, at: int | None = None) -> bytes | None:
        at = self.clock if at is None else max(at, self.clock)
        item = self.data.get(key)
        if item is None or (item[1] and item[1] <= at):
            return None
        return item[0]

    def ttl(self, key: bytes) -> int:
        return self.data[key][1]


def model_set(m: Model, key: bytes, value: bytes, flags: int, exp: int) -> object:
    old = m.live(key)
    if (flags & c.FLAG_NX and old is not None) or (flags & c.FLAG_XX and old is None):
        written = False
    else:
        keep = m.ttl(key) if flags & c.FLAG_KEEPTTL and old is not None else 0
        m.data[key] = (value, exp or keep)
        written = True
    return old if flags & c.FLAG_GET else written


def model_incr(m: Model, key: bytes, delta: int) -> object:
    old = m.live(key)
    if old is None:
        m.data[key] = (b"%d" % delta, 0)
        return delta
    text = old.decode()
    canonical = text == str(int(text)) if text.lstrip("-").isdigit() else False
    if not canonical or text == "-0" or not c.INT64_MIN <= int(text) <= c.INT64_MAX:
        return "ERR value is not an integer or out of range"
    value = int(text) + delta
    if not c.INT64_MIN <= value <= c.INT64_MAX:
        return "ERR increment or decrement would overflow"
    m.data[key] = (b"%d" % value, m.ttl(key))
    return value


key_st = st.sampled_from(KEYS)
value_st = st.sampled_from(VALUES)
# Time moves mostly forward, sometimes back (a new leader whose clock is behind).
step_st = st.integers(min_value=-30, max_value=60)
ttl_st = st.one_of(st.just(0), st.integers(min_value=1, max_value=100))

op_st = st.one_of(
    st.tuples(
        st.just("set"),
        key_st,
        value_st,
        st.sampled_from([0, c.FLAG_NX, c.FLAG_XX, c.FLAG_GET, c.FLAG_KEEPTTL, c.FLAG_NX | 4]),
        ttl_st,
        step_st,
    ),
    st.tuples(st.just("del"), st.lists(key_st, min_size=1, max_size=3), step_st),
    st.tuples(
        st.just("cas"), key_st, st.one_of(st.none(), value_st), value_st, ttl_st, step_st
    ),
    st.tuples(
        st.just("incr"),
        key_st,
        st.sampled_from([1, -1, 7, c.INT64_MAX, c.INT64_MIN]),
        step_st,
    ),
    st.tuples(st.just("read"), step_st),
)


@given(st.lists(op_st, max_size=60))
def test_store_matches_dict_model(ops: list[tuple[object, ...]]) -> None:
    store = KVStore()
    model = Model({})
    now = 1_000
    for index, op in enumerate(ops, start=1):
        now = max(1, now + int(op[-1]))  # type: ignore[call-overload]
        kind = op[0]
        if kind == "set":
            _, key, value, flags, ttl, _ = op
            exp = now + ttl if ttl else 0
            if flags & c.FLAG_KEEPTTL:
                exp = 0
            data = c.encode_set(key, value, now, flags=flags, expire_at_ns=exp)  # type: ignore[arg-type]
            model.tick(now)
            expected = model_set(model, key, value, flags, exp)  # type: ignore[arg-type]
            assert store.apply(index, data) == expected
        elif kind == "del":
            _, keys, _ = op
            model.tick(now)
            count = 0
            for key in keys:  # type: ignore[attr-defined]
                if model.live(key) is not None:
                    count += 1
                model.data.pop(key, None)
            assert store.apply(index, c.encode_delete(keys, now)) == count  # type: ignore[arg-type]
        elif kind == "cas":
            _, key, expected_value, new, ttl, _ = op
            exp = now + ttl if ttl else 0
            model.tick(now)
            current = model.live(key)  # type: ignore[arg-type]
            match = current == expected_value
            if match:
                model.data[key] = (new, exp)  # type: ignore[index]
            got = store.apply(index, c.encode_cas(key, expected_value, new, now, expire_at_ns=exp))  # type: ignore[arg-type]
            assert got is match
        elif kind == "incr":
            _, key, delta, _ = op
            model.tick(now)
            want = model_incr(model, key, delta)  # type: ignore[arg-type]
            got = store.apply(index, c.encode_incrby(key, delta, now))  # type: ignore[arg-type]
            if isinstance(want, str):
                assert isinstance(got, KVValueError)
                assert str(got) == want
            else:
                assert got == want
        else:
            for key in KEYS:
                assert store.get(key, now) == model.live(key, now)
        assert store.clock_ns == model.clock
        assert store.applied_index <= index
        for key in KEYS:
            assert store.get(key) == model.live(key)
        live = sorted(k for k in KEYS if model.live(k) is not None)
        assert store.keys(b"", 100) == live
        assert store.keys(b"a", 100) == [k for k in live if k.startswith(b"a")]
        assert store.exists(KEYS) == len(live)
        assert store.mget(KEYS) == [model.live(k) for k in KEYS]
    # A snapshot restores exactly the same observable state and clock.
    copy = KVStore()
    copy.restore(store.snapshot())
    assert copy.clock_ns == store.clock_ns
    for key in KEYS:
        assert copy.get(key) == store.get(key)
        assert copy.ttl_ns(key) == store.ttl_ns(key)


def test_expiry_follows_replicated_clock_not_a_behind_leader() -> None:
    store = KVStore()
    store.apply(1, c.encode_set(b"k", b"v", 100, expire_at_ns=150))
    # A new leader whose clock is behind proposes at t=90: replicated time stays at 100.
    assert store.apply(2, c.encode_set(b"other", b"v", 90)) is True
    assert store.clock_ns == 100
    assert store.get(b"k") == b"v"
    assert store.get(b"k", now_ns=149) == b"v"
    assert store.get(b"k", now_ns=150) is None  # a read at the reader's clock sees it expired
    # Until a write moves replicated time past 150, the key is still stored.
    assert len(store) == 2
    store.apply(3, c.encode_set(b"x", b"y", 151))
    assert store.get(b"k") is None
    assert b"k" not in store.keys(b"", 10)


def test_ttl_kept_or_cleared_like_redis() -> None:
    store = KVStore()
    store.apply(1, c.encode_set(b"k", b"1", 10, expire_at_ns=1_000))
    assert store.ttl_ns(b"k", 10) == 990
    assert store.apply(2, c.encode_incrby(b"k", 1, 20)) == 2  # INCR keeps the TTL
    assert store.ttl_ns(b"k", 20) == 980
    store.apply(3, c.encode_set(b"k", b"v", 30, flags=c.FLAG_KEEPTTL))
    assert store.ttl_ns(b"k", 30) == 970
    store.apply(4, c.encode_set(b"k", b"v", 40))  # plain SET clears it
    assert store.ttl_ns(b"k", 40) == -1
    assert store.ttl_ns(b"missing") is None


@pytest.mark.parametrize(
    ("stored", "delta", "want"),
    [
        (b"10", 5, 15),
        (b"-10", -5, -15),
        (b"0", 0, 0),
        (b" 1", 1, "ERR value is not an integer or out of range"),
        (b"+1", 1, "ERR value is not an integer or out of range"),
        (b"01", 1, "ERR value is not an integer or out of range"),
        (b"-0", 1, "ERR value is not an integer or out of range"),
        (b"1.5", 1, "ERR value is not an integer or out of range"),
        (b"1_000", 1, "ERR value is not an integer or out of range"),
        (b"abc", 1, "ERR value is not an integer or out of range"),
        (b"99999999999999999999", 1, "ERR value is not an integer or out of range"),
        (b"9223372036854775807", 1, "ERR increment or decrement would overflow"),
        (b"-9223372036854775808", -1, "ERR increment or decrement would overflow"),
        (b"9223372036854775807", -1, 9223372036854775806),
    ],
)
def test_incrby_parses_values_as_redis_does(stored: bytes, delta: int, want: object) -> None:
    store = KVStore()
    store.apply(1, c.encode_set(b"n", stored, 1))
    before = store.snapshot()
    got = store.apply(2, c.encode_incrby(b"n", delta, 2))
    if isinstance(want, str):
        assert isinstance(got, KVValueError)
        assert str(got) == want
        assert store.get(b"n") == stored
        # Nothing changed except the replicated clock (the command was well-formed).
        copy = KVStore()
        copy.restore(before)
        assert copy.get(b"n") == store.get(b"n")
    else:
        assert got == want
        assert store.get(b"n") == b"%d" % want  # type: ignore[str-format]


def test_expiry_sweep_is_bounded_and_removes_expired_keys() -> None:
    store = KVStore()
    n = EXPIRE_SWEEP_MAX * 3
    for i in range(n):
        store.apply(i + 1, c.encode_set(b"k%d" % i, b"v", 10, expire_at_ns=20))
    assert len(store) == n
    store.apply(n + 1, c.encode_set(b"live", b"v", 30))
    assert len(store) == n + 1 - EXPIRE_SWEEP_MAX
    for i in range(2):
        store.apply(n + 2 + i, c.encode_set(b"live", b"v", 31))
    assert len(store) == 1
    assert store.keys(b"", 10) == [b"live"]


def test_rewriting_ttls_does_not_grow_the_heap_without_bound() -> None:
    store = KVStore()
    for i in range(20_000):
        store.apply(i + 1, c.encode_set(b"k", b"v", i + 1, expire_at_ns=10**12 + i))
    assert len(store._heap) <= 2 * len(store._expires) + 1024 + 1


def test_size_limits_refused_at_encode_and_at_apply() -> None:
    store = KVStore(key_bytes_max=4, value_bytes_max=8)
    with pytest.raises(KVCommandError, match="key_bytes_max=4"):
        c.encode_set(b"12345", b"v", 1, key_bytes_max=4)
    with pytest.raises(KVCommandError, match="value_bytes_max=8"):
        c.encode_set(b"k", b"123456789", 1, value_bytes_max=8)
    # A command built with larger limits is refused by the store, which stays unchanged.
    for data in (
        c.encode_set(b"12345", b"v", 1),
        c.encode_set(b"k", b"123456789", 1),
        c.encode_cas(b"k", b"x", b"123456789", 1),
        c.encode_incrby(b"12345", 1, 1),
    ):
        assert isinstance(store.apply(1, data), KVCommandError)
    assert len(store) == 0
    assert store.clock_ns == 0
    with pytest.raises(ConfigError):
        KVStore(key_bytes_max=0)


def test_query_runs_encoded_reads() -> None:
    store = KVStore()
    store.apply(1, c.encode_set(b"a", b"1", 5))
    store.apply(2, c.encode_set(b"b", b"2", 5, expire_at_ns=7))
    assert store.query(c.encode_get(b"a", 6)) == b"1"
    assert store.query(c.encode_get(b"b", 6)) == b"2"
    assert store.query(c.encode_get(b"b", 7)) is None
    assert store.query(c.encode_mget([b"a", b"b", b"z"], 6)) == [b"1", b"2", None]
    assert store.query(c.encode_exists([b"a", b"a", b"z"], 6)) == 2
    assert store.query(c.encode_keys(b"", 1, 6)) == [b"a"]
    with pytest.raises(KVCommandError, match="write"):
        store.query(c.encode_set(b"a", b"1", 5))
    with pytest.raises(KVCommandError, match="bytes"):
        store.query("GET a")
