"""WAL.append_framed: native code frames records straight into the WAL's buffer.

The hook hands the FrameBuffer to a callable and returns its last index; under "always" the
records are durable (an fdatasync ran) before it returns, under "group" only after sync().
"""

from pathlib import Path

from haperf._native.wal import FrameBuffer
from tests.wal.helpers import FaultyOps, open_small


def frame_two(fb: FrameBuffer) -> int:
    return fb.append_batch([b"one", b"two"])


def test_append_framed_returns_the_last_index_and_records_read_back(tmp_path: Path) -> None:
    with open_small(tmp_path, sync_policy="group") as wal:
        wal.append(b"zero")
        assert wal.append_framed(frame_two) == 3
        assert [wal.read(i) for i in (1, 2, 3)] == [b"zero", b"one", b"two"]
        assert wal.durable_index == 0
        wal.sync()
        assert wal.durable_index == 3


def test_append_framed_under_always_is_durable_on_return(tmp_path: Path) -> None:
    ops = FaultyOps()
    with open_small(tmp_path, sync_policy="always", file_ops=ops) as wal:
        before = ops.fdatasyncs
        assert wal.append_framed(frame_two) == 2
        assert ops.fdatasyncs == before + 1
        assert wal.durable_index == 2
