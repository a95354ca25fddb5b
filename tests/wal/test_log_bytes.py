"""WAL.log_bytes: the bytes of record frames held, through appends, flushes, rolls, truncation,
compaction and reopen (DiskStorage.wal_bytes() reports it)."""

from pathlib import Path

from haperf._native import wal as native
from tests.wal.helpers import open_small, payload


def frame_bytes(n: int) -> int:
    return native.HEADER_BYTES + ((n + 7) & ~7)


def test_log_bytes_counts_frames_in_buffer_and_files(tmp_path: Path) -> None:
    with open_small(tmp_path, sync_policy="none") as wal:
        assert wal.log_bytes == 0
        sizes = {}
        for i in range(1, 200):
            sizes[wal.append(payload(i))] = frame_bytes(len(payload(i)))
            assert wal.log_bytes == sum(sizes.values())
        wal.flush()  # rolls several 16 KiB segments
        assert wal.log_bytes == sum(sizes.values())
        wal.truncate_after(150)
        assert wal.log_bytes == sum(v for k, v in sizes.items() if k <= 150)
        wal.compact_before(120)  # whole segments before 120 go; the one holding 120 stays
        kept = wal.log_bytes
        assert sum(v for k, v in sizes.items() if 120 <= k <= 150) <= kept
        assert kept < sum(v for k, v in sizes.items() if k <= 150)
    with open_small(tmp_path, sync_policy="none") as wal:
        assert wal.log_bytes == kept
