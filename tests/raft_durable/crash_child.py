"""Child process of the DiskStorage kill -9 test: a Raft-like writer that prints what it synced.

Run as `python crash_child.py DIR SEED ROUND [recover]`. It opens DiskStorage(DIR) (fsync on),
rebuilds a model (MemoryStorage plus the full log) from initial_state(), then loops forever:
one step from `next_step` (append, sometimes overwriting a tail with a higher term; a term/vote
change; now and then a compaction snapshot that keeps the suffix, or a leader's snapshot beyond
the log or conflicting with it, which drops the log), applied to the model and to the disk, then
sync(), then prints "STEP" and flushes. A line is printed only after the sync that
made the step durable returned. With `recover` it only opens and closes (recovery is killed).

The parent (test_kill.py) replays the same steps from the same seed, round and starting state,
so it knows the state after every step without any data passing through the pipe.
"""

import random
import sys
from dataclasses import dataclass, field

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.raft.durable import DiskStorage

SEGMENT_BYTES = 65536
ENTRY_BYTES_MAX = 1024
STEPS_MAX = 100_000


@dataclass
class Model:
    """What the child believes is on disk: hard state, snapshot, and the log after it."""

    hard_state: tuple[int, int, int] = (0, 0, 0)
    snap: tuple[int, int, bytes] | None = None  # index, term, data
    log: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # index, term, type, data

    @property
    def snap_index(self) -> int:
        return 0 if self.snap is None else self.snap[0]

    @property
    def last_index(self) -> int:
        return self.log[-1][0] if self.log else self.snap_index

    def term_at(self, index: int) -> int:
        if index == self.snap_index and self.snap is not None:
            return self.snap[1]
        if not self.log or index < self.log[0][0]:
            return 0
        return self.log[index - self.log[0][0]][1]


def model_from(state: tuple[HardState, tuple[SnapshotMeta, bytes] | None, list[Entry]]) -> Model:
    hs, snapshot, entries = state
    snap = None if snapshot is None else (snapshot[0].index, snapshot[0].term, bytes(snapshot[1]))
    return Model(
        (hs.term, hs.vote, hs.commit),
        snap,
        [(e.index, e.term, e.type, bytes(e.data)) for e in entries],
    )


def step_rng(seed: int, round_no: int) -> random.Random:
    return random.Random(seed * 1_000_003 + round_no)


def next_step(rng: random.Random, m: Model) -> tuple[str, object]:
    """The next operation for model state m (deterministic in rng and m), applied to m."""
    term, vote, commit = m.hard_state
    roll = rng.random()
    if roll < 0.7 or not m.log:
        back = rng.randrange(0, 4) if rng.random() < 0.3 else 0
        first = max(m.snap_index + 1, m.last_index + 1 - back)
        new_term = max(term, m.term_at(first - 1), 1) + (1 if back else 0)
        count = rng.randrange(1, 40)
        entries = [
            (first + k, new_term, int(rng.random() < 0.05), rng.randbytes(rng.randrange(0, 200)))
            for k in range(count)
        ]
        del m.log[first - (m.log[0][0] if m.log else first) :]
        m.log.extend(entries)
        m.hard_state = (new_term, vote if new_term == term else rng.randrange(0, 4), commit)
        return "append", entries
    if roll < 0.9:
        m.hard_state = (term + 1, rng.randrange(0, 4), commit)
        return "hard", m.hard_state
    if roll < 0.93:
        # A leader's snapshot that does not match this log (a follower far behind, or on a
        # losing branch): beyond the log or inside it with a newer term; the whole log goes.
        if rng.random() < 0.5:
            index = m.last_index + rng.randrange(1, 6)
        else:
            index = rng.randrange(m.snap_index + 1, m.last_index + 1)
        new_term = max(term, m.term_at(m.last_index)) + 1
        snap = (index, new_term, rng.randbytes(rng.randrange(0, 3000)))
        m.log = []
        m.snap = snap
        m.hard_state = (new_term, 0, max(commit, index))
        return "snapshot", snap
    index = rng.randrange(m.snap_index + 1, m.last_index + 1)
    snap = (index, m.term_at(index), rng.randbytes(rng.randrange(0, 3000)))
    m.log = [e for e in m.log if e[0] > index]
    m.snap = snap
    m.hard_state = (term, vote, max(commit, index))
    return "snapshot", snap


def apply_step(disk: DiskStorage, op: str, arg: object, m: Model) -> None:
    if op == "append":
        entries = arg
        assert isinstance(entries, list)
        disk.append([Entry(t, i, memoryview(d), ty) for i, t, ty, d in entries])
    elif op == "snapshot":
        assert isinstance(arg, tuple)
        index, term, data = arg
        disk.install_snapshot(SnapshotMeta(index, term, ConfState((1, 2, 3))), data)
    disk.set_hard_state(HardState(*m.hard_state))
    disk.sync()


def main() -> None:
    directory, seed, round_no = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4:] == ["recover"]:
        print("opening", flush=True)
        DiskStorage(directory, segment_bytes=SEGMENT_BYTES, entry_bytes_max=ENTRY_BYTES_MAX).close()
        return
    disk = DiskStorage(directory, segment_bytes=SEGMENT_BYTES, entry_bytes_max=ENTRY_BYTES_MAX)
    m = model_from(disk.initial_state())
    rng = step_rng(seed, round_no)
    out = sys.stdout
    for k in range(STEPS_MAX):
        op, arg = next_step(rng, m)
        apply_step(disk, op, arg, m)
        out.write(f"{k}\n")
        out.flush()


if __name__ == "__main__":
    main()
