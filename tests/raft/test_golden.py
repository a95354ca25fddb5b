"""Golden transcripts of core interactions (DESIGN.md 5): the exact message sequence of a
pre-vote election plus one committed command (Raft 5.2, 5.3, thesis 9.6), and of a leader
repairing a diverged follower with the conflict hint (thesis 3.5). A change in the core that
alters what goes on the wire shows up as a diff here; regenerate deliberately with
HAPERF_UPDATE_GOLDEN=1 and review the diff.
"""

import os
from pathlib import Path

from haperf._native.raftmsg import MSG_TYPE_NAMES, Message
from tests.raft.network import Cluster

TESTDATA = Path(__file__).parent / "testdata"


def _line(m: Message) -> str:
    parts = [
        f"{MSG_TYPE_NAMES[m.type]:<19}",
        f"{m.frm}->{m.to}",
        f"term={m.term}",
        f"index={m.index}",
        f"log_term={m.log_term}",
        f"commit={m.commit}",
    ]
    if m.reject:
        parts.append(f"reject hint={m.reject_hint}/{m.hint_term}")
    if m.entries:
        parts.append("entries=" + ",".join(f"{e.index}@{e.term}" for e in m.entries))
    if m.context:
        parts.append(f"ctx={bytes(m.context).hex()}")
    return " ".join(parts)


def _check(name: str, c: Cluster) -> None:
    text = "\n".join(_line(m) for m in c.delivered) + "\n"
    path = TESTDATA / name
    if os.environ.get("HAPERF_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"transcript {name} changed; see HAPERF_UPDATE_GOLDEN"


def test_golden_prevote_election_and_one_command() -> None:
    c = Cluster([1, 2, 3], seed=5)
    c.record = True
    c.nodes[1].campaign()
    c.stabilize()
    c.propose(b"x=1")
    c.tick(1)
    _check("election_and_commit.txt", c)


def test_golden_conflict_hint_repair() -> None:
    c = Cluster([1, 2, 3], seed=6)
    c.elect(1)
    c.isolate(1)
    for k in range(3):
        c.hosts[1].propose(f"stale{k}".encode())
    c.stabilize()
    c.tick(30, only=[2, 3])
    lead = c.leader()
    for k in range(2):
        c.propose(f"new{k}".encode(), lead)
    # A third term, so the new leader probes node 1 beyond where their logs diverge.
    c.nodes[lead].transfer_leader(5 - lead)
    c.stabilize()
    c.record = True
    c.heal()
    c.tick(1)
    _check("conflict_hint_repair.txt", c)
