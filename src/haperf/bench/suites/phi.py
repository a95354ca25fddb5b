"""Phi-accrual benchmarks: heartbeat, phi, adaptive threshold update, and the bank per node.

Owns the phi group. Single-detector rows are divided by floor.py_call and compared with a
plain-Python implementation of the same formulas (deque window, integer running sums, Akka's
logistic phi), the cost of doing this without haperf. phi.heartbeat_py_wrapper shows what a
Python facade class around the native detector would cost (the reason haperf.detect re-exports
the native class unchanged). Bank rows report ns per node (ops_per_call = node count) at 1k,
10k and 100k nodes, beside a numpy-vectorised implementation of the same formulas, and are
divided by phi.array_pass_*: one numpy pass copying a float64 per node, the cheapest vectorised
per-node work (a phi_all at 5x of it costs five such passes).

State of the rows: the detector holds 200 intervals of ~1 s with 50 ms jitter; phi.heartbeat
repeats the last arrival time, so every call is a zero interval going through the full window
update (push, evict, exact sums, mean and sd); phi is evaluated 1.2 s after the last heartbeat
(the logistic's transcendental path, not an early return); bank nodes' last heartbeats are
spread over one interval, as in a running cluster, and heartbeat_many feeds every node once per
call in id order.
"""

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from haperf._native.phi import AdaptiveThreshold, DetectorBank, PhiAccrualDetector
from haperf.bench.registry import Benchmark, Op, Peer, register_all

S = 1_000_000_000
SEED = 20261122
BANK_SIZES = (1_000, 10_000, 100_000)
LOG10E = 1.0 / math.log(10.0)


def _times(n: int) -> list[int]:
    rng = np.random.default_rng(SEED)
    return [int(x) for x in np.cumsum(rng.normal(S, 0.05 * S, n).astype(np.int64))]


class PlainPhi:
    """The same detector in plain Python: the peer a user would otherwise write."""

    def __init__(self, window_size: int = 200, min_sd: float = 1e8) -> None:
        self.window: deque[int] = deque(maxlen=window_size)
        self.sum = 0
        self.sum_sq = 0
        self.min_sd = min_sd
        self.last: int | None = None
        self.mean = 0.0
        self.sd = 0.0

    def heartbeat(self, now: int) -> bool:
        last = self.last
        if last is not None:
            if now < last:
                return False
            x = now - last
            window = self.window
            if len(window) == window.maxlen:
                old = window[0]
                self.sum -= old
                self.sum_sq -= old * old
            window.append(x)
            self.sum += x
            self.sum_sq += x * x
            n = len(window)
            self.mean = self.sum / n
            self.sd = math.sqrt((n * self.sum_sq - self.sum * self.sum) / (n * n))
        self.last = now
        return True

    def phi(self, now: int) -> float:
        if self.last is None:
            return 0.0
        y = (max(0, now - self.last) - self.mean) / max(self.sd, self.min_sd)
        z = y * (1.5976 + 0.070566 * y * y)
        if z > 0:
            return (z + math.log1p(math.exp(-z))) * LOG10E
        return math.log1p(math.exp(z)) * LOG10E


class PlainAdaptive:
    """AdaptiveThreshold's histogram quantile in plain Python."""

    def __init__(self, rate: float, bins_per_phi: int = 32, phi_max: int = 32) -> None:
        self.rate = rate
        self.k = bins_per_phi
        self.bins = bins_per_phi * phi_max
        self.counts = [0] * self.bins
        self.total = 0
        self.above = 0
        self.index = self.bins

    def update(self, phi: float) -> float:
        b = min(int(phi * self.k), self.bins - 1)
        self.counts[b] += 1
        self.total += 1
        if b >= self.index:
            self.above += 1
        allowed = self.rate * self.total
        while self.above > allowed and self.index < self.bins:
            self.above -= self.counts[self.index]
            self.index += 1
        while self.index > 0 and self.above + self.counts[self.index - 1] <= allowed:
            self.index -= 1
            self.above += self.counts[self.index]
        return self.index / self.k


def _warm_detector() -> PhiAccrualDetector:
    d = PhiAccrualDetector()
    d.heartbeat_array(np.array(_times(201), dtype=np.int64))
    return d


def _warm_plain() -> PlainPhi:
    p = PlainPhi()
    for t in _times(201):
        p.heartbeat(t)
    return p


def _heartbeat() -> Op:
    d = _warm_detector()
    last = d.last_heartbeat_ns
    assert last is not None
    return Op(d.heartbeat, (last,))


