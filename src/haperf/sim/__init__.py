"""haperf.sim: the deterministic simulator for Raft clusters and your own state machines.

Owns the public names of the simulated world: SimConfig, Simulation, run, RunResult and the
checkers. One seed determines everything (network, faults, clocks, workload, every Raft core's
RNG); `python -m haperf sim --seed N` replays a run and prints its trace digest. See docs/sim.md.
"""

from haperf.sim.checkers import CHECKER_NAMES, CHECKERS, Checker, Violation
from haperf.sim.clock import NodeClock, SimClock
from haperf.sim.disk import DiskState, SimDisk
from haperf.sim.faults import FAULT_KINDS, parse_fault_kinds
from haperf.sim.network import Network, NetworkConfig
from haperf.sim.node import SimNode, StateMachine
from haperf.sim.rng import SimRng
from haperf.sim.runner import (
    HashStateMachine,
    RunResult,
    SimConfig,
    Simulation,
    replay_command,
    run,
)
from haperf.sim.scheduler import Scheduler

__all__ = [
    "CHECKERS",
    "CHECKER_NAMES",
    "FAULT_KINDS",
    "Checker",
    "DiskState",
    "HashStateMachine",
    "Network",
    "NetworkConfig",
    "NodeClock",
    "RunResult",
    "Scheduler",
    "SimClock",
    "SimConfig",
    "SimDisk",
    "SimNode",
    "SimRng",
    "Simulation",
    "StateMachine",
    "Violation",
    "parse_fault_kinds",
    "replay_command",
    "run",
]
