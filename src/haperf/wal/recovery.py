"""Recovery: read a WAL directory, verify every frame, and say what is torn, stale or corrupt.

Owns the rules that decide whether a log opens, is repaired, or is refused:
- the meta file names the first index and the last segment; segments after the last one were
  made by an interrupted roll or truncation and hold no acknowledged record (stale, removed);
  segments wholly before the first index were being compacted away (stale, removed);
- every segment header must match its file name, the log's salt and its file size; segments
  must chain (one ends at index i, the next starts at i + 1) with no gap, and the first one
  must start at or before the first index;
- every frame of every segment is verified (CRC, magic, type, length, index, salt);
- in the last segment, a damaged final frame with no frame that verifies after it is a torn
  tail: opening truncates it (zero-fills it, fdatasyncs, logs it). Any other damage (a bad
  frame followed by a good one, anything in a sealed segment, a missing or swapped file) is a
  CorruptionError naming the segment file, the byte offset and the record index, and is never
  skipped.
scan_directory only reads; apply_open and repair change files, through a FileOps.
"""

import array
import contextlib
import logging
import mmap
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from haperf._native import wal as native
from haperf.errors import CorruptionError
from haperf.wal.files import FileOps
from haperf.wal.format import (
    META_NAME,
    META_TMP_NAME,
    PREALLOC_NAME,
    SEGMENT_HEADER_BYTES,
    TMP_SUFFIXES,
    Meta,
    SegmentHeader,
    parse_segment_name,
)

log = logging.getLogger("haperf.wal")

# Segments scanned at once when opening (the scan runs without the GIL).
RECOVERY_THREADS_MAX = 4
# Zero-filling writes at most this much per pwrite call.
ZERO_CHUNK_BYTES = 1 << 20


@dataclass(slots=True)
class SegmentScan:
    """One segment file as found: header, frames that verified, and how it ends."""

    first: int
    path: str
    file_bytes: int
    image: mmap.mmap | None = None
    count: int = 0
    end: int = SEGMENT_HEADER_BYTES
    status: int = native.SCAN_CLEAN
    reason: int = 0
    next_valid: int = -1
    data_end: int = SEGMENT_HEADER_BYTES
    offsets: bytes = b""
    # Set when the last segment's file is shorter than its header says: the size it must have.
    short_of: int = 0

    @property
    def last(self) -> int:
        """Index of the last record that verified (first - 1 when empty)."""
        return self.first + self.count - 1

    def close(self) -> None:
        if self.image is not None:
            # A caller may still hold a view of it; it then closes when that view dies.
            with contextlib.suppress(BufferError):
                self.image.close()
            self.image = None


@dataclass(frozen=True, slots=True)
class Damage:
    """Where a log is damaged: segment position in the scan, file, byte offset, record index.

    offset None means the segment file as a whole is unusable (header, size, missing).
    """

    position: int
    path: str
    offset: int | None
    index: int
    what: str

    def message(self) -> str:
        at = "" if self.offset is None else f" at offset {self.offset}"
        return (
            f"WAL corruption in {self.path}{at} (record index {self.index}): {self.what}. "
            "Nothing was skipped or removed; restore from a replica or backup, or run "
            "`python -m haperf wal repair DIR --yes` to truncate the log at this point "
            "(it keeps a copy of what it removes)"
        )


@dataclass(slots=True)
class DirScan:
    """What scan_directory found; nothing has been changed yet."""

    directory: str
    meta: Meta | None
    segments: list[SegmentScan] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)
    torn: Damage | None = None
    corruption: Damage | None = None

    @property
    def first_index(self) -> int:
        return 1 if self.meta is None else self.meta.first_index

    @property
    def last_index(self) -> int:
        if not self.segments:
            return self.first_index - 1
        return max(self.segments[-1].last, self.first_index - 1)

    def close(self) -> None:
        for seg in self.segments:
            seg.close()


def _map(path: str) -> tuple[mmap.mmap | None, int]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return None, 0
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ), size
    finally:
        os.close(fd)


