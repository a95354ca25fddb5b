"""Unit tests of the simulator's parts: RNG streams, clocks, scheduler, network, disk, faults.

Everything runs in virtual time; no test reads the wall clock.
"""

import random

import pytest

from haperf._native import codec
from haperf._native.raftmsg import MSG_APP, Entry, Message, SnapshotMeta
from haperf.errors import ConfigError
from haperf.sim.clock import NodeClock, SimClock
from haperf.sim.disk import SimDisk
from haperf.sim.faults import (
    ADD,
    CRASH,
    CUT,
    FAULT_KINDS,
    HEAL,
    REMOVE,
    RESTART,
    make_plan,
    parse_fault_kinds,
)
from haperf.sim.network import MS, Network, NetworkConfig, one_way_cut, symmetric_cut
from haperf.sim.rng import SimRng, derive_seed
from haperf.sim.scheduler import Scheduler


def test_rng_streams_depend_only_on_seed_and_name() -> None:
    a, b = SimRng(7), SimRng(7)
    assert [a.stream("net").random() for _ in range(3)] == [
        b.stream("net").random() for _ in range(3)
    ]
    assert a.stream("net").random() != a.stream("disk").random()
    assert SimRng(7).stream("net").random() != SimRng(8).stream("net").random()
    # A pinned value: the derivation must not change between versions, or old seeds replay
    # differently.
    assert derive_seed(0, "faults") == derive_seed(0, "faults") and derive_seed(
        0, "a"
    ) != derive_seed(0, "b")
    with pytest.raises(ValueError, match="seed must be in"):
        SimRng(-1)


def test_node_clock_drift() -> None:
    base = SimClock()
    fast, slow = NodeClock(base, 10_000), NodeClock(base, -10_000)
    base.advance_to(1_000_000_000)
    assert fast.monotonic_ns() == 1_010_000_000
    assert slow.monotonic_ns() == 990_000_000
    # A fast clock reaches a local interval sooner in global time.
    assert fast.global_interval_ns(10 * MS) < 10 * MS < slow.global_interval_ns(10 * MS)
    assert NodeClock(base).global_interval_ns(10 * MS) == 10 * MS
    with pytest.raises(AssertionError, match="backwards"):
        base.advance_to(5)
    with pytest.raises(ValueError, match="drift_ppm"):
        NodeClock(base, 2_000_000)


def test_scheduler_orders_by_time_then_insertion() -> None:
    clock = SimClock()
    s = Scheduler(clock)
    s.at(20, 1, 1)
    s.at(10, 1, 2)
    s.at(20, 1, 3)
    s.at(10, 1, 4)
    order = [s.pop()[3] for _ in range(4)]
    assert order == [2, 4, 1, 3]
    assert clock.now_ns == 20
    with pytest.raises(AssertionError, match="past"):
        s.at(5, 1)
    bounded = Scheduler(SimClock(), events_pending_max=2)
    bounded.at(1, 1)
    bounded.at(2, 1)
    with pytest.raises(AssertionError, match="pending"):
        bounded.at(3, 1)


def _msg(to: int, index: int) -> Message:
    return Message(
        type=MSG_APP, to=to, frm=1, term=1, index=index, entries=[Entry(1, index + 1, b"x")]
    )


def _net(**kw: object) -> Network:
    return Network(NetworkConfig(**kw), random.Random(1), codec.encode, codec.FrameReader)  # type: ignore[arg-type]


def test_network_delivers_encoded_frames_fifo_without_reorder() -> None:
    net = _net(latency_tail_mean_ns=5 * MS)
    out = net.send(0, 1, [_msg(2, i) for i in range(50)])
    assert len(out) == 50
    times = [t for t, _, _, _ in out]
    assert times == sorted(times), "a link without reordering must be FIFO"
    assert all(isinstance(frame, bytes) for _, _, _, frame in out)
    got = [net.receive(src, dst, frame) for _, src, dst, frame in out]
    assert [m[0].index for m in got if m] == list(range(50))
    assert net.inflight == 0 and net.stats.delivered == 50


def test_network_drop_duplicate_reorder_rates() -> None:
    net = _net(drop_p=0.2, duplicate_p=0.1, reorder_p=0.3)
    out = net.send(0, 1, [_msg(2, i) for i in range(2000)])
    st = net.stats
    assert 300 < st.dropped < 500
    assert 100 < st.duplicated < 220
    assert len(out) == 2000 - st.dropped + st.duplicated
    times = [t for t, _, _, _ in out]
    assert times != sorted(times), "reordering must let frames overtake"


def test_network_partitions_symmetric_and_one_way() -> None:
    net = _net()
    links = symmetric_cut([1], [2, 3])
    assert sorted(links) == [(1, 2), (1, 3), (2, 1), (3, 1)]
    net.cut(links)
    net.cut(one_way_cut([2], [3]))
    assert net.is_cut(1, 2) and net.is_cut(2, 1) and net.is_cut(2, 3) and not net.is_cut(3, 2)
    ((_t, src, dst, frame),) = net.send(0, 1, [_msg(2, 0)])
    assert net.receive(src, dst, frame) is None and net.stats.cut == 1
    net.cut([(1, 2)])  # overlapping cuts: healing one leaves the other
    net.uncut(links)
    assert net.is_cut(1, 2) and not net.is_cut(2, 1)
    net.heal([(1, 2)])
    assert not net.is_cut(1, 2)
    with pytest.raises(AssertionError, match="not cut"):
        net.uncut([(3, 1)])


