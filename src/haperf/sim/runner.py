"""One simulation run: build the world from a seed, run the safety then the liveness phase.

Owns SimConfig, Simulation and RunResult. A run is a pure function of its SimConfig (seed
included): `Simulation(config).run()` twice gives the same trace digest.

Phases: the safety phase (`safety_ticks` ticks of `tick_ns`) runs the workload under the seed's
faults. Then the liveness phase heals a majority (chosen by the seed): faults stop, its crashed
members restart, the cuts between them heal and their links stop dropping frames; the minority
stays as it was (with the `membership` fault kind every node is healed, and the client first
restores the full membership). The cluster must then apply a probe command on every node of
the majority within `liveness_ticks` ticks, or the run fails with a `liveness` violation.

The trace digest is BLAKE2b over every event in order: its time, kind and subject, and the
bytes of every delivered frame (which carry every command). Checkers run during every event
(see checkers.py); the run stops at the first event that broke a guarantee.

Invariants: all randomness comes from SimRng sub-streams; events are processed in (time_ns, seq)
order; at most `events_max` events run (a run that would loop forever fails loudly).
"""

import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from haperf._native import codec, raftmsg
from haperf.errors import ConfigError, HaperfError
from haperf.sim.checkers import CHECKERS, Checker, Reporter, Violation
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
    FaultPlan,
    make_plan,
)
from haperf.sim.network import MS, Network, NetworkConfig
from haperf.sim.node import (
    CoreFactory,
    HostFactory,
    SimNode,
    StateMachine,
    raft_core,
    raft_host,
)
from haperf.sim.rng import SEED_MAX, SimRng
from haperf.sim.scheduler import Scheduler
from haperf.sim.workload import Client

NODES_MAX = 9
EVENTS_MAX = 5_000_000
TICKS_MAX = 10_000_000
SAFETY_TICKS_DEFAULT = 200
LIVENESS_TICKS_DEFAULT = 500
COMPACT_ENTRIES_DEFAULT = 32

# Event kinds.
TICK = 1
DELIVER = 2
FAULT = 3
CLIENT = 4
LIVENESS = 5
PROBE = 6
READ = 7
KIND_NAMES = {
    READ: "read",
    TICK: "tick",
    DELIVER: "deliver",
    FAULT: "fault",
    CLIENT: "client",
    LIVENESS: "liveness",
    PROBE: "probe",
}

_EVENT = struct.Struct("<qBq")


class HashStateMachine:
    """The default state machine: a running BLAKE2b of every applied (index, command)."""

    __slots__ = ("applied", "digest")

    def __init__(self) -> None:
        self.digest = b"\0" * 16
        self.applied = 0

    def apply(self, index: int, data: bytes) -> object:
        step = self.digest + index.to_bytes(8, "little") + data
        self.digest = blake2b(step, digest_size=16).digest()
        self.applied = index
        return self.digest

    def snapshot(self) -> bytes:
        return self.applied.to_bytes(8, "little") + self.digest

    def restore(self, data: bytes) -> None:
        self.applied = int.from_bytes(data[:8], "little")
        self.digest = bytes(data[8:])


def _describe_frame(frame: bytes) -> str:
    """One frame for --trace, decoded on its own (the delivery path decodes it again)."""
    try:
        m = codec.decode(frame)
    except HaperfError as exc:
        return f"undecodable ({type(exc).__name__})"
    name = raftmsg.MSG_TYPE_NAMES.get(m.type, str(m.type))
    text = f"{name} term={m.term} index={m.index} log_term={m.log_term} commit={m.commit}"
    if m.entries:
        text += f" entries={len(m.entries)}"
    if m.reject:
        text += f" reject hint={m.reject_hint} hint_term={m.hint_term}"
    return text