def _scan_segment(
    seg: SegmentScan, meta: Meta, record_bytes_max: int, stop: int, is_last: bool
) -> str | None:
    """Map and scan one segment; return what is wrong with its header or size, or None."""
    seg.image, seg.file_bytes = _map(seg.path)
    if seg.image is None or seg.file_bytes < SEGMENT_HEADER_BYTES:
        return f"segment file is {seg.file_bytes} bytes, shorter than its header"
    try:
        header = SegmentHeader.decode(seg.image[:SEGMENT_HEADER_BYTES], seg.path)
    except CorruptionError as exc:
        return str(exc).split(": ", 1)[-1]
    if header.first_index != seg.first:
        return (
            f"segment header says first index {header.first_index} but the file is named for "
            f"{seg.first} (a renamed or swapped file)"
        )
    if header.salt != meta.salt:
        return "segment belongs to another log (salt mismatch)"
    if is_last and seg.file_bytes < header.segment_bytes:
        # The last segment cut short: what is missing is treated like a torn tail (zeros), and
        # opening restores the size.
        seg.short_of = header.segment_bytes
    elif header.segment_bytes != seg.file_bytes:
        return (
            f"segment file is {seg.file_bytes} bytes but its header says "
            f"{header.segment_bytes} (a truncated or extended file)"
        )
    image: mmap.mmap | bytes = seg.image
    if seg.short_of:
        # Scan it as it will be once opening restores the size: the missing bytes are zeros.
        image = seg.image[:] + bytes(seg.short_of - seg.file_bytes)
    status, end, count, offsets, reason, next_valid, data_end = native.scan(
        image, SEGMENT_HEADER_BYTES, seg.first, meta.salt, record_bytes_max, stop
    )
    seg.status, seg.end, seg.count, seg.offsets = status, end, count, offsets
    seg.reason, seg.next_valid, seg.data_end = reason, next_valid, data_end
    return None


def _read_meta(directory: str) -> Meta | None:
    path = os.path.join(directory, META_NAME)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return Meta.decode(data, path)


def _damage_text(seg: SegmentScan) -> str:
    what = native.reason_text(seg.reason)
    if seg.status == native.SCAN_CORRUPT and seg.next_valid >= 0 and seg.next_valid != seg.end:
        what += f", followed by a frame that verifies at offset {seg.next_valid}"
    return what


def scan_directory(directory: str, record_bytes_max: int) -> DirScan:
    """Read and verify every file of a WAL directory; change nothing.

    The result's `corruption` is the first damage that must not be skipped (or None), `torn`
    the torn tail opening would truncate, `stale` the leftover files opening would remove.
    """
    names = sorted(os.listdir(directory))
    result = DirScan(directory, None)
    found: list[tuple[int, str]] = []
    for name in names:
        path = os.path.join(directory, name)
        first = parse_segment_name(name)
        if first is not None:
            found.append((first, path))
        elif name.endswith(TMP_SUFFIXES) or name in (META_TMP_NAME, PREALLOC_NAME):
            result.stale.append((path, "leftover temporary file"))
    meta = _read_meta(directory)
    result.meta = meta
    if meta is None:
        if found:
            result.corruption = Damage(
                0,
                os.path.join(directory, META_NAME),
                None,
                0,
                f"the meta file is missing but {len(found)} segment file(s) exist",
            )
        return result
    kept: list[tuple[int, str]] = []
    for first, path in found:
        if first > meta.last_segment:
            result.stale.append((path, "segment made by an interrupted roll or truncation"))
        else:
            kept.append((first, path))
    while len(kept) >= 2 and kept[1][0] <= meta.first_index:
        result.stale.append((kept[0][1], "segment wholly before the first index (compacted)"))
        kept.pop(0)
    if not kept or kept[-1][0] != meta.last_segment:
        missing = meta.last_segment
        result.corruption = Damage(
            len(kept),
            os.path.join(directory, f"{missing:020d}.wal"),
            None,
            missing,
            "the last segment named by the meta file is missing",
        )
        return result
    if kept[0][0] > meta.first_index:
        result.corruption = Damage(
            0,
            kept[0][1],
            None,
            meta.first_index,
            f"the log starts at index {meta.first_index} but its first segment starts at "
            f"{kept[0][0]} (a segment is missing)",
        )
        return result
    segments = [SegmentScan(first, path, 0) for first, path in kept]
    problems = _scan_all(segments, meta, record_bytes_max)
    result.segments = segments
    for pos, seg in enumerate(segments):
        damage = _check_segment(segments, pos, problems[pos])
        if damage is None:
            continue
        if (
            pos == len(segments) - 1
            and seg.status == native.SCAN_TORN
            and damage.offset is not None
        ):
            result.torn = damage
            continue
        result.corruption = damage
        for later in segments[pos + 1 :]:
            later.close()
        del segments[pos + 1 :]
        return result
    if result.last_index < meta.first_index - 1 or result.segments[-1].last < meta.first_index - 1:
        last = result.segments[-1]
        result.corruption = Damage(
            len(kept) - 1,
            last.path,
            last.end,
            last.last + 1,
            f"the log ends at index {last.last} but its first index is {meta.first_index}",
        )
    return result


