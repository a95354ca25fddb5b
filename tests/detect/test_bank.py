"""DetectorBank: equivalence with single detectors, membership, vectorised calls, scale.

Equivalence is exact for the scalar paths (phi, phi_many) because both use haperf_phi.h;
phi_all uses numpy's vectorised exp/log1p and agrees within a few ulps.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native.phi import PHI_VECTOR_MIN
from haperf.detect import ALIVE, FAILED, SUSPECT, DetectorBank, PhiAccrualDetector
from haperf.errors import ConfigError, DetectorInputError, UnknownNodeError

MS = 1_000_000
S = 1_000_000_000

PARAMS = st.fixed_dictionaries(
    {
        "window_size": st.integers(1, 12),
        "distribution": st.sampled_from(["normal", "exponential", "hybrid"]),
        "min_std_deviation_ns": st.integers(1, 200 * MS),
        "acceptable_heartbeat_pause_ns": st.integers(0, 2 * S),
        "first_heartbeat_estimate_ns": st.integers(1, 3 * S),
    }
)


@given(
    params=PARAMS,
    events=st.lists(
        st.tuples(st.integers(0, 3), st.integers(-S, 3 * S)), min_size=1, max_size=80
    ),
    probe=st.integers(0, 30 * S),
)
def test_bank_rows_equal_single_detectors(
    params: dict[str, object], events: list[tuple[int, int]], probe: int
) -> None:
    bank = DetectorBank(capacity=2, **params)  # type: ignore[arg-type]
    ids = bank.add_nodes(4)
    singles = [PhiAccrualDetector(**params) for _ in range(4)]  # type: ignore[arg-type]
    clocks = [0, 0, 0, 0]
    nodes, times = [], []
    for node, step in events:
        clocks[node] += step
        nodes.append(node)
        times.append(clocks[node])
    expected_phi_at_arrival = []
    for node, t in zip(nodes, times, strict=True):
        expected_phi_at_arrival.append(singles[node].phi(t))
        singles[node].heartbeat(t)
    phi_out = np.empty(len(nodes))
    accepted = bank.heartbeat_many(
        ids[np.array(nodes)], np.array(times, dtype=np.int64), phi_out
    )
    assert accepted == sum(s.heartbeats for s in singles)
    assert bank.ignored_backwards == sum(s.ignored_backwards for s in singles)
    assert phi_out.tolist() == expected_phi_at_arrival
    now = max(times) + probe
    scalar = [bank.phi(int(i), now) for i in ids]
    assert scalar == [s.phi(now) for s in singles]
    assert bank.phi_many(ids, np.full(4, now, dtype=np.int64)).tolist() == scalar
    np.testing.assert_allclose(bank.phi_all(now), scalar, rtol=1e-12, atol=1e-14)
    assert bank.phi_all(now).tolist() == scalar  # small banks: the scalar path, bit-identical
    for i, s in zip(ids, singles, strict=True):
        mean, sd, count, last = bank.node_stats(int(i))
        assert (mean, sd, count, last) == (
            s.mean_ns,
            s.std_deviation_ns,
            s.sample_count,
            s.last_heartbeat_ns,
        )


def test_vectorised_phi_all_matches_scalar_phi() -> None:
    rng = np.random.default_rng(9)
    for distribution in ("normal", "hybrid", "exponential"):
        bank = DetectorBank(distribution=distribution, min_std_deviation_ns=5 * MS)
        ids = bank.add_nodes(3 * PHI_VECTOR_MIN)
        t = rng.integers(0, S, len(ids))
        for _ in range(20):
            t += rng.normal(S, 40 * MS, len(ids)).astype(np.int64)
            bank.heartbeat_many(ids, t)
        bank.remove_node(5)
        for dt in (0, 500 * MS, S, 2 * S, 30 * S, 10**6 * S):
            now = int(t.max()) + dt
            scalar = bank.phi_many(ids, np.full(len(ids), now, dtype=np.int64))
            scalar[5] = 0.0
            np.testing.assert_allclose(bank.phi_all(now), scalar, rtol=1e-12, atol=1e-14)


def test_single_heartbeat_calls_equal_heartbeat_many() -> None:
    a, b = DetectorBank(), DetectorBank()
    ids_a, ids_b = a.add_nodes(3), b.add_nodes(3)
    rng = np.random.default_rng(7)
    nodes = rng.integers(0, 3, 300)
    times = np.cumsum(rng.integers(0, S, 300))
    for n, t in zip(nodes.tolist(), times.tolist(), strict=True):
        a.heartbeat(int(ids_a[n]), t)
    b.heartbeat_many(ids_b[nodes], times.astype(np.int64))
    assert a.phi_all(int(times[-1]) + S).tolist() == b.phi_all(int(times[-1]) + S).tolist()


def test_add_remove_and_id_reuse() -> None:
    bank = DetectorBank(capacity=2)
    a, b, c = bank.add_node(), bank.add_node(), bank.add_node()  # grows past capacity
    assert (a, b, c) == (0, 1, 2) and len(bank) == 3 and bank.capacity >= 3
    bank.heartbeat(b, 0)
    bank.heartbeat(b, S)
    bank.remove_node(b)
    assert b not in bank and len(bank) == 2
    with pytest.raises(UnknownNodeError):
        bank.heartbeat(b, 2 * S)
    with pytest.raises(UnknownNodeError):
        bank.remove_node(b)
    with pytest.raises(UnknownNodeError):
        bank.phi(99, 0)
    assert bank.phi_all(100 * S)[b] == 0.0
    d = bank.add_node()
    assert d == b  # reused, and starts fresh
    assert bank.node_stats(d) == (1e9, 2.5e8, 2, None)


def test_unknown_ids_in_a_batch_are_counted_not_raised() -> None:
    bank = DetectorBank()
    ids = bank.add_nodes(2)
    nodes = np.array([ids[0], 5, -1, ids[1]], dtype=np.int64)
    times = np.array([0, 0, 0, 0], dtype=np.int64)
    assert bank.heartbeat_many(nodes, times) == 2
    assert bank.ignored_unknown == 2
    with pytest.raises(DetectorInputError):
        bank.heartbeat_many(nodes, times[:3])
    with pytest.raises(ValueError, match="dtype"):
        bank.heartbeat_many(nodes, np.array([0.0, np.nan, 0, 0]))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bank.phi_all(float("nan"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bank.heartbeat(1.5, 0)  # type: ignore[arg-type]  # a float id is not truncated to 1
    with pytest.raises(TypeError):
        bank.phi(0, float("nan"))  # type: ignore[arg-type]
    assert bank.heartbeat(np.int64(ids[1]), np.int64(5))  # numpy integers are fine


def test_suspects_failed_and_poll() -> None:
    bank = DetectorBank(threshold=3.0, failed_threshold=10.0, min_std_deviation_ns=50 * MS)
    ids = bank.add_nodes(3)
    for k in range(20):
        bank.heartbeat_many(ids, np.full(3, k * S, dtype=np.int64))
    last = 19 * S
    bank.heartbeat(int(ids[1]), last + 1200 * MS)  # node 1 slightly later
    bank.heartbeat(int(ids[2]), last + 5000 * MS)  # node 2 much later
    now = last + 5000 * MS
    phis = bank.phi_all(now)
    assert phis[0] >= 10.0 and phis[1] >= 10.0 and phis[2] < 3.0
    assert bank.failed(now).tolist() == [0, 1]
    mid = last + 1300 * MS
    sus = bank.suspects(mid).tolist()
    assert sus == [int(i) for i in ids if 3.0 <= bank.phi(int(i), mid) < 10.0]
    ids_c, old, new = bank.poll(now)
    assert ids_c.tolist() == [0, 1]
    assert old.tolist() == [ALIVE, ALIVE] and new.tolist() == [FAILED, FAILED]
    assert bank.poll(now)[0].tolist() == []  # reported once
    assert bank.states().tolist()[0] == FAILED
    bank.heartbeat(0, now)
    ids_c, old, new = bank.poll(now)
    assert (ids_c.tolist(), old.tolist(), new.tolist()) == ([0], [FAILED], [ALIVE])
    bank.reset_node(1)  # history forgotten, recorded state (FAILED) kept until the next poll
    assert bank.node_stats(1) == (1e9, 2.5e8, 2, None)
    assert bank.states().tolist()[1] == FAILED
    ids_c, old, new = bank.poll(now)
    assert (ids_c.tolist(), old.tolist(), new.tolist()) == ([1], [FAILED], [ALIVE])
    assert SUSPECT == 1


@pytest.mark.parametrize("nodes", [PHI_VECTOR_MIN - 1, 600])  # scalar and vectorised paths
def test_phi_all_is_monotone_in_time_per_node(nodes: int) -> None:
    rng = np.random.default_rng(3)
    for distribution in ("normal", "hybrid", "exponential"):
        bank = DetectorBank(distribution=distribution, min_std_deviation_ns=10 * MS)
        ids = bank.add_nodes(nodes)
        t = np.zeros(nodes, dtype=np.int64)
        for _ in range(30):
            t += rng.normal(S, 30 * MS, nodes).astype(np.int64)
            bank.heartbeat_many(ids, t)
        prev = bank.phi_all(int(t.max()))
        for k in range(1, 400):
            cur = bank.phi_all(int(t.max()) + k * 7 * MS)
            assert np.all(cur >= prev) and np.all(np.isfinite(cur)) and np.all(cur >= 0)
            prev = cur


def test_hundred_thousand_nodes() -> None:
    n = 100_000
    bank = DetectorBank(capacity=n, window_size=16)
    ids = bank.add_nodes(n)
    assert len(bank) == n
    rng = np.random.default_rng(1)
    phase = rng.integers(0, S, n)
    for r in range(20):
        bank.heartbeat_many(ids, phase + r * S)
    dead = ids[:100]
    alive = ids[100:]
    now = 19 * S + 10 * S
    bank.heartbeat_many(alive, np.full(len(alive), now - S // 2, dtype=np.int64))
    assert set(bank.failed(now).tolist()) == set(dead.tolist())
    out = np.empty(n)
    phis = bank.phi_all(now, out)
    assert phis.base is out or phis is out or np.shares_memory(phis, out)
    assert np.all(phis[dead] >= 16.0) and np.all(phis[alive] < 8.0)


def test_bank_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        DetectorBank(capacity=0)
    with pytest.raises(ConfigError):
        DetectorBank(distribution="pareto")
    with pytest.raises(ConfigError):
        DetectorBank(threshold=float("nan"))
    with pytest.raises(ConfigError):
        DetectorBank().add_nodes(-1)
