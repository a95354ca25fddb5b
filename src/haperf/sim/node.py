"""A simulated node: a Raft core, its host, a simulated disk, and the user's state machine.

Owns SimNode, the StateMachine protocol the simulator runs, and the factories that build a core
and a host (by default haperf._native.raft.RawNode and haperf.raft.host.Host; tests plug in
doubles). The node is driven by the runner: `tick()` on its local clock, `step(msg)` for a
delivered message, `propose(data)` for a client; after each it drains every Ready through the
host, then reports its status to the checkers.

Invariants: a crashed node holds no core, host or state machine (all volatile state is gone);
restarting rebuilds the core from the disk's durable state only (snapshot, hard state, entries)
and a fresh state machine restored from the snapshot; each incarnation is numbered, so events
scheduled for an older incarnation are ignored; at most `READY_ROUNDS_MAX` Readies are drained
per event.
"""

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from haperf.errors import HaperfError
from haperf.sim.clock import NodeClock
from haperf.sim.disk import SimDisk

if TYPE_CHECKING:
    from haperf.sim.runner import Simulation

READY_ROUNDS_MAX = 1_000
ROLE_LEADER = 2  # haperf._native.raft.LEADER (a test pins the two together)


class StateMachine(Protocol):
    """What the simulator (and the Raft host) needs from a replicated state machine."""

    def apply(self, index: int, data: bytes) -> object:
        """Apply the committed command at `index`; the return value goes to the client."""
        ...

    def snapshot(self) -> bytes:
        """The whole state as bytes (for log compaction)."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot taken by `snapshot()`."""
        ...


class Core(Protocol):
    """The part of haperf._native.raft.RawNode the simulator drives and reads."""

    @property
    def role(self) -> int: ...
    @property
    def term(self) -> int: ...
    @property
    def commit(self) -> int: ...
    @property
    def lead(self) -> int: ...
    @property
    def applied(self) -> int: ...
    def tick(self) -> None: ...
    def step(self, msg: Any) -> None: ...
    def propose(self, data: bytes) -> None: ...
    def has_ready(self) -> bool: ...
    def conf_state(self) -> Any: ...


class HostLike(Protocol):
    """The part of haperf.raft.host.Host the simulator drives."""

    def process_ready(self) -> bool: ...
    def compact(self) -> None: ...
    def read(self, ctx: bytes | None = None) -> Any: ...
    def propose_conf_change(self, change: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class CoreSpec:
    """Everything a core factory needs to build (or rebuild after a crash) one node's core."""

    node_id: int
    voters: tuple[int, ...]
    rng_seed: int
    election_tick: int
    heartbeat_tick: int
    pre_vote: bool
    check_quorum: bool
    lease_read: bool
    hard_state: Any
    snapshot: Any
    entries: Sequence[Any]


CoreFactory = Callable[[CoreSpec], Core]
HostFactory = Callable[[Core, SimDisk, Callable[[list[Any]], None], StateMachine], HostLike]


def raft_core(spec: CoreSpec) -> Core:
    """The real core: haperf._native.raft.RawNode restarted from the disk's durable state."""
    # Imported by name at first use: the simulator's parts work (and are tested) with any core.
    raft = importlib.import_module("haperf._native.raft")
    config = raft.Config(
        id=spec.node_id,
        voters=spec.voters,
        election_tick=spec.election_tick,
        heartbeat_tick=spec.heartbeat_tick,
        pre_vote=spec.pre_vote,
        check_quorum=spec.check_quorum,
        lease_read=spec.lease_read,
    )
    snapshot = spec.snapshot
    return raft.RawNode(  # type: ignore[no-any-return]
        config,
        spec.rng_seed,
        hard_state=spec.hard_state,
        snapshot=snapshot,
        entries=list(spec.entries),
    )


def raft_host(
    core: Core, disk: SimDisk, send: Callable[[list[Any]], None], sm: StateMachine
) -> HostLike:
    """The real host: haperf.raft.host.Host over the simulated disk."""
    host = importlib.import_module("haperf.raft.host")
    return host.Host(core, disk, send, sm)  # type: ignore[no-any-return]


class _ObservedStateMachine:
    """Sits between the host and the user's state machine and reports every apply."""

    __slots__ = ("inner", "node")

    def __init__(self, node: "SimNode", inner: StateMachine) -> None:
        self.node = node
        self.inner = inner

    def apply(self, index: int, data: bytes) -> object:
        data = bytes(data)
        self.node.on_apply(index, data)
        return self.inner.apply(index, data)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, data: bytes) -> None:
        self.inner.restore(data)

    def __getattr__(self, name: str) -> Any:
        # Optional extras a host may look for (e.g. apply_conf_change) go to the user's machine.
        return getattr(self.inner, name)


