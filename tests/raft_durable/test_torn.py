"""Torn writes and damage in the hard-state file and the snapshot file.

Hard state: every slot write is torn at every byte (the first k bytes new, the rest old, zero or
garbage): opening gives the previous hard state (or, when that one only moved the commit index,
which is written but not fsynced, the last one whose term and vote were fsynced), or the new one
once the slot is whole, never anything else. Snapshot: a temporary file cut at every byte is
ignored (the previous snapshot stays); the installed file cut short or with a flipped byte at
every offset is a StorageError naming the file, never other data.
"""

import itertools
import shutil
from pathlib import Path

import pytest

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.errors import StorageError
from haperf.raft.durable import HARDSTATE_NAME, SLOT_BYTES, SLOT_STRIDE, TMP_SUFFIX
from tests.raft_durable.helpers import open_small, plain

FILLS = {"old": None, "zero": 0x00, "garbage": 0xA5}


def hard_state_of(directory: Path) -> tuple[int, int, int]:
    with open_small(directory, fsync=False) as disk:
        hs = disk.initial_state()[0]
        return hs.term, hs.vote, hs.commit


def test_torn_hard_state_slot_writes_fall_back_to_the_previous_state(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    path = directory / HARDSTATE_NAME
    states = [(0, 0, 0), (1, 1, 0), (2, 3, 5), (2, 3, 9), (7, 0, 9)]
    images = []
    with open_small(directory, fsync=False) as disk:
        images.append(path.read_bytes())
        for term, vote, commit in states[1:]:
            disk.set_hard_state(HardState(term, vote, commit))
            disk.sync()
            images.append(path.read_bytes())
    durable = [states[0]]
    for prev, cur in itertools.pairwise(states):
        durable.append(cur if cur[:2] != prev[:2] else durable[-1])
    checked = 0
    for step in range(1, len(states)):
        old, new = images[step - 1], images[step]
        changed = [k for k in (0, 1) if old[k * SLOT_STRIDE : k * SLOT_STRIDE + SLOT_BYTES]
                   != new[k * SLOT_STRIDE : k * SLOT_STRIDE + SLOT_BYTES]]
        assert len(changed) == 1, "one write touches exactly one slot"
        start = changed[0] * SLOT_STRIDE
        for cut in range(SLOT_BYTES + 1):
            for fill in FILLS.values():
                torn = bytearray(old)
                torn[start : start + cut] = new[start : start + cut]
                if fill is not None:
                    torn[start + cut : start + SLOT_BYTES] = bytes([fill]) * (SLOT_BYTES - cut)
                path.write_bytes(torn)
                got = hard_state_of(directory)
                if bytes(torn) == new:
                    assert got == states[step]
                else:
                    # The previous state, or (when that one only moved the commit index, which
                    # is written but not fsynced) the last state whose term and vote were synced.
                    assert got in (states[step - 1], durable[step - 1]), (step, cut, fill)
                checked += 1
    assert checked == (len(states) - 1) * (SLOT_BYTES + 1) * len(FILLS)


def test_both_slots_damaged_is_an_error_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    with open_small(directory, fsync=False) as disk:
        for term in (1, 2):
            disk.set_hard_state(HardState(term, 1, 0))
            disk.sync()
    path = directory / HARDSTATE_NAME
    image = bytearray(path.read_bytes())
    image[20] ^= 0x01
    image[SLOT_STRIDE + 20] ^= 0x01
    path.write_bytes(image)
    with pytest.raises(StorageError, match=str(path)):
        open_small(directory)
    path.write_bytes(bytes(image[:100]))
    with pytest.raises(StorageError, match=f"{path}.*bytes"):
        open_small(directory)


def snapshot_dir(tmp_path: Path) -> tuple[Path, object, object]:
    """A directory with a snapshot at 5 and entries 6..12; returns it, its state and snap file."""
    directory = tmp_path / "d"
    with open_small(directory, fsync=False) as disk:
        disk.append([Entry(1, i, b"%d" % i) for i in range(1, 13)])
        disk.install_snapshot(SnapshotMeta(5, 1, ConfState((1, 2, 3), (4,))), b"S" * 40)
        disk.set_hard_state(HardState(1, 1, 7))
        disk.sync()
        state = plain(disk.initial_state())
        assert disk.snapshot_path is not None
        snap = Path(disk.snapshot_path)
    return directory, state, snap


def test_torn_snapshot_temporary_file_leaves_the_previous_snapshot(tmp_path: Path) -> None:
    directory, before, _ = snapshot_dir(tmp_path)
    done = tmp_path / "done"
    shutil.copytree(directory, done)
    with open_small(done, fsync=False) as disk:
        disk.install_snapshot(SnapshotMeta(9, 1, ConfState((1, 2, 3))), b"T" * 40)
        newer = Path(disk.snapshot_path or "")
    image = newer.read_bytes()
    for cut in range(len(image) + 1):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(directory, work)
        torn = work / "snap" / (newer.name + TMP_SUFFIX)
        torn.write_bytes(image[:cut])  # the crash came before the rename
        with open_small(work, fsync=False) as disk:
            assert plain(disk.initial_state()) == before
        assert not torn.exists()
        shutil.rmtree(work)


def test_damaged_snapshot_file_is_an_error_naming_it(tmp_path: Path) -> None:
    directory, before, snap = snapshot_dir(tmp_path)
    image = snap.read_bytes()
    for cut in range(len(image)):
        snap.write_bytes(image[:cut])
        with pytest.raises(StorageError, match=str(snap)):
            open_small(directory, fsync=False)
    for offset in range(len(image)):
        flipped = bytearray(image)
        flipped[offset] ^= 0x10
        snap.write_bytes(flipped)
        with pytest.raises(StorageError, match=str(snap)):
            open_small(directory, fsync=False)
    snap.write_bytes(image + b"\0")
    with pytest.raises(StorageError, match=str(snap)):
        open_small(directory, fsync=False)
    snap.write_bytes(image)
    with open_small(directory, fsync=False) as disk:
        assert plain(disk.initial_state()) == before