CheckerFactory = Callable[[Reporter], Checker]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything a run depends on. Times are integer ns; ticks are of the nodes' local clocks.

    Defaults follow the Raft paper's evaluation (section 9.3): 150-300 ms election timeouts
    (election_tick 15 of 10 ms, randomized in [15, 30) ticks) and 50 ms heartbeats.
    """

    seed: int = 0
    nodes: int = 3
    tick_ns: int = 10 * MS
    election_tick: int = 15
    heartbeat_tick: int = 5
    pre_vote: bool = True
    check_quorum: bool = True
    lease_read: bool = False
    safety_ticks: int = SAFETY_TICKS_DEFAULT
    liveness_ticks: int = LIVENESS_TICKS_DEFAULT
    faults: tuple[str, ...] = FAULT_KINDS
    compact_entries: int = COMPACT_ENTRIES_DEFAULT
    propose_interval_ns: int = 20 * MS
    read_interval_ns: int = 50 * MS
    probe_interval_ns: int = 50 * MS
    network: NetworkConfig = field(default_factory=NetworkConfig)
    state_machine: Callable[[], StateMachine] = HashStateMachine
    core_factory: CoreFactory = raft_core
    host_factory: HostFactory = raft_host
    encode: Callable[[Any], bytes] = codec.encode
    new_reader: Callable[[], Any] = codec.FrameReader
    checkers: tuple[CheckerFactory, ...] = CHECKERS
    node_factory: Callable[..., SimNode] = SimNode
    client_factory: Callable[["Simulation", random.Random], Client] = Client
    disk_factory: Callable[[], SimDisk] = SimDisk
    events_max: int = EVENTS_MAX
    trace: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"seed must be in 0..{SEED_MAX}, got {self.seed}")
        if not 1 <= self.nodes <= NODES_MAX:
            raise ConfigError(f"nodes must be in 1..{NODES_MAX}, got {self.nodes}")
        if self.tick_ns < 1:
            raise ConfigError(f"tick_ns must be >= 1, got {self.tick_ns}")
        if not 0 <= self.safety_ticks <= TICKS_MAX or not 1 <= self.liveness_ticks <= TICKS_MAX:
            raise ConfigError(
                f"safety_ticks must be in 0..{TICKS_MAX} and liveness_ticks in 1..{TICKS_MAX}"
            )
        for k in self.faults:
            if k not in FAULT_KINDS:
                raise ConfigError(f"unknown fault kind {k!r}; choose from {', '.join(FAULT_KINDS)}")
        if self.compact_entries < 0:
            n = self.compact_entries
            raise ConfigError(f"compact_entries must be >= 0 (0 = never), got {n}")
        if self.propose_interval_ns < 1 or self.probe_interval_ns < 1 or self.read_interval_ns < 0:
            raise ConfigError(
                "propose_interval_ns and probe_interval_ns must be >= 1, read_interval_ns >= 0"
            )


@dataclass(slots=True)
class RunResult:
    seed: int
    nodes: int
    digest: str
    events: int
    sim_ns: int
    violation: Violation | None
    plan: str
    proposed: int
    acked: int
    reads: int
    leader_terms: int
    progress_ns: int | None
    frames: int
    dropped: int
    crashes: int

    @property
    def ok(self) -> bool:
        return self.violation is None


class Simulation:
    """The world of one run: clock, scheduler, network, nodes, client and checkers."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = SimRng(config.seed)
        self.clock = SimClock()
        self.scheduler = Scheduler(self.clock)
        self.node_ids: tuple[int, ...] = tuple(range(1, config.nodes + 1))
        self.voters = self.node_ids
        safety_ns = config.safety_ticks * config.tick_ns
        self.safety_ns = safety_ns
        self.plan: FaultPlan = make_plan(
            self.rng.stream("faults"), config.faults, self.node_ids, safety_ns, config.network
        )
        self.network = Network(
            self.plan.network, self.rng.stream("network"), config.encode, config.new_reader
        )
        self.disk_rng = self.rng.stream("disk")
        self.reporter = Reporter(config.seed)
        self.checkers = [make(self.reporter) for make in config.checkers]
        self.client = config.client_factory(self, self.rng.stream("workload"))
        self.nodes: dict[int, SimNode] = {}
        for i, node_id in enumerate(self.node_ids):
            clock = NodeClock(self.clock, self.plan.drift_ppm[i])
            self.nodes[node_id] = config.node_factory(
                self, node_id, clock, config.disk_factory(), config.state_machine
            )
        self._hash = blake2b(digest_size=16, person=b"haperf-sim-trace")
        self.events = 0
        self.faults_on = True
        self.liveness_end_ns: int | None = None
        self.crashes = 0
        self.torn_crashes = 0
        self.leader_terms: dict[int, int] = {}
        self._trace = config.trace
        # Hooks for observers such as the election benchmark: called after every event.
        self.after_event: list[Callable[[Simulation], None]] = []
        self.stopped = False  # an after_event hook sets it to end the run early

    # -- observations from nodes (checkers run here, during the event) ---------------------
    def observe_status(self, node: SimNode) -> None:
        log = node.disk.volatile
        is_leader, term, commit = node.is_leader, node.term, node.commit
        if is_leader:
            self.leader_terms.setdefault(term, node.id)
        for c in self.checkers:
            c.on_status(node.id, is_leader, term, commit, log)

    def observe_append(self, node_id: int, entries: Sequence[Any], prev_term: int | None) -> None:
        for c in self.checkers:
            c.on_append(node_id, entries, prev_term)

    def observe_apply(self, node_id: int, index: int, data: bytes) -> None:
        for c in self.checkers:
            c.on_apply(node_id, index, data)
        self.client.on_apply(node_id, index, data)

    def observe_ack(self, node_id: int, index: int, data: bytes) -> None:
        core = self.nodes[node_id].core
        term = 0 if core is None else core.term
        for c in self.checkers:
            c.on_ack(node_id, index, data, term)

    def observe_read(self, node_id: int, index: int, acked_before: int) -> None:
        for c in self.checkers:
            c.on_read(node_id, index, acked_before)

    def observe_restart(self, node: SimNode) -> None:
        for c in self.checkers:
            c.on_restart(node.id, node.disk.volatile)

    # -- effects ---------------------------------------------------------------------------
    def send(self, src: int, messages: Iterable[Any]) -> None:
        at = self.scheduler.at
        for time_ns, s, dst, frame in self.network.send(self.clock.now_ns, src, messages):
            at(time_ns, DELIVER, dst, (s, frame))

    def _schedule_tick(self, node: SimNode) -> None:
        delay = node.clock.global_interval_ns(self.config.tick_ns)
        self.scheduler.after(delay, TICK, node.id, node.incarnation)

    def crash(self, node: SimNode) -> None:
        """Crash a node now (a no-op if it is down): its unsynced writes are lost."""
        if not node.alive:
            return
        keep = self.plan.torn and self.disk_rng.random() < 0.5
        node.crash(keep)
        self.crashes += 1
        self.torn_crashes += keep
        self.client.on_crash(node.id)
        for other in self.node_ids:
            self.network.reset_link(node.id, other)
            self.network.reset_link(other, node.id)

    def _restart(self, node: SimNode) -> None:
        if node.alive:
            return
        node.start()
        self._schedule_tick(node)

    # -- the run ---------------------------------------------------------------------------
    def _start(self) -> None:
        sched = self.scheduler
        offsets = self.rng.stream("tick-phase")
        for node_id in self.node_ids:
            node = self.nodes[node_id]
            node.start()
            sched.at(offsets.randrange(self.config.tick_ns), TICK, node_id, node.incarnation)
        for event in self.plan.events:
            sched.at(event.time_ns, FAULT, event.node, event)
        sched.at(self.config.propose_interval_ns, CLIENT)
        if self.config.read_interval_ns:
            sched.at(self.config.read_interval_ns, READ)
        sched.at(self.safety_ns, LIVENESS)

    def _start_liveness(self) -> None:
        """Heal a majority: stop faults, restart its crashed nodes, reconnect it losslessly."""
        self.faults_on = False
        rng = self.rng.stream("liveness")
        ids = list(self.node_ids)
        rng.shuffle(ids)
        majority = tuple(sorted(ids[: len(ids) // 2 + 1]))
        if "membership" in self.config.faults:
            # A majority of all nodes need not be a majority of the current configuration.
            majority = self.node_ids
        net = self.network
        healed = [(a, b) for a in majority for b in majority if a != b]
        net.heal(healed)
        for node_id in majority:
            self._restart(self.nodes[node_id])
        self.client.start_liveness(majority)
        self.liveness_end_ns = self.clock.now_ns + self.config.liveness_ticks * self.config.tick_ns
        self.scheduler.after(0, PROBE)

    def _trace_event(self, time_ns: int, kind: int, a: int, b: Any) -> None:
        assert self._trace is not None
        what = KIND_NAMES[kind]
        if kind == DELIVER:
            what += f" {b[0]}->{a} {len(b[1])}B {_describe_frame(b[1])}"
        elif kind == FAULT:
            links = " ".join(f"{x}->{y}" for x, y in b.links)
            what += f" {b.kind} node={b.node}" + (f" links {links}" if links else "")
        elif kind == TICK:
            node = self.nodes[a]
            role = "leader" if node.is_leader else "-"
            what += f" node={a} term={node.term} commit={node.commit} {role}"
        self._trace(f"{time_ns:>14} {what}")

    def run(self) -> RunResult:
        config = self.config
        sched = self.scheduler
        nodes = self.nodes
        reporter = self.reporter
        update = self._hash.update
        pack = _EVENT.pack
        client = self.client
        network = self.network
        self._start()
        hooks = self.after_event
        while sched:
            if reporter.violations or client.progress_at_ns is not None or self.stopped:
                break
            time_ns, _seq, kind, a, b = sched.pop()
            if self.liveness_end_ns is not None and time_ns > self.liveness_end_ns:
                reporter.time_ns = time_ns
                reporter.fail(
                    "liveness",
                    0,
                    0,
                    0,
                    f"no progress within {config.liveness_ticks} ticks after healing the "
                    f"majority {client.majority}",
                )
                break
            self.events += 1
            assert self.events <= config.events_max, f"more than {config.events_max} events"
            reporter.time_ns = time_ns
            reporter.event = self.events
            update(pack(time_ns, kind, a))
            if self._trace is not None:
                self._trace_event(time_ns, kind, a, b)
            if kind == DELIVER:
                src, frame = b
                update(frame)
                messages = network.receive(src, a, frame)
                node = nodes[a]
                if messages and node.alive:
                    node.step(messages)
            elif kind == TICK:
                node = nodes[a]
                if node.alive and node.incarnation == b:
                    node.tick()
                    self._schedule_tick(node)
            elif kind == CLIENT:
                if self.faults_on:
                    client.propose()
                    sched.after(config.propose_interval_ns, CLIENT)
            elif kind == READ:
                if self.faults_on:
                    client.read()
                    sched.after(config.read_interval_ns, READ)
            elif kind == FAULT:
                self._fault(b)
            elif kind == PROBE:
                client.probe()
                sched.after(config.probe_interval_ns, PROBE)
            elif kind == LIVENESS:
                self._start_liveness()
            if client.reads:
                client.poll_reads()
            for hook in hooks:
                hook(self)
        if not reporter.violations:
            logs = {i: n.disk.volatile for i, n in nodes.items()}
            for c in self.checkers:
                c.finish(logs)
        return RunResult(
            seed=config.seed,
            nodes=config.nodes,
            digest=self._hash.hexdigest(),
            events=self.events,
            sim_ns=self.clock.now_ns,
            violation=reporter.violations[0] if reporter.violations else None,
            plan=self.plan.describe(),
            proposed=client.proposed,
            acked=client.acked,
            reads=client.reads_done,
            leader_terms=len(self.leader_terms),
            progress_ns=None
            if client.progress_at_ns is None
            else client.progress_at_ns - self.safety_ns,
            frames=network.stats.sent,
            dropped=network.stats.dropped + network.stats.cut + network.stats.overflow,
            crashes=self.crashes,
        )

    def _fault(self, event: Any) -> None:
        kind = event.kind
        if kind == RESTART:
            # Restarts run in the liveness phase too: they heal, they do not break.
            self._restart(self.nodes[event.node])
            return
        if kind == HEAL:
            self.network.uncut(event.links)
            return
        if not self.faults_on:
            return
        if kind == CRASH:
            self.crash(self.nodes[event.node])
        elif kind == CUT:
            self.network.cut(event.links)
        elif kind == REMOVE:
            self.client.change_membership(False, event.node)
        elif kind == ADD:
            self.client.change_membership(True, event.node)


def run(config: SimConfig) -> RunResult:
    """Run one simulation; see the module docstring."""
    return Simulation(config).run()


def replay_command(config: SimConfig) -> str:
    """The command line that replays this run exactly."""
    cmd = (
        f"python -m haperf sim --seed {config.seed} --nodes {config.nodes} "
        f"--ticks {config.safety_ticks}"
    )
    if config.liveness_ticks != LIVENESS_TICKS_DEFAULT:
        cmd += f" --liveness-ticks {config.liveness_ticks}"
    if config.faults != FAULT_KINDS:
        cmd += " --faults " + (",".join(config.faults) or "none")
    return cmd
