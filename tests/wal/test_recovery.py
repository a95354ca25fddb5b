"""Recovery: torn writes at every byte of the last records, bit flips, damaged and missing files.

The rules under test (docs/wal.md, Recovery): a damaged final frame with nothing valid after it
is a torn tail, truncated (zero-filled and fdatasynced) and logged; damage followed by a valid
frame, damage in a sealed segment, and missing, swapped or foreign files raise CorruptionError
naming the segment, the offset and the index; nothing is ever skipped.
"""

import array
import logging
import shutil
from pathlib import Path

import pytest

from haperf._native import wal as native
from haperf.errors import CorruptionError
from haperf.wal.files import OsFileOps
from haperf.wal.format import META_NAME, META_TMP_NAME, PREALLOC_NAME, Meta, segment_name
from haperf.wal.recovery import write_meta
from tests.wal.helpers import NoSyncOps, open_small, payload, segment_files

RECORDS = 40  # fits in one 16 KiB segment (payloads are at most 300 bytes)


def build(directory: Path, n: int = RECORDS) -> list[tuple[int, int]]:
    """A closed log of n records in one segment; returns each record's (start, covered_end)."""
    with open_small(directory) as wal:
        wal.append_batch([payload(i) for i in range(1, n + 1)])
        wal.sync()
        seg = wal._segments[-1]
        assert len(wal._segments) == 1
        offsets = list(seg.offsets)
    return [(off, off + native.HEADER_BYTES + len(payload(i + 1))) for i, off in enumerate(offsets)]


def frame_end(start: int, index: int) -> int:
    return start + len(native.encode(payload(index), index, 0))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    directory = tmp_path_factory.mktemp("pristine")
    return directory, build(directory)


def check_survivors(directory: Path, expect_last: int) -> None:
    with open_small(directory, sync_policy="none", file_ops=NoSyncOps()) as wal:
        assert wal.last_index == expect_last
        assert [bytes(v) for v in wal.iterate()] == [payload(i) for i in range(1, expect_last + 1)]
        assert wal.append(b"after-recovery") == expect_last + 1
    # A second open finds a clean log (the truncation was written, not left to redo).
    with open_small(directory, sync_policy="none", file_ops=NoSyncOps()) as wal:
        assert wal.last_index == expect_last + 1


