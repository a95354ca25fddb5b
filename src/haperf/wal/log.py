"""haperf.wal.WAL: a durable, append-only, segmented log with group commit.

Owns the write path (framing buffer -> one pwrite per batch -> fdatasync), segment rolling and
preallocation, reads, Raft-style truncation and compaction, and the failure rules.

Invariants:
- Records have contiguous indexes first_index..last_index. Records [first, flushed_next) are in
  segment files, [flushed_next, next_index) still in the framing buffer.
- A record is reported durable (append under "always", append_durable, wait_durable, sync)
  only after an fdatasync that covered it returned without error.
- Any error writing or syncing poisons the WAL: the error is kept, and every later append,
  sync, truncation or compaction raises it (WALPoisonedError, or WALFullError for ENOSPC).
  An fsync is never retried after it failed, and nothing is reported durable after it.
- Segment files are only created by renaming a fully zero-filled, fsynced file, then fsyncing
  the directory; the meta file is only replaced by write-temp/fsync/rename/fsync-dir. Removing a
  segment is followed by a directory fsync before the operation returns.
- One WAL per directory: an exclusive flock on DIR/LOCK, held until close().
"""

from __future__ import annotations

import array
import bisect
import contextlib
import errno
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from haperf._native import wal as native
from haperf.errors import (
    ConfigError,
    CorruptionError,
    WALClosedError,
    WALError,
    WALFullError,
    WALIndexError,
    WALLockedError,
    WALPoisonedError,
)
from haperf.wal.files import FileOps, OsFileOps
from haperf.wal.format import (
    LOCK_NAME,
    PREALLOC_NAME,
    SEGMENT_HEADER_BYTES,
    Meta,
    SegmentHeader,
    segment_name,
)
from haperf.wal.recovery import apply_open, scan_directory, write_meta, zero_range

if TYPE_CHECKING:
    from typing_extensions import Buffer

log = logging.getLogger("haperf.wal")

SyncPolicy = Literal["always", "group", "interval", "none"]
SYNC_POLICIES: tuple[SyncPolicy, ...] = ("always", "group", "interval", "none")

SEGMENT_BYTES_DEFAULT = 64 << 20
SEGMENT_BYTES_MIN = 4096
SEGMENT_BYTES_MAX = (1 << 32) - 4096
RECORD_BYTES_MAX_DEFAULT = 1 << 20
BUFFER_BYTES_DEFAULT = 4 << 20
SYNC_INTERVAL_NS_DEFAULT = 10_000_000
GROUP_DELAY_NS_DEFAULT = 0
GROUP_DELAY_NS_MAX = 100_000_000
GROUP_BYTES_MAX_DEFAULT = 1 << 20
# A syncer that waits for a bigger batch looks at the buffer this many times over the delay.
GROUP_DELAY_STEPS = 8
INTERVAL_NS_MIN = 100_000
# Zero-filling a new segment writes this much per call.
FILL_CHUNK_BYTES = 1 << 20
# How many times a read retries when a flush races it (a flush moves records buffer -> file).
READ_RETRIES_MAX = 4


class _Segment:
    """One open segment: its mapping for reads, the offsets of its records, its write position."""

    __slots__ = ("fd", "first", "image", "offsets", "path", "size", "view", "write_pos")

    def __init__(
        self,
        first: int,
        path: str,
        *,
        image: mmap.mmap,
        offsets: array.array[int],
        write_pos: int,
        size: int,
        fd: int = -1,
    ) -> None:
        self.first = first
        self.path = path
        self.image = image
        self.view = memoryview(image)
        self.offsets = offsets
        self.write_pos = write_pos
        self.size = size
        self.fd = fd

    def release(self, ops: FileOps) -> None:
        """Close the write descriptor and the mapping (the mapping stays while views exist)."""
        if self.fd >= 0:
            ops.close(self.fd)
            self.fd = -1
        self.view.release()
        # A caller may hold a zero-copy view; the mapping then closes when that view dies.
        with contextlib.suppress(BufferError):
            self.image.close()