def _scan_all(segments: list[SegmentScan], meta: Meta, record_bytes_max: int) -> list[str | None]:
    """Scan every segment, several at once (the native scan releases the GIL)."""
    last = len(segments) - 1

    def work(pos: int) -> str | None:
        limit = meta.truncate_limit if pos == last else None
        stop = limit if limit is not None else 2**64 - 1
        return _scan_segment(segments[pos], meta, record_bytes_max, stop, pos == last)

    workers = min(RECOVERY_THREADS_MAX, os.cpu_count() or 1, len(segments))
    if workers <= 1:
        return [work(pos) for pos in range(len(segments))]
    with ThreadPoolExecutor(workers, thread_name_prefix="haperf-wal-recovery") as pool:
        return list(pool.map(work, range(len(segments))))


def _check_segment(segments: list[SegmentScan], pos: int, problem: str | None) -> Damage | None:
    """The damage of segment `pos` (header, chaining with the previous one, frames), if any."""
    seg = segments[pos]
    if problem is not None:
        return Damage(pos, seg.path, None, seg.first, problem)
    if pos > 0:
        prev = segments[pos - 1]
        if prev.last + 1 != seg.first:
            return Damage(
                pos,
                seg.path,
                None,
                prev.last + 1,
                f"the previous segment ends at index {prev.last} but this one starts at "
                f"{seg.first} (a segment is missing, truncated or swapped)",
            )
    if seg.status in (native.SCAN_CLEAN, native.SCAN_LIMIT):
        return None
    return Damage(pos, seg.path, seg.end, seg.first + seg.count, _damage_text(seg))


def zero_range(ops: FileOps, fd: int, start: int, end: int) -> None:
    """Overwrite [start, end) with zeros, back to front, in bounded chunks."""
    zeros = bytes(min(ZERO_CHUNK_BYTES, max(0, end - start)))
    pos = end
    while pos > start:
        n = min(len(zeros), pos - start)
        pos -= n
        ops.pwrite(fd, memoryview(zeros)[:n], pos)


def write_meta(ops: FileOps, directory: str, meta: Meta) -> None:
    """Replace the meta file atomically: write a temporary, fsync it, rename, fsync the dir."""
    tmp = os.path.join(directory, META_TMP_NAME)
    fd = ops.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        ops.pwrite(fd, meta.encode(), 0)
        ops.fsync(fd)
    finally:
        ops.close(fd)
    ops.rename(tmp, os.path.join(directory, META_NAME))
    ops.fsync_dir(directory)


def cut_segment_tail(ops: FileOps, seg: SegmentScan, offset: int) -> None:
    """Zero-fill seg from offset to its last nonzero byte and fdatasync (a durable truncation)."""
    end = max(seg.data_end, offset)
    if end <= offset:
        return
    fd = ops.open(seg.path, os.O_WRONLY)
    try:
        zero_range(ops, fd, offset, end)
        ops.fdatasync(fd)
    finally:
        ops.close(fd)
    seg.data_end = offset


def apply_open(scan: DirScan, ops: FileOps) -> None:
    """Make the directory match a clean log, or raise CorruptionError; logs every change."""
    if scan.corruption is not None:
        raise CorruptionError(scan.corruption.message())
    for path, why in scan.stale:
        log.warning("WAL recovery: removing %s (%s)", path, why)
        ops.unlink(path)
    if scan.stale:
        ops.fsync_dir(scan.directory)
    if scan.segments:
        last = scan.segments[-1]
        if last.short_of:
            log.warning(
                "WAL recovery: %s is %d bytes, its header says %d; zero-filling the rest",
                last.path,
                last.file_bytes,
                last.short_of,
            )
            fd = ops.open(last.path, os.O_WRONLY)
            try:
                zero_range(ops, fd, last.file_bytes, last.short_of)
                ops.fdatasync(fd)
            finally:
                ops.close(fd)
            last.close()
            last.image, last.file_bytes = _map(last.path)
            last.short_of = 0
        if scan.torn is not None:
            log.warning(
                "WAL recovery: torn tail in %s at offset %d (record index %d: %s); truncating "
                "%d bytes after record %d",
                last.path,
                last.end,
                scan.torn.index,
                scan.torn.what,
                last.data_end - last.end,
                last.last,
            )
            cut_segment_tail(ops, last, last.end)
        elif last.data_end > last.end:
            # A pending truncation (meta limit) or padding: make the tail zero again.
            log.warning(
                "WAL recovery: completing a truncation after record %d in %s", last.last, last.path
            )
            cut_segment_tail(ops, last, last.end)
    if scan.meta is not None and scan.meta.truncate_limit is not None:
        meta = scan.meta
        scan.meta = Meta(meta.log_id, meta.first_index, meta.last_segment, None)
        write_meta(ops, scan.directory, scan.meta)


