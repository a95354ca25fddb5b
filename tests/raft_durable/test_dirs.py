"""Bad, foreign and newer data directories are refused with a StorageError naming the file;
one DiskStorage per directory; fsync=False still produces the same files.
"""

import struct
from pathlib import Path

import pytest

from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.checksum import crc32c
from haperf.errors import ConfigError, StorageError
from haperf.raft.durable import (
    HARDSTATE_NAME,
    MARKER_NAME,
    SLOT_BYTES,
    DiskStorage,
    encode_marker,
    encode_slot,
)
from haperf.wal import WAL
from tests.raft_durable.helpers import open_small, plain


def populated(directory: Path) -> None:
    with open_small(directory, fsync=False) as disk:
        disk.append([Entry(1, i, b"x") for i in range(1, 6)])
        disk.set_hard_state(HardState(1, 1, 3))
        disk.sync()


def test_a_foreign_directory_is_refused_and_left_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's")
    with pytest.raises(StorageError, match=f"{tmp_path}: not a haperf Raft data directory"):
        DiskStorage(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    file = tmp_path / "notes.txt"
    with pytest.raises(StorageError, match="not a directory"):
        DiskStorage(file)


def test_a_second_opener_gets_a_clear_error(tmp_path: Path) -> None:
    disk = open_small(tmp_path / "d")
    with pytest.raises(StorageError, match="already open"):
        open_small(tmp_path / "d")
    disk.close()
    open_small(tmp_path / "d").close()


def test_marker_damaged_foreign_or_newer_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    populated(directory)
    marker = directory / MARKER_NAME
    good = marker.read_bytes()
    assert good == encode_marker()
    marker.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(StorageError, match=f"{marker}: not a haperf Raft data directory"):
        open_small(directory)
    marker.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(StorageError, match=f"{marker}: marker checksum"):
        open_small(directory)
    newer = bytearray(good)
    newer[8:10] = struct.pack("<H", 2)
    newer[-4:] = struct.pack("<I", crc32c(bytes(newer[:-4])))
    marker.write_bytes(newer)
    with pytest.raises(StorageError, match=f"{marker}: data directory format version 2"):
        open_small(directory)
    marker.write_bytes(good)
    with open_small(directory) as disk:
        assert disk.last_index == 5


def test_newer_hard_state_slot_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    populated(directory)
    path = directory / HARDSTATE_NAME
    slot = bytearray(encode_slot(99, HardState(5, 1, 0)))
    slot[8:10] = struct.pack("<H", 2)
    slot[-4:] = struct.pack("<I", crc32c(bytes(slot[:-4])))
    image = bytearray(path.read_bytes())
    image[512 : 512 + SLOT_BYTES] = slot
    path.write_bytes(image)
    with pytest.raises(StorageError, match=f"{path}: hard-state slot 1 has format version 2"):
        open_small(directory)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    populated(directory)
    (directory / HARDSTATE_NAME).unlink()
    with pytest.raises(StorageError, match=f"{directory / HARDSTATE_NAME} is missing"):
        open_small(directory)
    directory = tmp_path / "e"
    populated(directory)
    with open_small(directory, fsync=False) as disk:
        disk.install_snapshot(SnapshotMeta(9, 2, ConfState((1,))), b"s")  # beyond the log
        snap = Path(disk.snapshot_path or "")
    snap.unlink()
    with pytest.raises(StorageError, match="log starts at index 10 but there is no snapshot"):
        open_small(directory)
    (directory / "snap" / "README").write_text("x")
    with pytest.raises(StorageError, match="unexpected file in the snapshot directory"):
        open_small(directory)


def test_snapshot_file_renamed_to_another_index_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    populated(directory)
    with open_small(directory, fsync=False) as disk:
        disk.install_snapshot(SnapshotMeta(3, 1, ConfState((1,))), b"s")
        snap = Path(disk.snapshot_path or "")
    moved = snap.with_name("00000000000000000002.snap")
    snap.rename(moved)
    with pytest.raises(StorageError, match=f"{moved}: holds the snapshot of index 3"):
        open_small(directory)


def test_a_log_of_something_else_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    open_small(directory).close()
    # A WAL written directly, not by DiskStorage: its records are not Raft entries.
    with WAL(directory / "wal", segment_bytes=8192, record_bytes_max=1033) as wal:
        wal.append(b"\xff not an entry")
    with open_small(directory) as disk, pytest.raises(StorageError, match="not a Raft entry"):
        disk.initial_state()


def test_damaged_log_segment_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    populated(directory)
    segment = sorted((directory / "wal").glob("*.wal"))[0]
    image = bytearray(segment.read_bytes())
    image[40] ^= 0xFF  # inside the first record, followed by records that verify
    segment.write_bytes(image)
    with pytest.raises(StorageError, match=str(segment)):
        open_small(directory)


def test_closed_storage_refuses_calls(tmp_path: Path) -> None:
    disk = open_small(tmp_path / "d")
    disk.close()
    disk.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        disk.append([Entry(1, 1, b"x")])
    with pytest.raises(StorageError, match="closed"):
        disk.sync()


def test_fsync_false_writes_the_same_state(tmp_path: Path) -> None:
    states = []
    for fsync in (True, False):
        directory = tmp_path / str(fsync)
        populated(directory)
        with open_small(directory, fsync=fsync) as disk:
            disk.install_snapshot(SnapshotMeta(2, 1, ConfState((1, 2))), b"snap")
            disk.append([Entry(2, 6, memoryview(b"view"))])
            disk.sync()
        with open_small(directory) as disk:
            states.append(plain(disk.initial_state()))
    assert states[0] == states[1]


def test_bad_configuration_raises_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="segment of 4096 bytes"):
        DiskStorage(tmp_path / "d", segment_bytes=4096, entry_bytes_max=8192)
    with pytest.raises(ConfigError, match="segment_bytes must be a multiple of 8 in 4096"):
        DiskStorage(tmp_path / "d", segment_bytes=1024, entry_bytes_max=100)
    with pytest.raises(ConfigError, match="entry_bytes_max"):
        DiskStorage(tmp_path / "d", entry_bytes_max=0)
    assert not (tmp_path / "d").exists()
    with DiskStorage(tmp_path / "d", segment_bytes=4096, entry_bytes_max=4096 - 32 - 24 - 16):
        pass