def _heartbeat_plain() -> Op:
    p = _warm_plain()
    assert p.last is not None
    return Op(p.heartbeat, (p.last,))


class _Wrapper:
    """A thin Python facade around the native detector (what haperf.detect avoids)."""

    def __init__(self) -> None:
        self._d = _warm_detector()

    def heartbeat(self, now_ns: int) -> bool:
        return self._d.heartbeat(now_ns)


def _heartbeat_wrapped() -> Op:
    w = _Wrapper()
    last = w._d.last_heartbeat_ns
    assert last is not None
    return Op(w.heartbeat, (last,))


def _phi() -> Op:
    d = _warm_detector()
    last = d.last_heartbeat_ns
    assert last is not None
    return Op(d.phi, (last + 1_200_000_000,))


def _phi_plain() -> Op:
    p = _warm_plain()
    assert p.last is not None
    return Op(p.phi, (p.last + 1_200_000_000,))


def _adaptive_phis() -> list[float]:
    rng = np.random.default_rng(SEED)
    return [float(x) for x in rng.exponential(0.7, 4096)]


def _adaptive() -> Op:
    a = AdaptiveThreshold(0.001)
    for p in _adaptive_phis():
        a.update(p)
    return Op(a.update, (0.9,))


def _adaptive_plain() -> Op:
    a = PlainAdaptive(0.001)
    for p in _adaptive_phis():
        a.update(p)
    return Op(a.update, (0.9,))


def _bank(n: int) -> tuple[DetectorBank, np.ndarray, np.ndarray, int]:
    bank = DetectorBank(capacity=n)
    ids = bank.add_nodes(n)
    rng = np.random.default_rng(SEED)
    phase = rng.integers(0, S, n)
    for r in range(30):
        times = phase + r * S + rng.normal(0, 0.05 * S, n).astype(np.int64)
        bank.heartbeat_many(ids, times.astype(np.int64))
    now = 30 * S
    return bank, ids, phase + 29 * S, now