def test_network_bounds_inflight() -> None:
    net = _net(inflight_max=5)
    out = net.send(0, 1, [_msg(2, i) for i in range(8)])
    assert len(out) == 5 and net.stats.overflow == 3


def _entries(first: int, n: int, term: int = 1, tag: bytes = b"e") -> list[Entry]:
    return [Entry(term, i, tag + str(i).encode()) for i in range(first, first + n)]


def test_disk_crash_loses_unsynced_writes() -> None:
    d = SimDisk()
    d.append(_entries(1, 3))
    d.sync()
    d.append(_entries(4, 2))
    d.set_hard_state(("hs", 2))
    assert d.volatile.last_index == 5 and d.unsynced_writes == 2
    assert d.crash() == 2
    assert d.volatile.last_index == 3 and d.volatile.hard_state is None
    assert d.durable.last_index == 3


def test_disk_append_truncates_conflicting_suffix() -> None:
    d = SimDisk()
    d.append(_entries(1, 5))
    d.append(_entries(3, 1, term=2, tag=b"new"))
    assert d.volatile.last_index == 3 and d.volatile.term_at(3) == 2 and d.volatile.term_at(2) == 1
    with pytest.raises(AssertionError, match="hole"):
        d.append(_entries(9, 1))
    d.sync()
    assert d.durable.last_index == 3


def test_disk_torn_crash_keeps_a_prefix_of_a_state_it_passed_through() -> None:
    kept = set()
    for seed in range(200):
        d = SimDisk()
        d.append(_entries(1, 2))
        d.sync()
        d.append(_entries(3, 4))
        d.set_hard_state(("hs", 9))
        d.crash(random.Random(seed), keep_prefix=True)
        v = d.volatile
        # Entries stay contiguous; the hard state only survives with the whole append.
        assert [e.index for e in v.entries] == list(range(1, v.last_index + 1))
        assert v.hard_state is None or v.last_index == 6
        kept.add(v.last_index)
    assert kept == {2, 3, 4, 5, 6}, "every prefix, torn or whole, happens for some seed"


def test_disk_snapshot_keeps_agreeing_suffix() -> None:
    d = SimDisk()
    d.append(_entries(1, 6))
    d.install_snapshot(SnapshotMeta(4, 1), b"state")
    assert d.volatile.snapshot_index == 4 and d.volatile.last_index == 6
    d.install_snapshot(SnapshotMeta(8, 3), b"state2")
    assert d.volatile.snapshot_index == 8 and d.volatile.last_index == 8
    assert d.volatile.term_at(8) == 3 and d.volatile.entry(8) is None


def test_fault_kinds_parse() -> None:
    assert parse_fault_kinds("all") == FAULT_KINDS
    assert parse_fault_kinds("none") == ()
    assert parse_fault_kinds("crash,drop") == ("drop", "crash")
    with pytest.raises(ConfigError, match="unknown fault kind 'fire'"):
        parse_fault_kinds("drop,fire")


def test_fault_plans_are_seeded_and_well_formed() -> None:
    nodes = (1, 2, 3, 4, 5)
    safety = 2_000 * MS
    plans = [
        make_plan(random.Random(s), FAULT_KINDS, nodes, safety, NetworkConfig()) for s in range(50)
    ]
    again = make_plan(random.Random(3), FAULT_KINDS, nodes, safety, NetworkConfig())
    assert plans[3] == again
    kinds_seen = set()
    for plan in plans:
        cuts: dict[tuple[tuple[int, int], ...], int] = {}
        for e in plan.events:
            kinds_seen.add(e.kind)
            if e.kind in (CUT, HEAL):
                assert 0 <= e.time_ns < safety
                cuts[e.links] = cuts.get(e.links, 0) + (1 if e.kind == CUT else -1)
            if e.kind == CRASH:
                assert 0 <= e.time_ns < safety
        assert all(v == 0 for v in cuts.values()), "every cut is healed"
        assert sum(e.kind == REMOVE for e in plan.events) == sum(e.kind == ADD for e in plan.events)
        assert sum(e.kind == CRASH for e in plan.events) == sum(
            e.kind == RESTART for e in plan.events
        )
    assert kinds_seen == {CUT, HEAL, CRASH, RESTART, REMOVE, ADD}
    quiet = make_plan(random.Random(1), (), nodes, safety, NetworkConfig())
    assert quiet.events == () and quiet.network.drop_p == 0 and set(quiet.drift_ppm) == {0}


def test_network_corrupted_frames_are_rejected_by_the_codec_and_the_link_recovers() -> None:
    net = _net(corrupt_p=1.0)
    out = net.send(0, 1, [_msg(2, i) for i in range(200)])
    assert net.stats.corrupted == 200
    assert all(net.receive(src, dst, frame) is None for _, src, dst, frame in out)
    # A flipped checksum or payload fails the CRC; a flipped length leaves bytes pending:
    # either way nothing corrupted is ever decoded and the link's reader is replaced.
    assert net.stats.delivered == 0 and net.stats.rejected == 200
    clean = _net()
    ((_t, src, dst, frame),) = clean.send(0, 1, [_msg(2, 7)])
    net.inflight += 1
    got = net.receive(src, dst, frame)
    assert got is not None and got[0].index == 7


def test_role_constant_matches_the_core() -> None:
    from haperf._native import raft
    from haperf.sim.node import ROLE_LEADER

    assert raft.LEADER == ROLE_LEADER