class SimNode:
    """One node of a simulation; see the module docstring."""

    def __init__(
        self,
        sim: "Simulation",
        node_id: int,
        clock: NodeClock,
        disk: SimDisk,
        state_machine: Callable[[], StateMachine],
    ) -> None:
        self.sim = sim
        self.id = node_id
        self.clock = clock
        self.disk = disk
        self.new_state_machine = state_machine
        self.incarnation = 0
        self.alive = False
        self.core: Core | None = None
        self.host: HostLike | None = None
        self.state_machine: StateMachine | None = None
        self.is_leader = False
        self.term = 0
        self.commit = 0
        self.leader = 0
        self.compact_entries = sim.config.compact_entries
        disk.on_append = self._on_append

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Boot (or reboot) from the durable disk state."""
        assert not self.alive
        sim = self.sim
        self.incarnation += 1
        durable = self.disk.durable
        self.disk.volatile = durable.copy()
        sm = self.new_state_machine()
        if durable.snapshot_meta is not None:
            sm.restore(durable.snapshot_data)
        self.state_machine = sm
        spec = CoreSpec(
            node_id=self.id,
            voters=sim.voters,
            rng_seed=sim.rng.seed_for(f"core/{self.id}/{self.incarnation}"),
            election_tick=sim.config.election_tick,
            heartbeat_tick=sim.config.heartbeat_tick,
            pre_vote=sim.config.pre_vote,
            check_quorum=sim.config.check_quorum,
            lease_read=sim.config.lease_read,
            hard_state=durable.hard_state,
            snapshot=None
            if durable.snapshot_meta is None
            else (durable.snapshot_meta, durable.snapshot_data),
            entries=list(durable.entries),
        )
        self.core = sim.config.core_factory(spec)
        self.host = sim.config.host_factory(
            self.core, self.disk, self._send, _ObservedStateMachine(self, sm)
        )
        self.alive = True
        self.is_leader = False
        sim.observe_restart(self)
        self._drain()

    def crash(self, keep_prefix: bool) -> int:
        """Lose all volatile state; returns how many unsynced disk writes were lost or torn."""
        assert self.alive
        self.alive = False
        self.core = self.host = self.state_machine = None
        self.is_leader = False
        return self.disk.crash(self.sim.disk_rng, keep_prefix)

    # -- inputs ----------------------------------------------------------------------------
    def tick(self) -> None:
        core = self.core
        assert core is not None
        core.tick()
        self._drain()

    def step(self, messages: list[Any]) -> None:
        core = self.core
        assert core is not None
        for msg in messages:
            core.step(msg)
        self._drain()

    def propose(self, data: bytes) -> bool:
        """Hand a command to the core; False when it refuses (not the leader, no leader)."""
        core = self.core
        assert core is not None
        try:
            core.propose(data)
        except HaperfError:
            self._drain()
            return False
        self._drain()
        return True

    def propose_conf_change(self, change: Any) -> bool:
        """Hand a membership change to the host; False when refused (not the leader, a change
        still pending, or invalid for the current configuration)."""
        host = self.host
        assert host is not None
        try:
            host.propose_conf_change(change)
        except HaperfError:
            self._drain()
            return False
        self._drain()
        return True

    # -- outputs ---------------------------------------------------------------------------
    def _send(self, messages: list[Any]) -> None:
        self.sim.send(self.id, messages)

    def _on_append(self, entries: Sequence[Any], prev_term: int | None) -> None:
        self.sim.observe_append(self.id, entries, prev_term)

    def on_apply(self, index: int, data: bytes) -> None:
        self.sim.observe_apply(self.id, index, data)

    def _drain(self) -> None:
        core, host = self.core, self.host
        assert core is not None and host is not None
        rounds = 0
        while core.has_ready():
            rounds += 1
            assert rounds <= READY_ROUNDS_MAX, f"node {self.id}: Ready after Ready, no progress"
            host.process_ready()
            if self.core is not core:  # the state machine crashed the node (planted bugs)
                return
        every = self.compact_entries
        if every and core.applied - self.disk.volatile.snapshot_index >= every:
            # Log compaction (Raft 7): lagging followers then need a snapshot (MSG_SNAP).
            host.compact()
        self._observe()

    def _read_status(self) -> None:
        core = self.core
        assert core is not None
        # Attributes, not status(): status() builds a dict (with per-peer progress) per call.
        self.is_leader = core.role == ROLE_LEADER
        self.term = core.term
        self.commit = core.commit
        self.leader = core.lead

    def _observe(self) -> None:
        """Read the core's status and show it to the checkers (after every event)."""
        self._read_status()
        self.sim.observe_status(self)
