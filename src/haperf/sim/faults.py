"""Fault schedules: which faults one seed injects, and when.

Owns FAULT_KINDS, parse_fault_kinds and make_plan. A plan is drawn from the seed's "faults"
stream only, so the same (seed, kinds, nodes, duration) always gives the same plan. Kinds:

- drop, duplicate, reorder, corrupt: per-frame probabilities of the network (drawn per seed;
  a corrupted frame has one bit flipped and must be rejected by the codec's checksum);
- partition: symmetric cuts that split the cluster into two sides for a while;
- asymmetric: one-way cuts (A's frames do not reach B, B's still reach A);
- crash: a node stops, loses its unsynced writes and restarts later;
- torn: a crash may keep a prefix of the unsynced writes and tear the last one;
- drift: each node's clock runs up to DRIFT_PPM_FAULT parts per million fast or slow;
- membership: the client asks the leader to remove a voter, and later to add it back (Raft
  thesis 4.1, one voter at a time); with it, the liveness phase heals every node and the client
  first restores the full membership.

Invariants: every fault event falls inside the safety phase [0, safety_ns); each cut is healed
by a later event (cuts may overlap; the network counts them); every crash has its restart
(which may fall after the safety phase); at most FAULT_EVENTS_MAX events per kind.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from haperf.errors import ConfigError
from haperf.sim.network import MS, NetworkConfig, one_way_cut, symmetric_cut

FAULT_KINDS = (
    "drop",
    "duplicate",
    "reorder",
    "corrupt",
    "partition",
    "asymmetric",
    "crash",
    "torn",
    "drift",
    "membership",
)
FAULT_EVENTS_MAX = 4
DRIFT_PPM_FAULT = 20_000  # 2 %
DROP_P_MAX = 0.10
DUPLICATE_P_MAX = 0.05
REORDER_P_MAX = 0.20
CORRUPT_P_MAX = 0.01
CUT_NS_MIN = 50 * MS
CUT_NS_MAX = 1_000 * MS
DOWN_NS_MIN = 20 * MS
DOWN_NS_MAX = 800 * MS

# Fault event kinds (what the runner executes).
CRASH = "crash"
RESTART = "restart"
CUT = "cut"
HEAL = "heal"
REMOVE = "remove"
ADD = "add"


def parse_fault_kinds(text: str) -> tuple[str, ...]:
    """'all', 'none', or a comma-separated list of FAULT_KINDS; ConfigError otherwise."""
    text = text.strip()
    if text == "all":
        return FAULT_KINDS
    if text in ("none", ""):
        return ()
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for k in kinds:
        if k not in FAULT_KINDS:
            raise ConfigError(
                f"unknown fault kind {k!r}; choose from {', '.join(FAULT_KINDS)}, 'all' or 'none'"
            )
    return tuple(k for k in FAULT_KINDS if k in kinds)


@dataclass(frozen=True, slots=True)
class FaultEvent:
    time_ns: int
    kind: str
    node: int = 0
    links: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class FaultPlan:
    network: NetworkConfig
    drift_ppm: tuple[int, ...]
    torn: bool
    events: tuple[FaultEvent, ...]

    def describe(self) -> str:
        n = self.network
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        parts = [
            f"drop={n.drop_p:.3f}",
            f"dup={n.duplicate_p:.3f}",
            f"reorder={n.reorder_p:.3f}",
            f"corrupt={n.corrupt_p:.4f}",
            f"torn={'yes' if self.torn else 'no'}",
            "drift_ppm=" + "/".join(str(d) for d in self.drift_ppm),
        ]
        parts += [f"{k}={v}" for k, v in counts.items()]
        return " ".join(parts)


def _split(rng: random.Random, nodes: list[int]) -> tuple[list[int], list[int]]:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    k = rng.randint(1, len(shuffled) - 1)
    return shuffled[:k], shuffled[k:]


def make_plan(
    rng: random.Random,
    kinds: Iterable[str],
    nodes: tuple[int, ...],
    safety_ns: int,
    network: NetworkConfig,
) -> FaultPlan:
    """Draw one seed's faults. `network` is the base config the drawn probabilities go into."""
    kinds = tuple(kinds)
    ids = list(nodes)
    net = replace(
        network,
        drop_p=rng.uniform(0.0, DROP_P_MAX) if "drop" in kinds else 0.0,
        duplicate_p=rng.uniform(0.0, DUPLICATE_P_MAX) if "duplicate" in kinds else 0.0,
        reorder_p=rng.uniform(0.0, REORDER_P_MAX) if "reorder" in kinds else 0.0,
        corrupt_p=rng.uniform(0.0, CORRUPT_P_MAX) if "corrupt" in kinds else 0.0,
    )
    drift = tuple(
        rng.randint(-DRIFT_PPM_FAULT, DRIFT_PPM_FAULT) if "drift" in kinds else 0 for _ in ids
    )
    events: list[FaultEvent] = []
    if len(ids) > 1 and safety_ns > 0:
        if "partition" in kinds:
            for _ in range(rng.randint(0, FAULT_EVENTS_MAX)):
                start = rng.randrange(safety_ns)
                side_a, side_b = _split(rng, ids)
                links = tuple(symmetric_cut(side_a, side_b))
                events.append(FaultEvent(start, CUT, 0, links))
                end = min(start + rng.randint(CUT_NS_MIN, CUT_NS_MAX), safety_ns - 1)
                events.append(FaultEvent(end, HEAL, 0, links))
        if "asymmetric" in kinds:
            for _ in range(rng.randint(0, FAULT_EVENTS_MAX)):
                start = rng.randrange(safety_ns)
                senders, receivers = _split(rng, ids)
                links = tuple(one_way_cut(senders, receivers))
                events.append(FaultEvent(start, CUT, 0, links))
                end = min(start + rng.randint(CUT_NS_MIN, CUT_NS_MAX), safety_ns - 1)
                events.append(FaultEvent(end, HEAL, 0, links))
    if "crash" in kinds and safety_ns > 0:
        for _ in range(rng.randint(0, FAULT_EVENTS_MAX)):
            start = rng.randrange(safety_ns)
            node = rng.choice(ids)
            events.append(FaultEvent(start, CRASH, node))
            events.append(FaultEvent(start + rng.randint(DOWN_NS_MIN, DOWN_NS_MAX), RESTART, node))
    if "membership" in kinds and len(ids) > 1 and safety_ns > 0:
        for _ in range(rng.randint(0, FAULT_EVENTS_MAX // 2)):
            start = rng.randrange(safety_ns)
            node = rng.choice(ids)
            events.append(FaultEvent(start, REMOVE, node))
            events.append(FaultEvent(start + rng.randint(CUT_NS_MIN, CUT_NS_MAX), ADD, node))
    events.sort(key=lambda e: e.time_ns)  # stable: equal times keep the draw order
    return FaultPlan(net, drift, "torn" in kinds, tuple(events))