def _lock_directory(directory: str) -> int:
    path = os.path.join(directory, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALLockedError(
            f"WAL directory {directory} is already open (by this or another process); a WAL "
            "has a single writer: close the other WAL first"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # Fixed width, so no truncate is needed (on ext4 truncating a file to 0 forces a flush).
    os.pwrite(fd, f"{os.getpid():>20}\n".encode(), 0)
    return fd


def check_config(
    *,
    sync_policy: str = "group",
    segment_bytes: int = SEGMENT_BYTES_DEFAULT,
    record_bytes_max: int = RECORD_BYTES_MAX_DEFAULT,
    buffer_bytes: int = BUFFER_BYTES_DEFAULT,
    sync_interval_ns: int = SYNC_INTERVAL_NS_DEFAULT,
    group_delay_ns: int = GROUP_DELAY_NS_DEFAULT,
    group_bytes_max: int = GROUP_BYTES_MAX_DEFAULT,
    first_index: int = 1,
) -> None:
    """The WAL constructor's option checks (ConfigError), without touching the disk: a layer
    that creates files of its own around a WAL calls it first."""
    if sync_policy not in SYNC_POLICIES:
        raise ConfigError(
            f"sync_policy must be one of {', '.join(SYNC_POLICIES)}, got {sync_policy!r}"
        )
    if not SEGMENT_BYTES_MIN <= segment_bytes <= SEGMENT_BYTES_MAX or segment_bytes % 8:
        raise ConfigError(
            f"segment_bytes must be a multiple of 8 in {SEGMENT_BYTES_MIN}..{SEGMENT_BYTES_MAX}, "
            f"got {segment_bytes}"
        )
    frame_max = native.HEADER_BYTES + ((record_bytes_max + 7) & ~7)
    if not 1 <= record_bytes_max <= native.RECORD_BYTES_LIMIT:
        raise ConfigError(
            f"record_bytes_max must be in 1..{native.RECORD_BYTES_LIMIT}, got {record_bytes_max}"
        )
    if frame_max > segment_bytes - SEGMENT_HEADER_BYTES:
        raise ConfigError(
            f"record_bytes_max={record_bytes_max} does not fit a segment of {segment_bytes} "
            f"bytes; raise segment_bytes to at least {frame_max + SEGMENT_HEADER_BYTES}"
        )
    if buffer_bytes < frame_max or buffer_bytes > 1 << 31:
        raise ConfigError(
            f"buffer_bytes must hold one record of record_bytes_max ({frame_max} bytes) and be "
            f"at most 2 GiB, got {buffer_bytes}"
        )
    if sync_interval_ns < INTERVAL_NS_MIN:
        raise ConfigError(f"sync_interval_ns must be >= {INTERVAL_NS_MIN}, got {sync_interval_ns}")
    if not 0 <= group_delay_ns <= GROUP_DELAY_NS_MAX:
        raise ConfigError(
            f"group_delay_ns must be in 0..{GROUP_DELAY_NS_MAX}, got {group_delay_ns}"
        )
    if group_bytes_max < 1:
        raise ConfigError(f"group_bytes_max must be >= 1, got {group_bytes_max}")
    if first_index < 1:
        raise ConfigError(f"first_index must be >= 1, got {first_index}")


class WAL:
    """A write-ahead log in one directory. Thread-safe for appends, reads and syncs.

    append(data, index=0) -> index: frames the record into the buffer (index, when nonzero,
    must be the next index, as a Raft follower appends). Under sync_policy "always" it also
    fdatasyncs before returning; otherwise the record is durable after sync(),
    wait_durable(index) or append_durable(data) (group commit: concurrent callers share one
    fdatasync), or within sync_interval_ns under "interval". "none" never fdatasyncs (tests).

    `append` and `append_batch` are bound at construction to the native buffer for the
    buffered policies, so a call costs one C method call.
    """

    append: Callable[..., int]

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sync_policy: SyncPolicy = "group",
        segment_bytes: int = SEGMENT_BYTES_DEFAULT,
        record_bytes_max: int = RECORD_BYTES_MAX_DEFAULT,
        buffer_bytes: int = BUFFER_BYTES_DEFAULT,
        sync_interval_ns: int = SYNC_INTERVAL_NS_DEFAULT,
        group_delay_ns: int = GROUP_DELAY_NS_DEFAULT,
        group_bytes_max: int = GROUP_BYTES_MAX_DEFAULT,
        first_index: int = 1,
        file_ops: FileOps | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if os.name != "posix":
            raise WALError(
                "haperf.wal needs a POSIX system (flock, fdatasync, mmap); it is not supported "
                f"on {os.name}"
            )
        check_config(
            sync_policy=sync_policy,
            segment_bytes=segment_bytes,
            record_bytes_max=record_bytes_max,
            buffer_bytes=buffer_bytes,
            sync_interval_ns=sync_interval_ns,
            group_delay_ns=group_delay_ns,
            group_bytes_max=group_bytes_max,
            first_index=first_index,
        )
        self.directory = os.fspath(directory)
        self.sync_policy: SyncPolicy = sync_policy
        self.segment_bytes = segment_bytes
        self.record_bytes_max = record_bytes_max
        self.sync_interval_ns = sync_interval_ns
        self.group_delay_ns = group_delay_ns
        self.group_bytes_max = group_bytes_max
        self._clock_ns = clock_ns
        self._ops: FileOps = file_ops if file_ops is not None else OsFileOps()
        self._io_lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._syncing = False
        self._failure: WALError | None = None
        self._closed = False
        self._segments: list[_Segment] = []
        self._firsts: list[int] = []
        self._prealloc_thread: threading.Thread | None = None
        self._prealloc_ready = False
        self._prealloc_error: OSError | None = None
        self._interval_thread: threading.Thread | None = None
        self._stop = threading.Event()
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            # The new directory's own entry must survive a crash too.
            self._ops.fsync_dir(os.path.dirname(os.path.abspath(self.directory)))
        self._lock_fd = _lock_directory(self.directory)
        try:
            self._open(first_index, buffer_bytes)
        except BaseException:
            for seg in self._segments:
                seg.release(self._ops)
            os.close(self._lock_fd)
            raise
        if sync_policy == "always":
            self.append = self._append_always
        else:
            self.append = self._fb.append
        if sync_policy == "interval":
            self._interval_thread = threading.Thread(
                target=self._interval_job, name="haperf-wal-sync", daemon=True
            )
            self._interval_thread.start()

    @classmethod
    def open(cls, directory: str | os.PathLike[str], **options: object) -> WAL:
        """Same as WAL(directory, **options)."""
        return cls(directory, **options)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------- opening

    def _open(self, first_index: int, buffer_bytes: int) -> None:
        scan = scan_directory(self.directory, native.RECORD_BYTES_LIMIT)
        try:
            if scan.meta is None and scan.corruption is None:
                apply_open(scan, self._ops)
                self._create(first_index)
            else:
                apply_open(scan, self._ops)
                assert scan.meta is not None
                self._meta = scan.meta
                for pos, found in enumerate(scan.segments):
                    assert found.image is not None
                    offsets = array.array("I")
                    offsets.frombytes(found.offsets)
                    fd = -1
                    if pos == len(scan.segments) - 1:
                        fd = self._ops.open(found.path, os.O_RDWR)
                    seg = _Segment(
                        found.first,
                        found.path,
                        image=found.image,
                        offsets=offsets,
                        write_pos=found.end,
                        size=found.file_bytes,
                        fd=fd,
                    )
                    found.image = None  # now owned by seg
                    self._segments.append(seg)
                    self._firsts.append(seg.first)
                if self.sync_policy != "none":
                    # What recovery found may be only in the page cache (a process crash
                    # keeps unsynced writes there): make it durable before building on it.
                    self._ops.fdatasync(self._segments[-1].fd)
        finally:
            scan.close()
        active = self._segments[-1]
        next_index = max(active.first + len(active.offsets), self._meta.first_index)
        self._first_index = self._meta.first_index
        self._flushed_next = next_index
        self._synced_index = next_index - 1
        self._fb = native.FrameBuffer(
            buffer_bytes, self.record_bytes_max, next_index, self._meta.salt, self._on_full
        )
        if active.write_pos * 2 >= active.size:
            self._start_prealloc()

    def _create(self, first_index: int) -> None:
        log_id = int.from_bytes(os.urandom(8), "little") | 1
        self._meta = Meta(log_id, first_index, first_index)
        seg = self._new_segment(first_index)
        write_meta(self._ops, self.directory, self._meta)
        self._segments.append(seg)
        self._firsts.append(seg.first)

    # ----------------------------------------------------------------------------- segments

    def _fill_file(self, path: str, size: int) -> None:
        """Create `path` as `size` zero bytes, written for real (not sparse) and fsynced."""
        fd = self._ops.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            zero_range(self._ops, fd, 0, size)
            self._ops.fsync(fd)
        finally:
            self._ops.close(fd)

    def _prealloc_job(self) -> None:
        try:
            self._fill_file(os.path.join(self.directory, PREALLOC_NAME), self.segment_bytes)
            self._prealloc_ready = True
        except OSError as exc:
            self._prealloc_error = exc

    def _start_prealloc(self) -> None:
        if self._prealloc_thread is not None or self._prealloc_ready or self._closed:
            return
        self._prealloc_error = None
        self._prealloc_thread = threading.Thread(
            target=self._prealloc_job, name="haperf-wal-prealloc", daemon=True
        )
        self._prealloc_thread.start()

    def _take_prealloc(self) -> str:
        """The path of a zero-filled, fsynced file of segment_bytes (waits for the thread)."""
        path = os.path.join(self.directory, PREALLOC_NAME)
        thread = self._prealloc_thread
        if thread is not None:
            thread.join()
            self._prealloc_thread = None
        if not self._prealloc_ready:
            # Not prepared ahead (or it failed): fill it now, on the caller's time.
            self._fill_file(path, self.segment_bytes)
        self._prealloc_ready = False
        return path

    def _new_segment(self, first: int) -> _Segment:
        """Turn a preallocated file into segment `first`: header, fdatasync, rename, dir fsync."""
        prealloc = self._take_prealloc()
        path = os.path.join(self.directory, segment_name(first))
        fd = self._ops.open(prealloc, os.O_RDWR)
        try:
            self._ops.pwrite(
                fd, SegmentHeader(self._meta.salt, first, self.segment_bytes).encode(), 0
            )
            self._ops.fdatasync(fd)
            self._ops.rename(prealloc, path)
            self._ops.fsync_dir(self.directory)
            image = mmap.mmap(fd, self.segment_bytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        except BaseException:
            self._ops.close(fd)
            raise
        return _Segment(
            first,
            path,
            image=image,
            offsets=array.array("I"),
            write_pos=SEGMENT_HEADER_BYTES,
            size=self.segment_bytes,
            fd=fd,
        )

    def _roll_locked(self, first: int) -> None:
        """Start segment `first` after the active one (io_lock held)."""
        old = self._segments[-1]
        seg = self._new_segment(first)
        if self.sync_policy != "none":
            # The old segment's records become durable before any record lands in the new one.
            self._ops.fdatasync(old.fd)
        self._meta = Meta(self._meta.log_id, self._meta.first_index, first)
        try:
            write_meta(self._ops, self.directory, self._meta)
        except BaseException:
            seg.release(self._ops)
            raise
        # old.fd stays open until the segment is released: a group-commit syncer may still be
        # running fdatasync on it outside the io lock.
        self._segments.append(seg)
        self._firsts.append(first)

    def _segment_for(self, index: int) -> _Segment:
        segs = self._segments
        if index >= segs[-1].first:
            return segs[-1]
        return segs[bisect.bisect_right(self._firsts, index) - 1]

    # ----------------------------------------------------------------------------- writing

    def _poison(self, exc: OSError, what: str) -> WALError:
        failure: WALError
        if exc.errno == errno.ENOSPC:
            failure = WALFullError(
                f"WAL {self.directory}: disk full while {what} ({exc}); records from index "
                f"{self._flushed_next} on were not written and nothing half-written stays "
                "visible; free space, then close and reopen the WAL"
            )
        else:
            failure = WALPoisonedError(
                f"WAL {self.directory}: {what} failed ({exc}); records from index "
                f"{self._synced_index + 1} on may not be durable and the WAL refuses further "
                "writes (an fsync is never retried); close it, check the disk, and reopen"
            )
        failure.__cause__ = exc
        if self._failure is None:
            self._failure = failure
            self._fb.fail(failure)
            log.error("%s", failure)
        return self._failure

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self._closed:
            raise WALClosedError(f"WAL {self.directory} is closed; open it again to use it")

    def _on_full(self) -> None:
        """FrameBuffer callback: the buffer is full, write it out (no fdatasync)."""
        with self._io_lock:
            if self._failure is None:
                self._flush_locked()

    def _flush_locked(self) -> None:
        """Write every buffered frame into the segment files (io_lock held); no fdatasync."""
        fb = self._fb
        while True:
            seg = self._segments[-1]
            got = fb.take(seg.size - seg.write_pos, seg.write_pos)
            if got is None:
                return
            chunk, first, count, offsets = got
            try:
                if count == 0:
                    self._roll_locked(first)
                    continue
                self._ops.pwrite(seg.fd, chunk, seg.write_pos)
            except OSError as exc:
                raise self._poison(exc, "writing a segment") from exc
            seg.offsets.frombytes(offsets)
            seg.write_pos += len(chunk)
            self._flushed_next = first + count
            # Drop the chunk now: it may be the framing buffer itself, handed out without a
            # copy, and the buffer is only reused once no chunk of it is alive.
            del got, chunk
            if seg.write_pos * 2 >= seg.size:
                self._start_prealloc()

    def _datasync(self, seg: _Segment) -> None:
        """fdatasync one segment (the caller holds the sync token, not necessarily io_lock)."""
        if self.sync_policy == "none":
            return
        try:
            self._ops.fdatasync(seg.fd)
        except OSError as exc:
            raise self._poison(exc, f"fdatasync of {seg.path}") from exc

    def _sync_through(self, index: int) -> int:
        """Group commit: return once records up to `index` are durable; one fdatasync is
        shared by every caller waiting at the time (the first becomes the syncer)."""
        cond = self._cond
        with cond:
            while True:
                if self._failure is not None:
                    raise self._failure.with_traceback(None)
                if self._synced_index >= index:
                    return self._synced_index
                if index >= self._fb.next_index:
                    raise WALIndexError(
                        f"record {index} does not exist (any more): truncate_after removed it "
                        f"before it became durable (last index {self._fb.next_index - 1})"
                    )
                if self._closed:
                    raise WALClosedError(f"WAL {self.directory} is closed")
                if not self._syncing:
                    self._syncing = True
                    break
                cond.wait()
        synced = -1
        try:
            if self.group_delay_ns:
                self._gather_batch()
            with self._io_lock:
                if self._failure is None:
                    self._flush_locked()
                    target = self._flushed_next - 1
                    seg = self._segments[-1]
            # The fdatasync runs without io_lock, so appenders that fill the buffer meanwhile
            # only wait for a page-cache write, never for the disk. Segments (and their fds)
            # are only released by holders of the sync token, which this thread holds.
            if self._failure is None:
                self._datasync(seg)
                synced = target
        finally:
            with cond:
                self._syncing = False
                if synced > self._synced_index and self._failure is None:
                    self._synced_index = synced
                cond.notify_all()
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        return self._synced_index

    def _gather_batch(self) -> None:
        """Wait up to group_delay_ns for more records, or until group_bytes_max are buffered.

        Checks the buffer GROUP_DELAY_STEPS times over the delay (the appenders are a C call
        each and do not signal), on the injectable clock.
        """
        deadline = self._clock_ns() + self.group_delay_ns
        step_s = self.group_delay_ns / GROUP_DELAY_STEPS / 1e9
        for _ in range(GROUP_DELAY_STEPS):
            if self._fb.pending_bytes >= self.group_bytes_max or self._clock_ns() >= deadline:
                return
            time.sleep(step_s)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the sync token: no group-commit fdatasync runs until the block ends."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            self._syncing = True
        try:
            yield
        finally:
            with self._cond:
                self._syncing = False
                self._cond.notify_all()

    def _append_always(self, data: Buffer, index: int = 0) -> int:
        assigned: int = self._fb.append(data, index)
        self._sync_through(assigned)
        return assigned

    def append_batch(self, items: Sequence[Buffer], index: int = 0) -> int:
        """Append every record of `items` (contiguous indexes); return the last index.

        Under "always" the whole batch is made durable by one fdatasync before returning.
        """
        records = items if type(items) is list else list(items)
        last: int = self._fb.append_batch(records, index)
        if self.sync_policy == "always":
            self._sync_through(last)
        return last

    def append_framed(self, frame: Callable[[native.FrameBuffer], int]) -> int:
        """Let `frame(buffer)` append records to the framing buffer through native code that
        cimports FrameBuffer (haperf._native.raftstore frames Raft entries this way, copying
        each entry's data once); returns what `frame` returns, the last index appended. Under
        "always" that record is durable before this returns.
        """
        last = frame(self._fb)
        if self.sync_policy == "always":
            self._sync_through(last)
        return last

    def append_durable(self, data: Buffer, index: int = 0) -> int:
        """Append and return once the record is on disk (sharing the fdatasync with others)."""
        assigned: int = self._fb.append(data, index)
        self._sync_through(assigned)
        return assigned

    def append_batch_durable(self, items: Sequence[Buffer], index: int = 0) -> int:
        """append_batch, then wait until the whole batch is on disk; return the last index."""
        records = items if type(items) is list else list(items)
        last: int = self._fb.append_batch(records, index)
        self._sync_through(last)
        return last

    def wait_durable(self, index: int) -> None:
        """Block until every record up to `index` is on disk (group commit)."""
        if index > self._fb.next_index - 1:
            raise WALIndexError(f"index {index} was not appended (last index {self.last_index})")
        self._sync_through(index)

    def sync(self) -> int:
        """Write and fdatasync everything appended so far; return the durable last index."""
        self._check_usable()
        return self._sync_through(self._fb.next_index - 1)

    def flush(self) -> None:
        """Write buffered records to the segment file without fdatasync (readers of the files,
        e.g. another process, see them; they are not durable)."""
        self._check_usable()
        with self._io_lock:
            self._flush_locked()

    def _interval_job(self) -> None:
        period_s = self.sync_interval_ns / 1e9
        while not self._stop.wait(period_s):
            try:
                self._sync_through(self._fb.next_index - 1)
            except WALError:
                return  # poisoned or closed: the failure is recorded, appends raise it

    # ----------------------------------------------------------------------------- reading

    @property
    def first_index(self) -> int:
        """Index of the first record kept (after compact_before, the compaction point)."""
        return self._first_index

    @property
    def last_index(self) -> int:
        """Index of the last appended record (first_index - 1 when the log is empty)."""
        next_index: int = self._fb.next_index
        return next_index - 1

    @property
    def log_bytes(self) -> int:
        """Bytes of record frames held: in the segment files (segment headers excluded) and
        still in the framing buffer. Approximate while other threads append."""
        filed = sum(seg.write_pos - SEGMENT_HEADER_BYTES for seg in self._segments)
        pending: int = self._fb.pending_bytes
        return filed + pending

    @property
    def durable_index(self) -> int:
        """Index of the last record known to be on disk."""
        return self._synced_index

    @property
    def failure(self) -> WALError | None:
        """The error that poisoned the WAL, or None."""
        return self._failure

    def _corrupt(self, seg: _Segment, offset: int, index: int, exc: ValueError) -> CorruptionError:
        return CorruptionError(
            f"WAL corruption in {seg.path} at offset {offset} (record index {index}): {exc}; "
            "the record changed on disk after it was written"
        )

    def read(self, index: int) -> bytes:
        """The payload of record `index` (a copy), verified against its CRC."""
        for _ in range(READ_RETRIES_MAX):
            if self._closed:
                raise WALClosedError(f"WAL {self.directory} is closed")
            if self._first_index <= index < self._flushed_next:
                seg = self._segment_for(index)
                off = seg.offsets[index - seg.first]
                try:
                    return native.read(
                        seg.image, off, index, self._meta.salt, native.RECORD_BYTES_LIMIT
                    )
                except ValueError as exc:
                    raise self._corrupt(seg, off, index, exc) from None
            with self._io_lock:
                if self._flushed_next <= index < self._fb.next_index:
                    return self._fb.read(index)
                if not self._first_index <= index < self._fb.next_index:
                    raise WALIndexError(
                        f"index {index} is outside the log [{self._first_index}, {self.last_index}]"
                    )
        raise WALIndexError(f"index {index} moved while reading; retry")

    def iterate(self, start: int | None = None, stop: int | None = None) -> Iterator[memoryview]:
        """Payloads of records start..stop-1 as zero-copy views of the segment mappings.

        Each frame's CRC is verified as it is reached. A view stays valid until truncate_after,
        compact_before or close removes its record; copy it (bytes(view)) to keep it longer.
        """
        first = self._first_index
        lo = first if start is None else start
        hi = self.last_index + 1 if stop is None else stop
        if not first <= lo <= hi <= self.last_index + 1:
            raise WALIndexError(
                f"iterate({start}, {stop}) is outside the log [{first}, {self.last_index}]"
            )
        if hi > self._flushed_next:
            self.flush()
        return self._iterate(lo, hi)

    def _iterate(self, lo: int, hi: int) -> Iterator[memoryview]:
        salt = self._meta.salt
        verify = native.verify
        limit = native.RECORD_BYTES_LIMIT
        header = native.HEADER_BYTES
        i = lo
        while i < hi:
            seg = self._segment_for(i)
            offs, view, base, image = seg.offsets, seg.view, seg.first, seg.image
            end = min(hi, base + len(offs))
            for j in range(i, end):
                off = offs[j - base]
                try:
                    n = verify(image, off, j, salt, limit)
                except ValueError as exc:
                    raise self._corrupt(seg, off, j, exc) from None
                yield view[off + header : off + header + n]
            i = end

    # ----------------------------------------------------------------------------- Raft ops

    def truncate_after(self, index: int) -> None:
        """Remove every record after `index` (Raft log conflict), durably, before returning.

        A crash part way leaves either the old log or the truncated one: the intent is
        recorded in the meta file first and completed by recovery.
        """
        self._check_usable()
        with self._exclusive(), self._io_lock:
            last = self.last_index
            if not self._first_index - 1 <= index <= last:
                raise WALIndexError(
                    f"truncate_after({index}) is outside the log [{self._first_index - 1}, {last}]"
                )
            if index == last:
                return
            try:
                self._truncate_locked(index)
            except OSError as exc:
                raise self._poison(exc, f"truncating after index {index}") from exc

    def _truncate_locked(self, index: int) -> None:
        self._flush_locked()
        pos = bisect.bisect_right(self._firsts, index + 1) - 1
        target = self._segments[pos]
        meta = self._meta
        write_meta(
            self._ops, self.directory, Meta(meta.log_id, meta.first_index, target.first, index)
        )
        for seg in reversed(self._segments[pos + 1 :]):
            seg.release(self._ops)
            self._ops.unlink(seg.path)
        self._ops.fsync_dir(self.directory)
        del self._segments[pos + 1 :]
        del self._firsts[pos + 1 :]
        if target.fd < 0:
            target.fd = self._ops.open(target.path, os.O_RDWR)
        cut = target.offsets[index + 1 - target.first]
        zero_range(self._ops, target.fd, cut, target.write_pos)
        self._ops.fdatasync(target.fd)
        del target.offsets[index + 1 - target.first :]
        target.write_pos = cut
        self._meta = Meta(meta.log_id, meta.first_index, target.first, None)
        write_meta(self._ops, self.directory, self._meta)
        self._fb.reset(index + 1)
        self._flushed_next = index + 1
        with self._cond:
            self._synced_index = min(self._synced_index, index)

    def compact_before(self, index: int) -> None:
        """Drop records before `index` (after a snapshot that covers them).

        first_index becomes `index` durably (the meta file); whole segments before it are
        removed. An index past last_index + 1 empties the log and the next append gets `index`.
        """
        self._check_usable()
        if index <= self._first_index:
            return
        self.sync()
        with self._exclusive(), self._io_lock:
            try:
                self._compact_locked(index)
            except OSError as exc:
                raise self._poison(exc, f"compacting before index {index}") from exc

    def _compact_locked(self, index: int) -> None:
        meta = self._meta
        if index <= self.last_index + 1:
            self._meta = Meta(meta.log_id, index, meta.last_segment)
            write_meta(self._ops, self.directory, self._meta)
            self._first_index = index
            drop = 0
            while drop + 1 < len(self._segments) and self._segments[drop + 1].first <= index:
                drop += 1
        else:
            seg = self._new_segment(index)
            self._meta = Meta(meta.log_id, index, index)
            try:
                write_meta(self._ops, self.directory, self._meta)
            except BaseException:
                seg.release(self._ops)
                raise
            self._segments.append(seg)
            self._firsts.append(index)
            drop = len(self._segments) - 1
            self._first_index = index
            self._fb.reset(index)
            self._flushed_next = index
            with self._cond:
                self._synced_index = index - 1
        for seg in self._segments[:drop]:
            seg.release(self._ops)
            self._ops.unlink(seg.path)
        if drop:
            del self._segments[:drop]
            del self._firsts[:drop]
            self._ops.fsync_dir(self.directory)

    # ----------------------------------------------------------------------------- closing

    def close(self) -> None:
        """Write, fdatasync (unless poisoned or "none") and release everything. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._interval_thread is not None:
            self._interval_thread.join()
        error: BaseException | None = None
        if self._failure is None:
            try:
                self._sync_through(self._fb.next_index - 1)
            except WALError as exc:
                error = exc
        with self._exclusive(), self._io_lock:
            self._closed = True
            if self._failure is None:
                self._fb.fail(WALClosedError(f"WAL {self.directory} is closed; open it again"))
            thread = self._prealloc_thread
            if thread is not None:
                thread.join()
            prealloc = os.path.join(self.directory, PREALLOC_NAME)
            if os.path.exists(prealloc):
                self._ops.unlink(prealloc)
            for seg in self._segments:
                seg.release(self._ops)
            os.close(self._lock_fd)
        with self._cond:
            self._cond.notify_all()
        if error is not None:
            raise error

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("poisoned" if self._failure else "open")
        return (
            f"WAL({self.directory!r}, {state}, first={self._first_index}, last={self.last_index}, "
            f"durable={self._synced_index}, policy={self.sync_policy})"
        )


def open_wal(directory: str | os.PathLike[str], **options: object) -> WAL:
    """Open (or create) the WAL in `directory`; see WAL for the options."""
    return WAL(directory, **options)  # type: ignore[arg-type]
