"""The simulated client: proposes commands and watches for their results.

Owns Client. Every `propose_interval_ns` (with jitter) the client sends a fresh command to the
node it believes leads (the alive node that last reported leadership in the highest term, else a
random alive node). A proposal is acknowledged when the node it was sent to applies it: that is
when a real client would get the result back. Acknowledged (index, command) pairs go to the
NoAckLost checker. In the liveness phase it proposes probes to the healed majority and reports
progress once a probe is applied on every node of the majority.

Reads: every `read_interval_ns` the client starts a linearizable read (the host's ReadIndex
read, Raft thesis 6.4) at the node it believes leads, remembering the highest index
acknowledged to it so far. When the host reports the read ready, the read's index goes to the
checkers (ReadLinearizable): a read must see every write acknowledged before it started.

Invariants: commands are unique (`p<seq>` or `probe<seq>`, padded to a drawn size); at most
`PENDING_MAX` proposals wait for a result (the client stops proposing when that many are
outstanding); a crash drops the node's outstanding proposals (its connection to the client is
gone); all randomness comes from the "workload" stream.
"""

import random
from typing import TYPE_CHECKING, Any

from haperf._native.confchange import CC_ADD_VOTER, CC_REMOVE_NODE, ConfChange
from haperf.errors import HaperfError

if TYPE_CHECKING:
    from haperf.sim.node import SimNode
    from haperf.sim.runner import Simulation

PENDING_MAX = 1_000
READS_PENDING_MAX = 256
PAD_BYTES_MAX = 64


class Client:
    """The workload of one simulation; driven by the runner's CLIENT and PROBE events."""

    def __init__(self, sim: "Simulation", rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.seq = 0
        self.pending: dict[bytes, int] = {}  # command -> node it was proposed to
        self.proposed = 0
        self.refused = 0
        self.acked = 0
        self.majority: tuple[int, ...] = ()
        self.probes: dict[bytes, dict[int, bool]] = {}  # probe -> majority nodes that applied
        self.progress_at_ns: int | None = None
        self.acked_max = 0
        # (node id, incarnation, the host's ReadRequest, acked_max when the read started)
        self.reads: list[tuple[int, int, Any, int]] = []
        self.reads_started = 0
        self.reads_done = 0
        self.membership_changes = 0

    def _target(self, among: tuple[int, ...]) -> "SimNode | None":
        nodes = self.sim.nodes
        best: SimNode | None = None
        for node_id in among:
            node = nodes[node_id]
            if node.alive and node.is_leader and (best is None or node.term > best.term):
                best = node
        if best is not None:
            return best
        alive = [nodes[i] for i in among if nodes[i].alive]
        return self.rng.choice(alive) if alive else None

    def _command(self, prefix: bytes) -> bytes:
        self.seq += 1
        pad = self.rng.randint(0, PAD_BYTES_MAX)
        return prefix + str(self.seq).encode() + b"." * pad

    def _propose(self, prefix: bytes, among: tuple[int, ...], probe: bool = False) -> bytes | None:
        if len(self.pending) >= PENDING_MAX:
            return None
        node = self._target(among)
        if node is None:
            return None
        data = self._command(prefix)
        self.proposed += 1
        # Registered first: a one-node cluster applies the command inside propose().
        self.pending[data] = node.id
        if probe:
            self.probes[data] = {}
        if node.propose(data):
            return data
        self.pending.pop(data, None)
        self.probes.pop(data, None)
        self.refused += 1
        return None

    def propose(self) -> None:
        self._propose(b"p", self.sim.node_ids)

    def start_liveness(self, majority: tuple[int, ...]) -> None:
        self.majority = majority

    def probe(self) -> None:
        if "membership" in self.sim.config.faults and not self._restore_membership():
            return
        self._propose(b"probe", self.majority, probe=True)

    def _leader(self) -> "SimNode | None":
        node = self._target(self.sim.node_ids)
        return node if node is not None and node.is_leader else None

    def change_membership(self, add: bool, node_id: int) -> bool:
        """Ask the leader to add `node_id` as a voter or remove it; False when refused."""
        leader = self._leader()
        if leader is None:
            return False
        op = CC_ADD_VOTER if add else CC_REMOVE_NODE
        if not leader.propose_conf_change(ConfChange([(op, node_id)])):
            return False
        self.membership_changes += 1
        return True

    def _restore_membership(self) -> bool:
        """Liveness phase: add back every node the leader's configuration lacks, one per call;
        True once every node is a voter again."""
        leader = self._leader()
        if leader is None or leader.core is None:
            return False
        state = leader.core.conf_state()
        if state.voters_outgoing or state.learners:
            return False
        missing = [n for n in self.sim.node_ids if n not in state.voters]
        if not missing:
            return True
        self.change_membership(True, missing[0])
        return False

    def on_apply(self, node_id: int, index: int, data: bytes) -> None:
        if self.pending.get(data) == node_id:
            del self.pending[data]
            self.acked += 1
            self.acked_max = max(self.acked_max, index)
            self.sim.observe_ack(node_id, index, data)
        appliers = self.probes.get(data)
        if appliers is not None and node_id in self.majority:
            appliers[node_id] = True
            if self.progress_at_ns is None and len(appliers) == len(self.majority):
                self.progress_at_ns = self.sim.clock.now_ns

    def read(self) -> None:
        """Start one linearizable read at the believed leader (skipped when too many wait)."""
        if len(self.reads) >= READS_PENDING_MAX:
            return
        node = self._target(self.sim.node_ids)
        if node is None or node.host is None:
            return
        try:
            request = node.host.read()
        except HaperfError:
            return  # no leader known, or too many reads waiting: a refusal, not an answer
        self.reads_started += 1
        self.reads.append((node.id, node.incarnation, request, self.acked_max))

    def poll_reads(self) -> None:
        """Hand every read that became ready (or failed) to the checkers; drop dead ones."""
        nodes = self.sim.nodes
        waiting = []
        for entry in self.reads:
            node_id, incarnation, request, acked_before = entry
            node = nodes[node_id]
            if not node.alive or node.incarnation != incarnation or request.error is not None:
                continue
            if request.ready:
                self.reads_done += 1
                self.sim.observe_read(node_id, int(request.index), acked_before)
            else:
                waiting.append(entry)
        self.reads = waiting

    def on_crash(self, node_id: int) -> None:
        for data in [d for d, n in self.pending.items() if n == node_id]:
            del self.pending[data]