def overwrite(path: Path, data: bytes) -> None:
    """Replace a file's content in place (no O_TRUNC: on ext4 that forces a flush per case)."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))


@pytest.mark.parametrize("mode", ["truncated", "zero", "garbage"])
def test_torn_write_at_every_byte_of_the_last_records(
    tmp_path: Path, pristine: tuple[Path, list[tuple[int, int]]], mode: str
) -> None:
    source, spans = pristine
    last_three = spans[-3:]
    first_torn = RECORDS - 2
    lo = last_three[0][0]
    hi = frame_end(last_three[-1][0], RECORDS)
    work = tmp_path / mode
    shutil.copytree(source, work)
    seg = segment_files(work)[0]
    original = seg.read_bytes()
    meta = (work / META_NAME).read_bytes()
    for cut in range(lo, hi):
        # Restore the pristine log in place (cheaper than a copy per case), then damage it.
        overwrite(work / META_NAME, meta)
        if mode == "truncated":
            overwrite(seg, original[:cut])
        elif mode == "zero":
            overwrite(seg, original[:cut] + bytes(hi - cut) + original[hi:])
        else:
            garbage = bytes((7 * i + 1) % 256 | 1 for i in range(hi - cut))
            overwrite(seg, original[:cut] + garbage + original[hi:])
        # The record holding `cut` is lost, unless only its (zero) padding was zeroed/cut.
        k = first_torn + next(
            i for i, (s, _) in enumerate(last_three) if cut < frame_end(s, first_torn + i)
        )
        covered_end = spans[k - 1][1]
        survivors = k if (mode != "garbage" and cut >= covered_end) else k - 1
        check_survivors(work, survivors)


def test_torn_tail_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spans = build(tmp_path)
    seg = segment_files(tmp_path)[0]
    with open(seg, "r+b") as f:
        f.seek(spans[-1][0] + 5)
        f.write(b"\xff" * 10)
    with caplog.at_level(logging.WARNING, logger="haperf.wal"):
        check_survivors(tmp_path, RECORDS - 1)
    assert any("torn tail" in r.message and str(seg) in r.message for r in caplog.records)


def flip(path: Path, offset: int, mask: int = 0x04) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


@pytest.mark.parametrize(
    "where", ["header-crc", "header-length", "header-index", "payload", "padding"]
)
def test_bit_flip_in_the_middle_is_corruption_naming_file_offset_index(
    tmp_path: Path, where: str
) -> None:
    spans = build(tmp_path)
    target = 10  # record index 11 (0-based 10)
    start, covered = spans[target]
    offset = {
        "header-crc": start + 1,
        "header-length": start + 5,
        "header-index": start + 9,
        "payload": start + 30,
        "padding": covered,
    }[where]
    if where == "padding" and covered == frame_end(start, target + 1):
        offset = start + 30  # this record has no padding; flip its payload instead
    seg = segment_files(tmp_path)[0]
    flip(seg, offset)
    with pytest.raises(CorruptionError) as info:
        open_small(tmp_path)
    message = str(info.value)
    assert str(seg) in message and f"offset {start}" in message and "record index 11" in message
    # Never skipped: the files are untouched and the error repeats.
    with pytest.raises(CorruptionError):
        open_small(tmp_path)


def test_damage_in_a_sealed_segment_is_corruption_even_at_its_end(tmp_path: Path) -> None:
    with open_small(tmp_path) as wal:
        wal.append_batch([payload(i) for i in range(1, 301)])
        wal.sync()
        sealed = wal._segments[0]
        last_off = sealed.offsets[-1]
        path = Path(sealed.path)
    flip(path, last_off + native.HEADER_BYTES)
    with pytest.raises(CorruptionError, match=f"{path.name} at offset {last_off}"):
        open_small(tmp_path)


def test_segment_and_meta_header_damage(tmp_path: Path) -> None:
    build(tmp_path)
    seg = segment_files(tmp_path)[0]
    flip(seg, 17)  # first index field of the segment header
    with pytest.raises(CorruptionError, match="segment header checksum"):
        open_small(tmp_path)
    flip(seg, 17)
    flip(tmp_path / META_NAME, 25)
    with pytest.raises(CorruptionError, match="meta file checksum"):
        open_small(tmp_path)


def multi_segment(directory: Path) -> list[Path]:
    with open_small(directory) as wal:
        wal.append_batch([payload(i) for i in range(1, 401)])
    files = segment_files(directory)
    assert len(files) >= 4
    return files


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_deleted_segment_is_corruption(tmp_path: Path, which: str) -> None:
    files = multi_segment(tmp_path)
    victim = {"first": files[0], "middle": files[1], "last": files[-1]}[which]
    victim.unlink()
    with pytest.raises(CorruptionError, match="missing"):
        open_small(tmp_path)


def test_deleted_meta_is_corruption(tmp_path: Path) -> None:
    multi_segment(tmp_path)
    (tmp_path / META_NAME).unlink()
    with pytest.raises(CorruptionError, match="meta file is missing"):
        open_small(tmp_path)


def test_truncated_sealed_segment_is_corruption(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    with open(files[1], "r+b") as f:
        f.truncate(5000)
    with pytest.raises(CorruptionError, match="truncated"):
        open_small(tmp_path)


def test_truncated_last_segment_is_a_torn_tail(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    with open_small(tmp_path) as wal:
        last_seg = wal._segments[-1]
        offs = array.array("I", last_seg.offsets)
        first = last_seg.first
    with open(files[-1], "r+b") as f:
        f.truncate(offs[2] + 3)
    check_survivors(tmp_path, first + 1)
    assert files[-1].stat().st_size == 16384  # size restored


def test_swapped_segments_are_corruption(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    tmp = tmp_path / "swap"
    files[1].rename(tmp)
    files[2].rename(files[1])
    tmp.rename(files[2])
    with pytest.raises(CorruptionError, match="renamed or swapped"):
        open_small(tmp_path)


def test_segment_of_another_log_is_corruption(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    multi_segment(a)
    multi_segment(b)
    shutil.copy(segment_files(b)[1], segment_files(a)[1])
    with pytest.raises(CorruptionError, match="another log"):
        open_small(a)


def test_leftovers_of_interrupted_operations_are_removed(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    meta = Meta.decode((tmp_path / META_NAME).read_bytes(), "meta")
    (tmp_path / PREALLOC_NAME).write_bytes(bytes(100))
    (tmp_path / META_TMP_NAME).write_bytes(b"half")
    # A segment past the meta's last segment: an interrupted roll (it holds no records).
    beyond = tmp_path / segment_name(meta.last_segment + 10_000)
    shutil.copy(files[-1], beyond)
    with open_small(tmp_path) as wal:
        assert wal.last_index == 400
    assert not beyond.exists() and not (tmp_path / PREALLOC_NAME).exists()
    assert not (tmp_path / META_TMP_NAME).exists()


def test_interrupted_truncation_is_completed(tmp_path: Path) -> None:
    """A crash after truncate_after wrote its intent: recovery finishes the truncation."""
    multi_segment(tmp_path)
    meta = Meta.decode((tmp_path / META_NAME).read_bytes(), "meta")
    firsts = [int(p.stem) for p in segment_files(tmp_path)]
    target = firsts[1]
    write_meta(OsFileOps(), str(tmp_path), Meta(meta.log_id, meta.first_index, target, target + 3))
    with open_small(tmp_path) as wal:
        assert wal.last_index == target + 3
        assert wal.read(target + 3) == payload(target + 3)
        assert len(segment_files(tmp_path)) == 2
    with open_small(tmp_path) as wal:
        assert wal.last_index == target + 3