def repair(scan: DirScan, ops: FileOps) -> str | None:
    """Truncate the log at its first corruption, keeping a copy of everything removed.

    Returns the backup directory (None when there was nothing to repair). Refuses (raises
    CorruptionError) when the damage leaves no usable prefix: a missing or damaged meta file
    or a damaged first segment header.
    """
    damage = scan.corruption
    if damage is None:
        return None
    meta = scan.meta
    if meta is None:
        raise CorruptionError(f"cannot repair: {damage.message()}")
    keep = damage.position if damage.offset is None else damage.position + 1
    if keep == 0:
        raise CorruptionError(f"cannot repair: no usable prefix. {damage.message()}")
    backup = new_backup_dir(scan.directory)
    cut: SegmentScan = scan.segments[keep - 1]
    offset = damage.offset if damage.offset is not None else cut.end
    if cut.image is not None and offset < cut.data_end:
        with open(os.path.join(backup, f"{os.path.basename(cut.path)}.from-{offset}"), "wb") as f:
            f.write(cut.image[offset : cut.data_end])
            f.flush()
            os.fsync(f.fileno())
    for seg in scan.segments[keep:]:
        seg.close()
        shutil.copy2(seg.path, os.path.join(backup, os.path.basename(seg.path)))
    for _first, path in _later_segment_files(scan.directory, cut.first):
        if not os.path.exists(os.path.join(backup, os.path.basename(path))):
            shutil.copy2(path, os.path.join(backup, os.path.basename(path)))
    ops.fsync_dir(backup)
    new_meta = Meta(meta.log_id, meta.first_index, cut.first, None)
    write_meta(ops, scan.directory, new_meta)
    for _first, path in _later_segment_files(scan.directory, cut.first):
        log.warning("WAL repair: removing %s (copied to %s)", path, backup)
        ops.unlink(path)
    ops.fsync_dir(scan.directory)
    log.warning(
        "WAL repair: truncating %s at offset %d (after record %d); removed bytes copied to %s",
        cut.path,
        offset,
        cut.first + _count_before(cut, offset) - 1,
        backup,
    )
    cut_segment_tail(ops, cut, offset)
    return backup


def new_backup_dir(directory: str) -> str:
    """Create DIR/repair-<time>-<pid>/ for bytes a repair removes."""
    backup = os.path.join(directory, f"repair-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.makedirs(backup, exist_ok=True)
    return backup


def save_torn_tail(scan: DirScan, backup: str | None) -> str | None:
    """Copy the bytes a torn-tail truncation will zero into the backup directory (made if
    needed); return the backup directory, or `backup` unchanged when there is no torn tail."""
    if scan.torn is None or not scan.segments:
        return backup
    last = scan.segments[-1]
    if last.image is None or last.end >= last.data_end:
        return backup
    backup = backup or new_backup_dir(scan.directory)
    with open(os.path.join(backup, f"{os.path.basename(last.path)}.from-{last.end}"), "wb") as f:
        f.write(last.image[last.end : last.data_end])
        f.flush()
        os.fsync(f.fileno())
    return backup


def _count_before(seg: SegmentScan, offset: int) -> int:
    offs = array.array("I")
    offs.frombytes(seg.offsets)
    return sum(1 for o in offs if o < offset)


def _later_segment_files(directory: str, first: int) -> list[tuple[int, str]]:
    out = []
    for name in sorted(os.listdir(directory)):
        idx = parse_segment_name(name)
        if idx is not None and idx > first:
            out.append((idx, os.path.join(directory, name)))
    return out
