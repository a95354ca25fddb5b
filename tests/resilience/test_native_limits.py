"""The native cores on their own: DeadlineQueue (order, O(1) removal, stale handles,
compaction), ErrorWindow against a brute-force count (hypothesis), TokenBucket arithmetic and
Slots transitions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native.concurrency import Slots
from haperf._native.deadline import COMPACT_SLACK, DeadlineQueue
from haperf._native.ratelimit import TokenBucket
from haperf._native.slo import ErrorWindow


@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), min_size=1, max_size=300))
def test_deadline_queue_pops_in_order_and_skips_removed(entries: list[tuple[int, bool]]) -> None:
    q = DeadlineQueue()
    handles = [(q.add(d, i), d, keep) for i, (d, keep) in enumerate(entries)]
    for h, _, keep in handles:
        if not keep:
            assert q.remove(h) is False
    live = sorted((d, i) for i, (_, d, keep) in enumerate(handles) if keep)
    assert q.live == len(live)
    if live:
        assert q.next_deadline() == live[0][0]
    popped = q.pop_expired(10**6)
    assert popped == [i for _, i in live]
    assert q.live == 0 and q.next_deadline() is None
    for h, _, keep in handles:
        if keep:
            assert q.remove(h) is True  # fired entries report it


def test_deadline_queue_partial_expiry_and_handle_reuse() -> None:
    q = DeadlineQueue()
    a = q.add(10, "a")
    b = q.add(20, "b")
    assert q.pop_expired(15) == ["a"]
    assert q.fired(a) and not q.fired(b)
    assert q.remove(a) is True
    c = q.add(5, "c")  # reuses a's slot with a new generation
    assert not q.fired(a)
    with pytest.raises(AssertionError):
        q.remove(a)  # a stale handle never touches the reused slot
    assert q.deadline_of(c) == 5 and q.next_deadline() == 5
    assert q.pop_expired(100) == ["c", "b"]


def test_deadline_queue_compacts_stale_nodes() -> None:
    q = DeadlineQueue()
    keep = q.add(10**12, "long")
    for i in range(20_000):
        q.remove(q.add(10**9 + i, i))
    assert q.live == 1
    assert q.heap_len <= 2 * q.live + COMPACT_SLACK + 1
    assert q.compactions > 0
    assert q.next_deadline() == 10**12
    assert q.remove(keep) is False


def test_deadline_queue_entries_max() -> None:
    q = DeadlineQueue(100)
    for i in range(100):
        q.add(i, i)
    with pytest.raises(OverflowError, match="entries_max"):
        q.add(1, "one too many")


@given(
    st.lists(st.tuples(st.integers(0, 5_000), st.booleans()), max_size=200),
    st.integers(1, 900),
)
def test_error_window_matches_brute_force(events: list[tuple[int, bool]], window: int) -> None:
    bucket_ns, buckets = 10, 101  # horizon 1000 ns
    w = ErrorWindow(bucket_ns, buckets)
    now = 0
    seen: list[tuple[int, bool]] = []
    for step, ok in events:
        now += step % 37
        w.record(now, ok)
        seen.append((now, ok))
    # The window covers the buckets it overlaps: from the start of bucket
    # (now // bucket - k + 1), k = ceil(window / bucket).
    k = -(-window // bucket_ns)
    start = (now // bucket_ns - k + 1) * bucket_ns
    total = sum(1 for t, _ in seen if t >= start)
    bad = sum(1 for t, ok in seen if t >= start and not ok)
    assert w.counts(now, window) == (total, bad)


def test_error_window_long_gap_and_bounds() -> None:
    w = ErrorWindow(10, 11)
    w.record(0, False, 5)
    w.record(10_000, True, 3)  # a gap far longer than the ring
    assert w.counts(10_000, 50) == (3, 0)
    assert w.counts(10_000, 100) == (3, 0)
    with pytest.raises(ValueError):
        w.counts(10_000, 101)
    with pytest.raises(ValueError):
        ErrorWindow(0, 10)
    with pytest.raises(ValueError, match="now_ns"):
        w.record(-1, True)
    with pytest.raises(ValueError, match="now_ns"):
        w.counts(-1, 10)


def test_token_bucket_core() -> None:
    b = TokenBucket(1000.0, 10.0, 0)
    assert b.try_acquire(0, 10.0)
    assert b.wait_ns(0, 1.0) == 1_000_000
    assert not b.try_acquire(999_999, 1.0)
    assert b.try_acquire(1_000_000, 1.0)
    assert not b.try_acquire(10**9, -1.0)  # a negative request never mints tokens
    assert b.tokens(10**9) == pytest.approx(10.0)
    assert b.try_acquire(10**9 - 5, 1.0)  # time going backwards refills nothing
    b.put_back(10**9, 5.0)
    assert b.tokens(10**9) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1.0, 0)


def test_slots_transitions() -> None:
    s = Slots(2, 1)
    assert s.enter_or_queue() == 1 and s.enter_or_queue() == 1
    assert s.enter_or_queue() == 0  # queued
    assert s.enter_or_queue() == -1  # queue full
    assert not s.try_enter_fast()  # nobody barges past a waiter
    assert s.exit(1) is True  # kept for the waiter
    s.handover()
    assert (s.inflight, s.queued, s.handovers) == (2, 0, 1)
    assert s.exit(0) is False and s.exit(1) is False
    assert (s.inflight, s.successes, s.failures, s.rejected) == (0, 2, 1, 1)
    with pytest.raises(AssertionError):
        s.exit(1)
