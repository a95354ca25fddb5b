"""The nemesis: a seeded schedule of real faults over a LocalCluster and a FaultProxy.

Owns NEMESIS_KINDS, `parse_kinds`, `make_schedule` (pure: the same seed, kinds, nodes and
duration always give the same schedule) and `Nemesis`, which executes a schedule against a
cluster control object (LocalCluster's kill/restart/pause/resume) and a FaultProxy, recording
every action into the history as `process: "nemesis"` records.

Kinds:
- kill: SIGKILL a minority of nodes (or the leader), restart them when the fault ends;
- pause: SIGSTOP a minority of nodes (or the leader), SIGCONT when the fault ends;
- partition: one of three shapes, drawn per fault: random halves (a minority side cut both
  ways from the rest), one-way (a node's outbound or inbound links cut), isolate the leader;
- delay: every link out of one node, or every link, delayed by 20-200 ms plus up to 100 ms of
  jitter (election timeouts are 150-300 ms, so this provokes elections and stale leaders);
- drop: every link loses whole connections with probability 5-30 % per accept and per chunk.

Invariants: kinds are drawn from a shuffled bag (every kind once per round), so a run with
room for len(kinds) faults applies every kind; faults do not overlap (each ends, and is undone,
before the next starts, with a quiet gap between); every fault ends by the end of the schedule;
at most FAULTS_MAX faults; "the leader" is resolved when the fault starts (and recorded) because
it is a runtime fact; `heal_all()` undoes everything still in force (resume paused, restart
killed, heal the proxy) and is safe to call at any time, including after a cancelled run.
"""

import asyncio
import random
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from haperf.chaos.proxy import FaultProxy
from haperf.errors import ConfigError, HaperfError

NEMESIS_KINDS = ("kill", "pause", "partition", "delay", "drop")
PARTITION_SHAPES = ("halves", "one-way", "isolate-leader")
FAULTS_MAX = 10_000
FAULT_NS_MIN = 1_000_000_000
FAULT_NS_MAX = 5_000_000_000
GAP_NS_MIN = 1_000_000_000
GAP_NS_MAX = 3_000_000_000
DELAY_NS_MIN = 20_000_000
DELAY_NS_MAX = 200_000_000
JITTER_NS_MAX = 100_000_000
DROP_P_MIN = 0.05
DROP_P_MAX = 0.30
LEADER = 0  # a target id meaning "whoever leads when the fault starts"


