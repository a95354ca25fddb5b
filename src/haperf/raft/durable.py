"""DiskStorage: Raft's durable state in one directory (WAL log, hard state, snapshots).

Owns the on-disk layout of a Raft node's data directory (docs/raft-storage.md, byte by byte):

    DIR/LOCK                       flock'd while a DiskStorage is open; holds its pid
    DIR/raft.meta                  format marker (magic, version, CRC): refuses foreign dirs
    DIR/hardstate                  two checksummed slots (term, vote, commit, sequence number)
    DIR/snap/<index:020d>.snap     the newest snapshot: header, ConfState, data, CRCs
    DIR/wal/                       the Raft log: WAL record index = Raft index

Invariants:
- WAL record i holds Raft entry i: one header byte (entry type in the low 4 bits, the number of
  term bytes in the high 4 bits), the term little-endian in that many bytes, then the data.
- The log is contiguous and starts right after the snapshot index (or at 1 without one).
  Opening finishes an install_snapshot a crash interrupted, with the same rules install uses.
- install_snapshot makes the snapshot file durable (tmp, fsync, rename, fsync dir) BEFORE the
  WAL drops the entries it covers, and removes older snapshot files only after that. The
  logical log starts at snapshot index + 1; a compaction (the suffix matches) moves the WAL's
  own first index only when that frees about a segment, so older records may stay in the WAL
  files, ignored, until then.
- The hard state is written to the slot that does NOT hold the newest durable state, so a torn
  write falls back to the other slot. It is fdatasynced only when term or vote changed since
  the last durable write (commit is volatile: RawNode clamps it on restart).
- sync() costs one WAL fdatasync when entries were appended, plus one hard-state fdatasync only
  when term or vote changed. fsync=False turns every fsync off (tests, benchmarks).
- Anything damaged, foreign or newer on disk is a StorageError naming the file; never a guess.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from haperf._native import raftstore as _records
from haperf._native.raft import HardState
from haperf._native.raftmsg import ConfState, Entry, SnapshotMeta
from haperf.checksum import crc32c
from haperf.errors import ConfigError, StorageError, WALError
from haperf.wal import WAL
from haperf.wal.files import FileOps, OsFileOps
from haperf.wal.log import check_config as check_wal_config

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from haperf.raft.storage import Storage

log = logging.getLogger("haperf.raft.durable")

FORMAT_VERSION = 1
LOCK_NAME = "LOCK"
MARKER_NAME = "raft.meta"
HARDSTATE_NAME = "hardstate"
SNAP_DIR = "snap"
WAL_DIR = "wal"
SNAP_SUFFIX = ".snap"
TMP_SUFFIX = ".tmp"
SNAP_NAME_DIGITS = 20

# raft.meta: magic, version, size, reserved, reserved, CRC32C of bytes 0..20.
MARKER_MAGIC = b"HAPERFRD"
_MARKER = struct.Struct("<8sHHI")
MARKER_BYTES = 24

# hardstate: two slots, each in its own 512-byte sector so a torn write of one cannot reach the
# other. Slot: magic, version, slot size, reserved, seq, term, vote, commit, reserved, CRC (of
# everything before it, so a slot torn anywhere fails its CRC).
HARDSTATE_MAGIC = b"HAPERFHS"
_SLOT = struct.Struct("<8sHHIQQQQ")
SLOT_BYTES = 56
SLOT_STRIDE = 512
HARDSTATE_FILE_BYTES = 2 * SLOT_STRIDE

# snapshot file: fixed header, ConfState ids (u64 each), 4 zero bytes, CRC32C of all before, data.
SNAP_MAGIC = b"HAPERFSN"
_SNAP = struct.Struct("<8sHHIQQQIIII")
SNAP_FLAG_AUTO_LEAVE = 1
SNAP_IDS_MAX = 1 << 16

_U32 = struct.Struct("<I")

ENTRY_HEADER_BYTES_MAX = _records.HEADER_BYTES_MAX
ENTRY_BYTES_MAX_DEFAULT = 1 << 20
SEGMENT_BYTES_DEFAULT = 16 << 20

StateTuple = tuple[HardState, "tuple[SnapshotMeta, bytes] | None", list[Entry]]


def encode_entry(entry: Entry) -> bytes:
    """The WAL record of one entry as bytes (DiskStorage frames records without building it)."""
    return _records.header(entry.term, entry.type) + bytes(entry.data)


def decode_entry(record: Buffer, index: int, where: str) -> Entry:
    """Entry `index` from its WAL record (copies the data out of the mapping)."""
    try:
        return _records.decode_entry(record, index)
    except ValueError as exc:
        raise StorageError(
            f"{where}: WAL record {index} is not a Raft entry ({exc}); the log was written by "
            "something else"
        ) from None


def _entry_term(record: Buffer, index: int, where: str) -> int:
    return decode_entry(record, index, where).term


class _NoSyncOps:
    """A FileOps that forwards everything but fsyncs (fsync=False)."""

    def __init__(self, inner: FileOps) -> None:
        self._inner = inner

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return self._inner.open(path, flags, mode)

    def close(self, fd: int) -> None:
        self._inner.close(fd)

    def pwrite(self, fd: int, data: Buffer, offset: int) -> None:
        self._inner.pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        return None

    def fsync(self, fd: int) -> None:
        return None

    def fsync_dir(self, path: str) -> None:
        return None

    def rename(self, src: str, dst: str) -> None:
        self._inner.rename(src, dst)

    def unlink(self, path: str) -> None:
        self._inner.unlink(path)


def snapshot_name(index: int) -> str:
    return f"{index:0{SNAP_NAME_DIGITS}d}{SNAP_SUFFIX}"


def _parse_snapshot_name(name: str) -> int | None:
    stem = name[: -len(SNAP_SUFFIX)]
    if not name.endswith(SNAP_SUFFIX) or len(stem) != SNAP_NAME_DIGITS or not stem.isdigit():
        return None
    return int(stem)


# ------------------------------------------------------------------------------ file formats


def encode_marker() -> bytes:
    head = _MARKER.pack(MARKER_MAGIC, FORMAT_VERSION, MARKER_BYTES, 0) + bytes(4)
    return head + _U32.pack(crc32c(head))


def check_marker(data: bytes, path: str) -> None:
    """Raise StorageError unless `data` is a raft.meta this version reads."""
    if len(data) < _MARKER.size or data[:8] != MARKER_MAGIC:
        raise StorageError(
            f"{path}: not a haperf Raft data directory marker (magic {data[:8]!r}); this "
            "directory belongs to something else: pick another data_dir"
        )
    _magic, version, size, _ = _MARKER.unpack_from(data)
    if len(data) != MARKER_BYTES or size != MARKER_BYTES:
        raise StorageError(f"{path}: marker is {len(data)} bytes, expected {MARKER_BYTES}")
    (stored,) = _U32.unpack_from(data, MARKER_BYTES - 4)
    if crc32c(data[: MARKER_BYTES - 4]) != stored or any(data[_MARKER.size : MARKER_BYTES - 4]):
        raise StorageError(f"{path}: marker checksum mismatch; the file is damaged")
    if version != FORMAT_VERSION:
        raise StorageError(
            f"{path}: data directory format version {version} is not supported (this haperf "
            f"reads version {FORMAT_VERSION}); open it with the haperf that wrote it"
        )


def encode_slot(seq: int, hs: HardState) -> bytes:
    head = _SLOT.pack(
        HARDSTATE_MAGIC, FORMAT_VERSION, SLOT_BYTES, 0, seq, hs.term, hs.vote, hs.commit
    ) + bytes(4)
    return head + _U32.pack(crc32c(head))


def decode_slot(data: bytes, path: str, slot: int) -> tuple[int, HardState] | None:
    """(seq, hard state) of a valid slot; None for a never-written (all-zero) or torn slot.

    A slot written by a newer haperf (valid CRC, other version) is a StorageError.
    """
    if not any(data):
        return None
    magic, version, size, reserved, seq, term, vote, commit = _SLOT.unpack_from(data)
    (stored,) = _U32.unpack_from(data, SLOT_BYTES - 4)
    if magic != HARDSTATE_MAGIC or crc32c(data[: SLOT_BYTES - 4]) != stored:
        return None
    if version != FORMAT_VERSION or size != SLOT_BYTES or reserved or any(data[_SLOT.size : -4]):
        raise StorageError(
            f"{path}: hard-state slot {slot} has format version {version} (size {size}); this "
            f"haperf reads version {FORMAT_VERSION}"
        )
    return seq, HardState(term, vote, commit)


def encode_snapshot_header(meta: SnapshotMeta, data_bytes: int, data_crc: int) -> bytes:
    conf = meta.conf
    ids = (*conf.voters, *conf.learners, *conf.voters_outgoing)
    flags = SNAP_FLAG_AUTO_LEAVE if conf.auto_leave else 0
    head = _SNAP.pack(
        SNAP_MAGIC,
        FORMAT_VERSION,
        0,
        flags,
        meta.index,
        meta.term,
        data_bytes,
        len(conf.voters),
        len(conf.learners),
        len(conf.voters_outgoing),
        data_crc,
    ) + struct.pack(f"<{len(ids)}Q", *ids) + bytes(4)
    return head + _U32.pack(crc32c(head))


def decode_snapshot(blob: bytes, path: str) -> tuple[SnapshotMeta, bytes]:
    """(meta, data) of a snapshot file's bytes; StorageError naming the file if anything is off."""
    if len(blob) < _SNAP.size + 8:
        raise StorageError(
            f"{path}: snapshot file is {len(blob)} bytes, shorter than its header; the file "
            "is damaged (restore it from a replica or remove the data directory to resync)"
        )
    magic, version, reserved, flags, index, term, nbytes, nv, nl, no, data_crc = _SNAP.unpack_from(
        blob
    )
    if magic != SNAP_MAGIC:
        raise StorageError(f"{path}: not a haperf snapshot file (magic {magic!r})")
    nids = nv + nl + no
    head_end = _SNAP.size + 8 * nids
    if nids > SNAP_IDS_MAX or len(blob) < head_end + 8:
        raise StorageError(f"{path}: snapshot header is damaged ({nids} member ids)")
    (stored,) = _U32.unpack_from(blob, head_end + 4)
    if crc32c(memoryview(blob)[: head_end + 4]) != stored or any(blob[head_end : head_end + 4]):
        raise StorageError(f"{path}: snapshot header checksum mismatch; the file is damaged")
    if version != FORMAT_VERSION or reserved or flags & ~SNAP_FLAG_AUTO_LEAVE:
        raise StorageError(
            f"{path}: snapshot format version {version} is not supported (this haperf reads "
            f"version {FORMAT_VERSION})"
        )
    if len(blob) != head_end + 8 + nbytes:
        raise StorageError(
            f"{path}: snapshot file is {len(blob)} bytes, its header says "
            f"{head_end + 8 + nbytes}; the file is damaged"
        )
    data = blob[head_end + 8 :]
    if crc32c(data) != data_crc:
        raise StorageError(f"{path}: snapshot data checksum mismatch; the file is damaged")
    ids = struct.unpack_from(f"<{nids}Q", blob, _SNAP.size)
    conf = ConfState(ids[:nv], ids[nv : nv + nl], ids[nv + nl :], bool(flags))
    return SnapshotMeta(index, term, conf), data


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------ DiskStorage