def _bank_heartbeat_many(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        bank, ids, last, _ = _bank(n)
        times = np.ascontiguousarray(last + S, dtype=np.int64)
        return Op(bank.heartbeat_many, (ids, times), ops_per_call=n)

    return setup


def _bank_heartbeat_many_shuffled(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        bank, ids, last, _ = _bank(n)
        order = np.random.default_rng(SEED).permutation(n)
        times = np.ascontiguousarray((last + S)[order], dtype=np.int64)
        return Op(bank.heartbeat_many, (np.ascontiguousarray(ids[order]), times), ops_per_call=n)

    return setup


def _bank_phi_all(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        bank, _, _, now = _bank(n)
        out = np.empty(n)
        return Op(bank.phi_all, (now, out), ops_per_call=n)

    return setup


def _numpy_phi_all(n: int) -> Callable[[], Op]:
    """The same normal-model phi over arrays with numpy (last, mean, sd per node)."""

    def setup() -> Op:
        bank, ids, _, now = _bank(n)
        stats = [bank.node_stats(int(i)) for i in ids]
        last = np.array([s[3] for s in stats], dtype=np.int64)
        mean = np.array([s[0] for s in stats])
        sd = np.maximum(np.array([s[1] for s in stats]), 1e8)

        def phi_all(now_ns: int, _unused: object) -> np.ndarray:
            y = (np.maximum(now_ns - last, 0) - mean) / sd
            z = y * (1.5976 + 0.070566 * y * y)
            result: np.ndarray = np.logaddexp(0.0, z) * LOG10E
            return result

        return Op(phi_all, (now, None), ops_per_call=n)

    return setup


def _numpy_heartbeat_many(n: int) -> Callable[[], Op]:
    """Window push and running-sum update with numpy fancy indexing (one heartbeat per node).

    Float64 running sums, as a numpy user would write it: faster than exact integer sums would
    be in numpy (object arrays), but they drift; haperf's are exact.
    """

    def setup() -> Op:
        window = 200
        ring = np.full((n, window), S, dtype=np.int64)
        head = np.zeros(n, dtype=np.int64)
        sums = ring.sum(axis=1).astype(np.float64)
        sum_sq = (ring.astype(np.float64) ** 2).sum(axis=1)
        last = np.zeros(n, dtype=np.int64)
        mean = np.zeros(n)
        sd = np.zeros(n)
        rows = np.arange(n)

        def heartbeat_many(nodes: np.ndarray, times: np.ndarray) -> None:
            x = times - last[nodes]
            slot = head[nodes]
            old = ring[nodes, slot]
            ring[nodes, slot] = x
            xf = x.astype(np.float64)
            of = old.astype(np.float64)
            sums[nodes] += xf - of
            sum_sq[nodes] += xf * xf - of * of
            head[nodes] = (slot + 1) % window
            last[nodes] = times
            m = sums[nodes] / window
            mean[nodes] = m
            sd[nodes] = np.sqrt(np.maximum(sum_sq[nodes] / window - m * m, 0.0))

        times = np.full(n, S, dtype=np.int64)
        return Op(heartbeat_many, (rows, times), ops_per_call=n)

    return setup


def _array_pass(n: int) -> Callable[[], Op]:
    """Floor for per-node rows: one vectorised pass reading and writing n float64 values."""

    def setup() -> Op:
        src = np.ones(n)
        dst = np.empty(n)
        return Op(np.copyto, (dst, src), ops_per_call=n)

    return setup


def _udp_feed() -> Op:
    """The receive path of one datagram, without the socket: length and magic checks, the
    HMAC-SHA256 tag, parsing and the replay check (the same datagram again: dropped as a
    replay after the tag was verified, so the cost is the accept path minus one bank update)."""
    from haperf.detect.udp import HeartbeatService, encode_heartbeat

    key = b"haperf-bench-key-0123456789abcdef"
    service = HeartbeatService(1, key, interval_ns=100_000_000)
    service.add_peer(2, ("127.0.0.1", 9), send=False)
    packet = encode_heartbeat(key, 2, 1, 1, 0)
    service.feed_datagram(packet)
    return Op(service.feed_datagram, (packet,))


def _label(n: int) -> str:
    return f"{n // 1000}k"


def _benchmarks() -> list[Benchmark]:
    rows = [
        Benchmark(
            "phi.heartbeat",
            "phi",
            "detector.heartbeat(now_ns): window push, exact sums, mean and sd",
            _heartbeat,
            peers=(Peer("plain_python", _heartbeat_plain, note="same formulas, plain Python"),),
        ),
        Benchmark(
            "phi.heartbeat_py_wrapper",
            "phi",
            "heartbeat through a one-method Python wrapper class (not used: shows its cost)",
            _heartbeat_wrapped,
        ),
        Benchmark(
            "phi.calculation",
            "phi",
            "detector.phi(now_ns), normal model, 1.2 s after the last heartbeat",
            _phi,
            peers=(Peer("plain_python", _phi_plain, note="same formulas, plain Python"),),
        ),
        Benchmark(
            "phi.adaptive_threshold",
            "phi",
            "AdaptiveThreshold.update(phi): histogram quantile, incremental boundary",
            _adaptive,
            peers=(Peer("plain_python", _adaptive_plain, note="same algorithm, plain Python"),),
        ),
    ]
    rows.append(
        Benchmark(
            "phi.udp_feed_datagram",
            "phi",
            "HeartbeatService.feed_datagram: verify HMAC tag, parse, replay check",
            _udp_feed,
        )
    )
    for n in BANK_SIZES:
        rows.append(
            Benchmark(
                f"phi.array_pass_{_label(n)}",
                "phi",
                f"floor: numpy.copyto of {n} float64 values, ns per value",
                _array_pass(n),
                floor=None,
                is_floor=True,
            )
        )
        rows.append(
            Benchmark(
                f"phi.bank_heartbeat_many_{_label(n)}",
                "phi",
                f"bank.heartbeat_many over {n} nodes, ns per heartbeat",
                _bank_heartbeat_many(n),
                floor=f"phi.array_pass_{_label(n)}",
                peers=(Peer("numpy", _numpy_heartbeat_many(n), note="numpy, float running sums"),),
            )
        )
        if n == BANK_SIZES[-1]:
            rows.append(
                Benchmark(
                    f"phi.bank_heartbeat_many_shuffled_{_label(n)}",
                    "phi",
                    f"bank.heartbeat_many over {n} nodes in random order (each row's ring slot "
                    "a cache miss), ns per heartbeat",
                    _bank_heartbeat_many_shuffled(n),
                    floor=f"phi.array_pass_{_label(n)}",
                )
            )
        rows.append(
            Benchmark(
                f"phi.bank_phi_all_{_label(n)}",
                "phi",
                f"bank.phi_all(now_ns) over {n} nodes, ns per node",
                _bank_phi_all(n),
                floor=f"phi.array_pass_{_label(n)}",
                peers=(Peer("numpy", _numpy_phi_all(n), note="numpy, same formula"),),
            )
        )
    return rows


register_all(_benchmarks())
