"""Property test of the simulated disk's crash model against a reference.

For random sequences of appends (some overwriting a suffix), hard-state writes, syncs and
crashes: a plain crash leaves exactly the state at the last sync; a crash that keeps a prefix
leaves one of the states the node passed through since that sync (a torn append counts: it is
the state after appending only part of the batch). Entries always stay contiguous.
"""

import random

from hypothesis import given
from hypothesis import strategies as st

from haperf._native.raftmsg import Entry
from haperf.sim.disk import SimDisk

Op = tuple[str, int, int]


def _view(disk: SimDisk) -> tuple[object, tuple[tuple[int, int, bytes], ...]]:
    v = disk.volatile
    return v.hard_state, tuple((int(e.index), int(e.term), bytes(e.data)) for e in v.entries)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 4)),
        st.tuples(st.just("hs"), st.integers(0, 99), st.just(0)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
        st.tuples(st.just("crash"), st.integers(0, 1_000), st.integers(0, 1)),
    ),
    max_size=40,
)


@given(ops)
def test_crash_leaves_a_state_the_node_passed_through(sequence: list[Op]) -> None:
    disk = SimDisk()
    synced = _view(disk)
    since_sync = [synced]  # every state since the last sync, in order
    term = 1
    for kind, a, b in sequence:
        if kind == "append":
            last = disk.volatile.last_index
            first = max(1, last + 1 - a)  # overwrite up to `a` entries at the tail
            term += 1
            entries = [Entry(term, i, f"{i}/{term}".encode()) for i in range(first, first + b)]
            for k in range(1, b):  # a torn append leaves any prefix of the batch
                partial = SimDisk()
                partial.volatile = disk.volatile.copy()
                partial.append(entries[:k])
                since_sync.append(_view(partial))
            disk.append(entries)
            since_sync.append(_view(disk))
        elif kind == "hs":
            disk.set_hard_state(("hs", a))
            since_sync.append(_view(disk))
        elif kind == "sync":
            disk.sync()
            synced = _view(disk)
            since_sync = [synced]
        else:
            keep = b == 1
            disk.crash(random.Random(a), keep_prefix=keep)
            after = _view(disk)
            if keep:
                assert after in since_sync
            else:
                assert after == synced
            synced = after
            since_sync = [synced]
        indexes = [e.index for e in disk.volatile.entries]
        assert indexes == list(range(1, len(indexes) + 1))
