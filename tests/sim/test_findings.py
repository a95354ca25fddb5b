"""Core behaviours the simulator found, pinned as tests (see /work/briefs/SIM_FINDINGS.md).

A finding that is not fixed yet is an xfail(strict=True) test: it documents the bug, fails
loudly (XPASS) once the core is fixed, and is then turned into a plain regression test.
Findings #1 (append storm) and #2 (removing the leader) are fixed: both are regression tests.
"""

from typing import Any

import pytest

from haperf._native import codec
from haperf._native.raftmsg import MSG_APP
from haperf.sim.disk import DiskState, SimDisk
from haperf.sim.faults import CRASH, RESTART, FaultEvent
from haperf.sim.network import MS
from haperf.sim.runner import FAULT, SimConfig, Simulation, run

APPENDS_PER_S_MAX = 200  # heartbeat-paced probing is 20 per second at 50 ms heartbeats


class WipedDisk(SimDisk):
    """A disk replaced by an empty one at each crash (the node rejoins with its old id)."""

    def crash(self, rng: Any = None, keep_prefix: bool = False) -> int:
        lost = super().crash(rng, keep_prefix)
        self.durable = DiskState()
        self.volatile = DiskState()
        return lost


def test_follower_with_a_wiped_disk_does_not_cause_an_append_storm() -> None:
    """SIM_FINDINGS.md #1, fixed: a reject at or below the follower's match index is stale in
    every progress state, so probing a follower that lost acknowledged state stays
    heartbeat-paced instead of answering each reject with another MSG_APP at once."""
    crash_ns, restart_ns, window_ns = 1_000 * MS, 1_050 * MS, 1_000 * MS
    sent: list[int] = []
    clock_box: list[Simulation] = []

    def encode(msg: Any) -> bytes:
        now = clock_box[0].clock.now_ns
        if msg.type == MSG_APP and msg.to == 3 and restart_ns <= now < restart_ns + window_ns:
            sent.append(now)
        return codec.encode(msg)

    disks = iter([SimDisk(), SimDisk(), WipedDisk()])
    config = SimConfig(
        seed=1,
        faults=(),
        compact_entries=0,  # with compaction the leader repairs node 3 from a snapshot
        safety_ticks=300,
        liveness_ticks=50,
        encode=encode,
        disk_factory=disks.__next__,
    )
    sim = Simulation(config)
    clock_box.append(sim)
    sim.scheduler.at(crash_ns, FAULT, 3, FaultEvent(crash_ns, CRASH, 3))
    sim.scheduler.at(restart_ns, FAULT, 3, FaultEvent(restart_ns, RESTART, 3))
    sim.run()
    assert len(sent) <= APPENDS_PER_S_MAX, f"{len(sent)} MSG_APP to node 3 in 1 s"


@pytest.mark.parametrize("seed", [3251, 10632, 23919, 25918])
def test_removing_the_leader_leaves_an_electable_cluster(seed: int) -> None:
    """SIM_FINDINGS.md #2, fixed: a leader that removes itself keeps leading (refusing new
    proposals, not counting itself) until a majority of the new configuration holds its whole
    log, then hands over with MSG_TIMEOUT_NOW and steps down, so a survivor can be elected."""
    result = run(SimConfig(seed=seed, nodes=3))
    assert result.ok, result.violation
