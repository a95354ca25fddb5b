"""Randomized membership churn: while messages drop and partitions come and go, the leader adds
learners (thesis 4.2.1), promotes them, removes voters one at a time (thesis 4.1; itself too,
thesis 4.2.2) and replaces voters through joint consensus (thesis 4.3), while nodes compact
their logs (so new members and laggards also get the membership from snapshots, thesis 5).
After every tick the safety properties of tests/raft/test_random.py hold (one leader per term,
log matching, state machine safety); once healed, every member of the final configuration
converges. Each run prints its seed.
"""

import contextlib
import random

import pytest

from haperf._native.confchange import CC_ADD_LEARNER, CC_ADD_VOTER, CC_REMOVE_NODE, ConfChange
from haperf.errors import NotLeaderError, ProposalDroppedError
from tests.raft.network import Cluster
from tests.raft.test_random import check_invariants

SEEDS = (41, 42, 43)
BOOTSTRAP = (1, 2, 3)


def _try_change(c: Cluster, rng: random.Random, next_id: list[int]) -> None:
    lead = c.leader()
    if not lead:
        return
    ms = c.nodes[lead].membership
    if ms.is_joint():
        return  # auto-leave is on its way
    choice = rng.random()
    if choice < 0.35 or not (ms.learners or len(ms.voters) > 3):
        node = next_id[0]
        next_id[0] += 1
        c.add(node, voters=BOOTSTRAP)
        cc = ConfChange([(CC_ADD_LEARNER, node)])
    elif choice < 0.6 and ms.learners:
        cc = ConfChange([(CC_ADD_VOTER, rng.choice(ms.learners))])
    elif choice < 0.8 and len(ms.voters) > 3:
        # Any voter, the leader included (thesis 4.2.2: it hands over once C_new holds its log).
        cc = ConfChange([(CC_REMOVE_NODE, rng.choice(ms.voters))])
    elif ms.learners and len(ms.voters) > 3:
        gone = rng.choice([v for v in ms.voters if v != lead])
        cc = ConfChange([(CC_ADD_VOTER, ms.learners[0]), (CC_REMOVE_NODE, gone)], joint=True)
    else:
        return
    # A change still in flight or a transfer refuses it: try again later. Invalid changes are
    # never generated, so ConfChangeError would be a bug and propagates.
    with contextlib.suppress(ProposalDroppedError, NotLeaderError):
        c.hosts[lead].propose_conf_change(cc)


def run(seed: int, ticks: int = 400, *, chaos: bool = False) -> None:
    print(f"raft membership churn: seed={seed} ticks={ticks} chaos={chaos}")
    rng = random.Random(seed)
    c = Cluster(BOOTSTRAP, seed=seed, inflight_msgs_max=8, snapshot_chunk_bytes=64)
    c.drop_rate = 0.05
    if chaos:
        c.reorder = True
        c.dup_rate = 0.05
        c.delay_rate = 0.05
    state: dict[str, dict[int, object]] = {"leaders": {}, "applied": {}, "committed": {}}
    next_id = [10]
    proposed = 0
    changes = 0
    for t in range(ticks):
        r = rng.random()
        if r < 0.03:
            ids = list(c.nodes)
            rng.shuffle(ids)
            c.heal()
            c.partition(ids[: len(ids) // 2], ids[len(ids) // 2 :])
        elif r < 0.08:
            c.heal()
        elif r < 0.10:
            victim = rng.choice(list(c.nodes))
            if c.nodes[victim].applied > c.nodes[victim].log.snap_index:
                c.hosts[victim].compact()  # snapshots then carry the current membership
        if t % 15 == 0:
            before = next_id[0]
            _try_change(c, rng, next_id)
            changes += next_id[0] != before
        lead = c.leader()
        if lead and t % 2 == 0:
            try:
                c.hosts[lead].propose(f"m{seed}-{proposed}".encode())
                proposed += 1
            except ProposalDroppedError:
                pass
        c.tick(1)
        check_invariants(c, state)
    c.heal()
    c.drop_rate = c.dup_rate = c.delay_rate = 0.0
    c.tick(80)
    lead = c.leader()
    assert lead, f"no leader after healing (seed {seed})"
    c.propose(b"final=1", lead)
    c.tick(3)
    check_invariants(c, state)
    ms = c.nodes[lead].membership
    for node in ms.voters + ms.learners:
        assert c.sms[node].data.get("final") == "1", f"member {node} did not converge"
        assert c.nodes[node].membership == ms
    assert changes > 0 and proposed > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_random_membership_churn(seed: int) -> None:
    run(seed)


def test_random_membership_churn_with_reordering_delays_and_duplicates() -> None:
    run(44, chaos=True)