class DiskStorage:
    """Raft storage in a directory; implements haperf.raft.storage.Storage.

    `initial_state()` gives (hard_state, snapshot, entries) for RawNode after a restart. One
    DiskStorage per directory (flock on DIR/LOCK); not thread-safe (one node drives it).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: bool = True,
        entry_bytes_max: int = ENTRY_BYTES_MAX_DEFAULT,
        segment_bytes: int = SEGMENT_BYTES_DEFAULT,
        file_ops: FileOps | None = None,
    ) -> None:
        if entry_bytes_max < 1:
            raise ConfigError(f"entry_bytes_max must be >= 1, got {entry_bytes_max}")
        # The WAL's own checks, run before this directory exists: bad configuration must
        # raise before anything is created.
        check_wal_config(
            sync_policy="group" if fsync else "none",
            segment_bytes=segment_bytes,
            record_bytes_max=entry_bytes_max + ENTRY_HEADER_BYTES_MAX,
        )
        self.data_dir = os.fspath(data_dir)
        self.fsync = fsync
        base: FileOps = file_ops if file_ops is not None else OsFileOps()
        self._ops: FileOps = base if fsync else _NoSyncOps(base)
        self._closed = False
        self._wal: WAL | None = None
        self._hs_fd = -1
        self._lock_fd = -1
        self.snapshot: tuple[SnapshotMeta, bytes] | None = None
        self.hard_state = HardState()
        # The hard state as last written to the file / last made durable, and where.
        self._hs_written = (0, 0, 0)
        self._hs_durable = (0, 0)
        self._hs_seq = 0
        self._hs_durable_slot = 1  # the slot holding the newest durable state
        self._hs_dirty_slot = False  # the other slot holds a newer, unsynced write
        self._hs_path = os.path.join(self.data_dir, HARDSTATE_NAME)
        self._segment_bytes = segment_bytes
        self._snap_dir = os.path.join(self.data_dir, SNAP_DIR)
        self._marker_path = os.path.join(self.data_dir, MARKER_NAME)
        self._wal_dir = os.path.join(self.data_dir, WAL_DIR)
        try:
            self._open_dir()
            self._load_snapshot()
            self._load_hard_state()
            try:
                self._wal = WAL(
                    self._wal_dir,
                    sync_policy="group" if fsync else "none",
                    segment_bytes=segment_bytes,
                    record_bytes_max=entry_bytes_max + ENTRY_HEADER_BYTES_MAX,
                    first_index=self._snap_index + 1,
                    file_ops=self._ops,
                )
            except WALError as exc:
                # The WAL's message names the segment file and offset; StorageError is what a
                # caller of DiskStorage catches for anything wrong on disk.
                raise StorageError(
                    f"the Raft log in {self._wal_dir} cannot be opened: {exc}"
                ) from exc
            self._reconcile()
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------------ opening

    def _open_dir(self) -> None:
        ops = self._ops
        parent = os.path.dirname(os.path.abspath(self.data_dir))
        if not os.path.isdir(self.data_dir):
            if os.path.exists(self.data_dir):
                raise StorageError(f"{self.data_dir}: data_dir exists and is not a directory")
            os.makedirs(self.data_dir)
            ops.fsync_dir(parent)
        names = set(os.listdir(self.data_dir)) - {LOCK_NAME}
        if MARKER_NAME not in names and names - {MARKER_NAME + TMP_SUFFIX}:
            # Checked before taking the lock, so nothing is created in a foreign directory.
            raise StorageError(
                f"{self.data_dir}: not a haperf Raft data directory (no {MARKER_NAME}, but it "
                f"holds {', '.join(sorted(names)[:5])}); pick an empty or new data_dir"
            )
        self._lock()
        for tmp_name in (MARKER_NAME + TMP_SUFFIX, HARDSTATE_NAME + TMP_SUFFIX):
            tmp_path = os.path.join(self.data_dir, tmp_name)
            if os.path.exists(tmp_path):
                self._remove(tmp_path, self.data_dir)
        names = set(os.listdir(self.data_dir)) - {LOCK_NAME}
        if MARKER_NAME not in names:
            if names:
                raise StorageError(
                    f"{self.data_dir}: not a haperf Raft data directory (no {MARKER_NAME}, but "
                    f"it holds {', '.join(sorted(names)[:5])}); pick an empty or new data_dir"
                )
            tmp = self._marker_path + TMP_SUFFIX
            self._write_new_file(tmp, encode_marker())
            ops.rename(tmp, self._marker_path)
            ops.fsync_dir(self.data_dir)
            names.add(MARKER_NAME)
        else:
            check_marker(_read_file(self._marker_path), self._marker_path)
        if HARDSTATE_NAME not in names:
            if WAL_DIR in names:
                raise StorageError(
                    f"{self._hs_path} is missing but the log exists; the term and vote are "
                    "lost, so this node must not rejoin with this data: remove the data "
                    "directory and add the node back as a new member"
                )
            tmp = self._hs_path + TMP_SUFFIX
            self._write_new_file(tmp, bytes(HARDSTATE_FILE_BYTES))
            ops.rename(tmp, self._hs_path)
            ops.fsync_dir(self.data_dir)
        if SNAP_DIR not in names:
            os.mkdir(self._snap_dir)
            ops.fsync_dir(self.data_dir)

    def _lock(self) -> None:
        path = os.path.join(self.data_dir, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"{self.data_dir} is already open by another DiskStorage (this or another "
                f"process; see the pid in {path}); one Raft node per data directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.pwrite(fd, f"{os.getpid():>20}\n".encode(), 0)
        self._lock_fd = fd

    def _write_new_file(self, path: str, data: Buffer) -> None:
        fd = self._ops.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self._ops.pwrite(fd, data, 0)
            self._ops.fsync(fd)
        finally:
            self._ops.close(fd)

    def _remove(self, path: str, directory: str) -> None:
        log.warning("removing %s (left by an interrupted write)", path)
        self._ops.unlink(path)
        self._ops.fsync_dir(directory)

    def _load_snapshot(self) -> None:
        found: list[tuple[int, str]] = []
        for name in sorted(os.listdir(self._snap_dir)):
            path = os.path.join(self._snap_dir, name)
            if name.endswith(TMP_SUFFIX):
                self._remove(path, self._snap_dir)
                continue
            index = _parse_snapshot_name(name)
            if index is None:
                raise StorageError(
                    f"{path}: unexpected file in the snapshot directory; move it elsewhere"
                )
            found.append((index, path))
        if not found:
            return
        found.sort()
        index, path = found[-1]
        meta, data = decode_snapshot(_read_file(path), path)
        if meta.index != index:
            raise StorageError(
                f"{path}: holds the snapshot of index {meta.index}, not the one its name says"
            )
        self.snapshot = (meta, data)
        for _, old in found[:-1]:
            self._remove(old, self._snap_dir)

    @property
    def _snap_index(self) -> int:
        return 0 if self.snapshot is None else self.snapshot[0].index

    def _load_hard_state(self) -> None:
        path = self._hs_path
        blob = _read_file(path)
        if len(blob) != HARDSTATE_FILE_BYTES:
            raise StorageError(
                f"{path}: hard-state file is {len(blob)} bytes, expected {HARDSTATE_FILE_BYTES}; "
                "the file is damaged"
            )
        slots = [
            decode_slot(blob[k * SLOT_STRIDE : k * SLOT_STRIDE + SLOT_BYTES], path, k)
            for k in (0, 1)
        ]
        for k in (0, 1):
            start = k * SLOT_STRIDE
            if any(blob[start + SLOT_BYTES : start + SLOT_STRIDE]):
                raise StorageError(f"{path}: nonzero bytes after hard-state slot {k}; damaged")
        valid = [(s[0], k, s[1]) for k, s in enumerate(slots) if s is not None]
        torn = [
            k
            for k in (0, 1)
            if slots[k] is None and any(blob[k * SLOT_STRIDE : k * SLOT_STRIDE + SLOT_BYTES])
        ]
        if not valid:
            if len(torn) == 2:
                raise StorageError(
                    f"{path}: both hard-state slots are damaged; the term and vote are lost: "
                    "remove the data directory and add the node back as a new member"
                )
            if torn:
                log.warning("%s: slot %d holds a torn first write; no hard state", path, torn[0])
            return
        if len(valid) == 2 and valid[0][0] == valid[1][0]:
            raise StorageError(f"{path}: both hard-state slots have sequence {valid[0][0]}")
        seq, slot, hs = max(valid)
        if torn:
            log.warning("%s: slot %d holds a torn write; using slot %d", path, torn[0], slot)
        self.hard_state = hs
        self._hs_written = (hs.term, hs.vote, hs.commit)
        self._hs_durable = (hs.term, hs.vote)
        self._hs_seq = seq
        self._hs_durable_slot = slot
        self._hs_fd = self._ops.open(path, os.O_RDWR)

    def _reconcile(self) -> None:
        """Make the WAL start right after the snapshot (finish an interrupted install)."""
        wal = self._wal
        assert wal is not None
        snap = self.snapshot
        first = wal.first_index
        if snap is None:
            if first != 1:
                raise StorageError(
                    f"{self._wal_dir}: the log starts at index {first} but there is no snapshot "
                    f"in {self._snap_dir}; the snapshot file is missing"
                )
            return
        meta = snap[0]
        s = meta.index
        if first > s + 1:
            raise StorageError(
                f"{self._wal_dir}: the log starts at index {first} but the snapshot "
                f"{self.snapshot_path} ends at {s}: entries {s + 1}..{first - 1} are missing"
            )
        if first == s + 1:
            return
        # The log still holds entries the snapshot covers: a compaction whose WAL part was
        # deferred (the suffix matches: keep it, ignore what is before), or an install that a
        # crash interrupted after the snapshot file became durable (finish it: same rule).
        keep = s <= wal.last_index and _entry_term(wal.read(s), s, self._wal_dir) == meta.term
        if keep:
            return
        log.warning("finishing an interrupted snapshot install at index %d", s)
        if s <= wal.last_index:
            wal.truncate_after(s)
        wal.compact_before(s + 1)

    # ------------------------------------------------------------------ Storage protocol

    def install_snapshot(self, meta: SnapshotMeta, data: Buffer) -> None:
        """Persist the snapshot, then drop the entries it covers (all, if the log disagrees
        at meta.index). Crash-safe at every step; durable when it returns."""
        self._check_open()
        if meta.index <= self._snap_index:
            # RawNode never does this (compact() and a received snapshot are always newer), and
            # a same-index replacement could not be told apart from its old log after a crash.
            raise StorageError(
                f"install_snapshot at index {meta.index} is not newer than the stored snapshot "
                f"({self._snap_index}); a snapshot only moves forward"
            )
        wal = self._wal
        assert wal is not None
        s = meta.index
        # Whether to keep the suffix is decided on the log as it is now (before any change).
        keep = (
            self._snap_index < s <= wal.last_index
            and _entry_term(wal.read(s), s, self._wal_dir) == meta.term
        )
        view = memoryview(data).cast("B")
        data_crc = crc32c(view)
        header = encode_snapshot_header(meta, len(view), data_crc)
        name = snapshot_name(s)
        path = os.path.join(self._snap_dir, name)
        tmp = path + TMP_SUFFIX
        ops = self._ops
        fd = ops.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            ops.pwrite(fd, header, 0)
            if len(view):
                ops.pwrite(fd, view, len(header))
            ops.fsync(fd)
        finally:
            ops.close(fd)
        ops.rename(tmp, path)
        ops.fsync_dir(self._snap_dir)
        old = self.snapshot
        self.snapshot = (meta, data if type(data) is bytes else bytes(view))
        if not keep:
            # The log disagrees with the snapshot (or ends before it): all of it goes, durably.
            if s <= wal.last_index:
                wal.truncate_after(s)
            wal.compact_before(s + 1)
        elif self._compaction_frees_a_segment(s + 1):
            # A compaction: the suffix stays. Moving the WAL's first index costs a meta-file
            # replacement (fsyncs), worth it only when whole segments can be removed; until
            # then entries up to s are ignored here and opening drops them.
            wal.compact_before(s + 1)
        if old is not None and old[0].index != s:
            # No directory fsync: an old snapshot that survives a crash is removed on opening.
            ops.unlink(os.path.join(self._snap_dir, snapshot_name(old[0].index)))
        hs = self.hard_state
        if hs.commit < s:
            self.hard_state = HardState(hs.term, hs.vote, s)

    def _compaction_frees_a_segment(self, index: int) -> bool:
        """Whether dropping the WAL records before `index` frees about a segment or more."""
        wal = self._wal
        assert wal is not None
        held = wal.last_index - wal.first_index + 1
        covered = index - wal.first_index
        if held <= 0 or covered >= held:
            return True
        return covered * wal.log_bytes >= held * self._segment_bytes

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries (contiguous); a first index inside the log truncates from there."""
        if not entries:
            return
        self._check_open()
        wal = self._wal
        assert wal is not None
        first = entries[0].index
        last = wal.last_index
        if first != last + 1:
            if not self._snap_index + 1 <= first <= last:
                raise AssertionError(
                    f"append at {first} does not continue the log [{self._snap_index + 1}, {last}] "
                    f"(snapshot {self._snap_index})"
                )
            # Raft 5.3: a new leader overwrites the conflicting uncommitted tail.
            wal.truncate_after(first - 1)
        # Each entry is framed straight into the WAL buffer (native): its data, often a
        # memoryview of a received frame, is copied once.
        batch = entries if type(entries) is list else list(entries)
        wal.append_framed(lambda fb: _records.append_entries(fb, batch, first))

    def set_hard_state(self, hard_state: HardState) -> None:
        """Remember the hard state; sync() writes it (and fdatasyncs if term or vote changed)."""
        self.hard_state = hard_state

    def sync(self) -> None:
        """Make everything written so far durable: one WAL fdatasync if entries were appended,
        one hard-state fdatasync if term or vote changed (commit alone is written, not synced)."""
        self._check_open()
        wal = self._wal
        assert wal is not None
        if wal.durable_index < wal.last_index:
            wal.sync()
        self._write_hard_state()

    def _write_hard_state(self, *, force_sync: bool = False) -> None:
        hs = self.hard_state
        now = (hs.term, hs.vote, hs.commit)
        if now == self._hs_written:
            if force_sync and self._hs_dirty_slot:
                self._sync_hard_state()
            return
        if self._hs_fd < 0:
            self._hs_fd = self._ops.open(self._hs_path, os.O_RDWR)
        slot = 1 - self._hs_durable_slot
        self._hs_seq += 1
        try:
            self._ops.pwrite(self._hs_fd, encode_slot(self._hs_seq, hs), slot * SLOT_STRIDE)
        except OSError as exc:
            raise self._poison(exc) from exc
        self._hs_written = now
        self._hs_dirty_slot = True
        if force_sync or (hs.term, hs.vote) != self._hs_durable:
            self._sync_hard_state()

    def _sync_hard_state(self) -> None:
        try:
            self._ops.fdatasync(self._hs_fd)
        except OSError as exc:
            raise self._poison(exc) from exc
        hs = self.hard_state
        self._hs_durable = (hs.term, hs.vote)
        self._hs_durable_slot = 1 - self._hs_durable_slot
        self._hs_dirty_slot = False

    def _poison(self, exc: OSError) -> StorageError:
        # Like the WAL: after a failed write or fsync nothing is retried or trusted.
        self._closed = True
        what = "disk full" if exc.errno == errno.ENOSPC else "write or fsync failed"
        return StorageError(
            f"{self._hs_path}: {what} ({exc}); the storage refuses further writes: close it, "
            "check the disk, and reopen"
        )

    # ------------------------------------------------------------------ restart and state

    def initial_state(self) -> StateTuple:
        """(hard_state, snapshot, entries) as stored: RawNode(..., hard_state=, snapshot=,
        entries=) restarts from it. Reads (and verifies) the whole log after the snapshot."""
        self._check_open()
        wal = self._wal
        assert wal is not None
        entries = self.entries(self._snap_index + 1, wal.last_index + 1)
        hs = self.hard_state
        if hs.commit < self._snap_index:
            hs = HardState(hs.term, hs.vote, self._snap_index)
        return hs, self.snapshot, entries

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi-1 read back from the WAL (each record verified)."""
        self._check_open()
        wal = self._wal
        assert wal is not None
        out: list[Entry] = []
        append = out.append
        decode = _records.decode_entry
        index = lo
        for view in wal.iterate(lo, hi):
            try:
                append(decode(view, index))
            except ValueError:
                decode_entry(view, index, self._wal_dir)  # raises the StorageError
                raise
            index += 1
        return out

    @property
    def first_index(self) -> int:
        """Index of the first stored entry (snapshot index + 1)."""
        return self._snap_index + 1

    @property
    def last_index(self) -> int:
        """Index of the last stored entry (the snapshot index when the log is empty)."""
        assert self._wal is not None
        return self._wal.last_index

    @property
    def snapshot_path(self) -> str | None:
        """Path of the current snapshot file, or None."""
        if self.snapshot is None:
            return None
        return os.path.join(self._snap_dir, snapshot_name(self.snapshot[0].index))

    def wal_bytes(self) -> int:
        """Bytes of log frames in the WAL (headers included; records a compaction covers count
        until their segment is removed)."""
        assert self._wal is not None
        return self._wal.log_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"DiskStorage {self.data_dir} is closed (or failed); reopen it")

    def close(self) -> None:
        """Write and fsync everything (the hard state with its commit too), release the lock."""
        if self._closed and self._lock_fd < 0:
            return
        error: BaseException | None = None
        if not self._closed:
            try:
                if self._wal is not None and self._wal.failure is None:
                    self._wal.sync()
                self._write_hard_state(force_sync=True)
            except (OSError, WALError, StorageError) as exc:
                error = exc
        self._closed = True
        try:
            self._release()
        except (OSError, WALError) as exc:
            error = error or exc
        if error is not None:
            raise error

    def _release(self) -> None:
        try:
            if self._wal is not None:
                wal, self._wal = self._wal, None
                wal.close()
        finally:
            if self._hs_fd >= 0:
                with contextlib.suppress(OSError):
                    self._ops.close(self._hs_fd)
                self._hs_fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            self._closed = True

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"DiskStorage({self.data_dir!r}, {state}, snapshot={self._snap_index})"


if TYPE_CHECKING:

    def _implements_storage(disk: DiskStorage) -> Storage:
        return disk  # mypy checks DiskStorage against the Storage protocol here