def parse_kinds(text: str) -> tuple[str, ...]:
    """'all', 'none', or a comma-separated subset of NEMESIS_KINDS; ConfigError otherwise."""
    text = text.strip()
    if text == "all":
        return NEMESIS_KINDS
    if text in ("", "none"):
        return ()
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for kind in kinds:
        if kind not in NEMESIS_KINDS:
            raise ConfigError(
                f"unknown nemesis kind {kind!r}; choose from {', '.join(NEMESIS_KINDS)}, "
                "'all' or 'none'"
            )
    return tuple(k for k in NEMESIS_KINDS if k in kinds)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: applied at `start_ns`, undone at `end_ns` (offsets from the start).

    `nodes` are the targets (LEADER = the leader at start time); for partitions `shape` says
    which one and `other` is the far side (halves) or empty; `direction` is "out" or "in" for a
    one-way partition (the node's sends are lost, or what it receives). Delay and drop faults
    apply to the links out of `nodes` (every link when `nodes` is empty).
    """

    start_ns: int
    end_ns: int
    kind: str
    nodes: tuple[int, ...] = ()
    shape: str = ""
    other: tuple[int, ...] = ()
    direction: str = ""
    delay_ns: int = 0
    jitter_ns: int = 0
    drop_p: float = 0.0

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nodes": ["leader" if n == LEADER else n for n in self.nodes]}
        if self.shape:
            out["shape"] = self.shape
        if self.other:
            out["other"] = list(self.other)
        if self.direction:
            out["direction"] = self.direction
        if self.kind == "delay":
            out["delay_ns"] = self.delay_ns
            out["jitter_ns"] = self.jitter_ns
        if self.kind == "drop":
            out["drop_p"] = self.drop_p
        return out


def make_schedule(
    seed: int,
    kinds: Sequence[str],
    nodes: Sequence[int],
    duration_ns: int,
    *,
    fault_ns_min: int = FAULT_NS_MIN,
    fault_ns_max: int = FAULT_NS_MAX,
    gap_ns_min: int = GAP_NS_MIN,
    gap_ns_max: int = GAP_NS_MAX,
) -> list[Fault]:
    """A deterministic, non-overlapping fault schedule inside [0, duration_ns)."""
    for kind in kinds:
        if kind not in NEMESIS_KINDS:
            raise ConfigError(f"unknown nemesis kind {kind!r}; choose from {NEMESIS_KINDS}")
    ids = sorted(set(nodes))
    if len(ids) < 1 or any(i <= 0 for i in ids):
        raise ConfigError(f"nodes must be positive ids, got {list(nodes)}")
    if not 0 < fault_ns_min <= fault_ns_max or not 0 <= gap_ns_min <= gap_ns_max:
        raise ConfigError("need 0 < fault_ns_min <= fault_ns_max and 0 <= gap_ns_min <= gap_ns_max")
    if duration_ns < 0:
        raise ConfigError(f"duration_ns must be >= 0, got {duration_ns}")
    rng = random.Random(f"haperf-nemesis/{seed}")
    minority = max(1, (len(ids) - 1) // 2)
    schedule: list[Fault] = []
    t = rng.randint(gap_ns_min, gap_ns_max)
    bag: list[str] = []
    while kinds and len(schedule) < FAULTS_MAX and t + fault_ns_min <= duration_ns:
        length = min(rng.randint(fault_ns_min, fault_ns_max), duration_ns - t)
        if not bag:  # every kind once per round, in a shuffled order: short runs see them all
            bag = list(kinds)
            rng.shuffle(bag)
        kind = bag.pop()
        end = t + length
        if kind in ("kill", "pause"):
            if rng.random() < 0.5:
                targets: tuple[int, ...] = (LEADER,)
            else:
                targets = tuple(sorted(rng.sample(ids, rng.randint(1, minority))))
            fault = Fault(t, end, kind, targets)
        elif kind == "partition":
            shape = rng.choice(PARTITION_SHAPES)
            if shape == "halves":
                shuffled = ids[:]
                rng.shuffle(shuffled)
                cut = rng.randint(1, minority)
                side, rest = sorted(shuffled[:cut]), sorted(shuffled[cut:])
                fault = Fault(t, end, kind, tuple(side), shape=shape, other=tuple(rest))
            elif shape == "one-way":
                node = rng.choice(ids)
                direction = rng.choice(("out", "in"))
                fault = Fault(t, end, kind, (node,), shape=shape, direction=direction)
            else:
                fault = Fault(t, end, kind, (LEADER,), shape=shape)
        elif kind == "delay":
            targets = (rng.choice(ids),) if rng.random() < 0.5 else ()
            fault = Fault(
                t,
                end,
                kind,
                targets,
                delay_ns=rng.randint(DELAY_NS_MIN, DELAY_NS_MAX),
                jitter_ns=rng.randint(0, JITTER_NS_MAX),
            )
        else:
            fault = Fault(t, end, kind, (), drop_p=round(rng.uniform(DROP_P_MIN, DROP_P_MAX), 3))
        schedule.append(fault)
        t = end + rng.randint(gap_ns_min, gap_ns_max)
    return schedule


class ClusterControl(Protocol):
    """What the nemesis needs from a cluster (LocalCluster provides it)."""

    def kill(self, id: int, sig: int = ...) -> None: ...

    def restart(self, id: int) -> None: ...

    def pause(self, id: int) -> None: ...

    def resume(self, id: int) -> None: ...


Recorder = Callable[[str, str, dict[str, Any]], None]
"""record(f, phase, value): `f` the fault name, phase "start"/"stop"/"heal"."""


class Nemesis:
    """Executes a schedule. `leader()` returns the current leader id or 0 (may block: it runs
    in a worker thread, as do the cluster's process operations, so the loop keeps proxying)."""

    def __init__(
        self,
        schedule: Iterable[Fault],
        cluster: ClusterControl,
        proxy: FaultProxy | None,
        record: Recorder,
        *,
        leader: Callable[[], int],
        nodes: Sequence[int],
    ) -> None:
        self.schedule = list(schedule)
        self.cluster = cluster
        self.proxy = proxy
        self.record = record
        self.leader = leader
        self.nodes = tuple(sorted(nodes))
        self.killed: set[int] = set()
        self.paused: set[int] = set()
        self.applied: dict[str, int] = {}
        self.errors: list[str] = []

    def _needs_proxy(self) -> FaultProxy:
        if self.proxy is None:
            raise ConfigError("network faults (partition, delay, drop) need the FaultProxy")
        return self.proxy

    async def run(self, started_ns: int | None = None) -> None:
        """Apply every fault at its time, undo it at its end; heal everything on the way out."""
        start = time.monotonic_ns() if started_ns is None else started_ns
        try:
            for fault in self.schedule:
                await _sleep_until(start + fault.start_ns)
                targets = await self.apply(fault)
                await _sleep_until(start + fault.end_ns)
                await self.undo(fault, targets)
        finally:
            await asyncio.shield(self.heal_all())

    async def _targets(self, fault: Fault) -> tuple[int, ...]:
        if fault.nodes != (LEADER,):
            return fault.nodes
        leader = await asyncio.to_thread(self.leader)
        return (leader,) if leader else (random.Random(fault.start_ns).choice(self.nodes),)

    async def apply(self, fault: Fault) -> tuple[int, ...]:
        """Put `fault` in force; returns the nodes it hit (the leader resolved).

        A process operation that fails (a node that will not die or restart) is recorded in
        `errors` and the run goes on: the final catch-up check reports what it left behind.
        """
        targets = await self._targets(fault)
        value = {**fault.describe(), "nodes": list(targets)}
        self.record(fault.kind, "start", value)
        self.applied[fault.kind] = self.applied.get(fault.kind, 0) + 1
        if fault.kind == "kill":
            for node in targets:
                if await self._process_op("kill", node, self.cluster.kill, node, signal.SIGKILL):
                    self.killed.add(node)
        elif fault.kind == "pause":
            for node in targets:
                if await self._process_op("pause", node, self.cluster.pause, node):
                    self.paused.add(node)
        elif fault.kind == "partition":
            proxy = self._needs_proxy()
            if fault.shape == "halves":
                proxy.partition_sides(targets, fault.other)
            elif fault.shape == "one-way":
                (node,) = targets
                for other in self.nodes:
                    if other != node:
                        a, b = (node, other) if fault.direction == "out" else (other, node)
                        proxy.partition(a, b)
            else:
                proxy.isolate(targets[0])
        elif fault.kind == "delay":
            proxy = self._needs_proxy()
            for a, b in proxy.links:
                if not targets or a in targets:
                    proxy.delay(a, b, fault.delay_ns, fault.jitter_ns)
        elif fault.kind == "drop":
            proxy = self._needs_proxy()
            for a, b in proxy.links:
                proxy.drop(a, b, fault.drop_p)
        return targets

    async def undo(self, fault: Fault, targets: Sequence[int]) -> None:
        """End `fault` (applied to `targets`)."""
        if fault.kind == "kill":
            await self._restart_killed()
        elif fault.kind == "pause":
            await self._resume_paused()
        elif self.proxy is not None:
            self.proxy.heal()
        self.record(fault.kind, "stop", {"nodes": list(targets)})

    async def _process_op(self, what: str, node: int, fn: Callable[..., None], *args: Any) -> bool:
        try:
            await asyncio.to_thread(fn, *args)
        except (OSError, HaperfError) as exc:
            self.errors.append(f"{what} of node {node} failed: {exc}")
            return False
        return True

    async def _restart_killed(self) -> None:
        for node in sorted(self.killed):
            if await self._process_op("restart", node, self.cluster.restart, node):
                self.killed.discard(node)

    async def _resume_paused(self) -> None:
        for node in sorted(self.paused):
            if await self._process_op("resume", node, self.cluster.resume, node):
                self.paused.discard(node)

    async def heal_all(self) -> None:
        """Undo everything still in force: resume paused nodes, restart killed ones, heal links."""
        if self.proxy is not None:
            self.proxy.heal()
        await self._resume_paused()
        await self._restart_killed()
        self.record("heal", "stop", {"nodes": list(self.nodes)})


async def _sleep_until(deadline_ns: int) -> None:
    delay_ns = deadline_ns - time.monotonic_ns()
    if delay_ns > 0:
        await asyncio.sleep(delay_ns / 1e9)
