"""`python -m haperf wal inspect|verify|repair DIR`: output, exit codes, and repair's rules
(nothing changes without --yes; with it, the log is truncated at the first corruption and the
removed bytes are kept). Runs the CLI in a child process as a user would.
"""

import subprocess
import sys
from pathlib import Path

from tests.wal.helpers import open_small, payload, segment_files

TIMEOUT_S = 60


def haperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", "wal", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def make_log(directory: Path, n: int = 400) -> None:
    with open_small(directory) as wal:
        wal.append_batch([payload(i) for i in range(1, n + 1)])


def corrupt_second_segment(directory: Path) -> Path:
    seg = segment_files(directory)[1]
    with open(seg, "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    return seg


def test_inspect_and_verify_a_sound_log(tmp_path: Path) -> None:
    make_log(tmp_path)
    out = haperf("inspect", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "records 1..400" in out.stdout and "00000000000000000001.wal" in out.stdout
    out = haperf("verify", str(tmp_path))
    assert out.returncode == 0 and "every frame verified" in out.stdout


def test_corruption_exit_1_and_repair_only_with_yes(tmp_path: Path) -> None:
    make_log(tmp_path)
    seg = corrupt_second_segment(tmp_path)
    before = {p.name: p.read_bytes() for p in segment_files(tmp_path)}
    out = haperf("verify", str(tmp_path))
    assert out.returncode == 1
    assert seg.name in out.stdout and "offset" in out.stdout and "record index" in out.stdout
    out = haperf("repair", str(tmp_path))
    assert out.returncode == 1 and "dry run" in out.stdout
    assert {p.name: p.read_bytes() for p in segment_files(tmp_path)} == before
    out = haperf("repair", str(tmp_path), "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    backups = list(tmp_path.glob("repair-*"))
    assert len(backups) == 1
    kept = {p.name for p in backups[0].iterdir()}
    assert any(name.startswith(seg.name + ".from-") for name in kept)
    assert len(kept) == len(before) - 1  # the later segments, plus the cut tail
    assert haperf("verify", str(tmp_path)).returncode == 0
    with open_small(tmp_path) as wal:
        last = wal.last_index
        assert int(seg.stem) - 1 <= last < 400
        assert [wal.read(i) for i in range(1, last + 1)] == [payload(i) for i in range(1, last + 1)]


def test_repair_refuses_a_log_that_is_open(tmp_path: Path) -> None:
    make_log(tmp_path)
    with open_small(tmp_path):
        out = haperf("repair", str(tmp_path), "--yes")
    assert out.returncode == 1 and "already open" in out.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    out = haperf("verify", str(tmp_path / "missing"))
    assert out.returncode == 2 and "is not a directory" in out.stderr
    out = haperf("inspect", str(tmp_path))
    assert out.returncode == 2 and "holds no haperf WAL" in out.stderr
    assert haperf().returncode == 2


def test_torn_tail_is_reported_as_sound_and_repaired_like_open(tmp_path: Path) -> None:
    make_log(tmp_path, 50)
    last = segment_files(tmp_path)[-1]
    with open_small(tmp_path) as wal:
        tail = wal._segments[-1].offsets[-1]
    with open(last, "r+b") as f:
        f.seek(tail + 3)
        f.write(b"\xff\xff")
    out = haperf("inspect", str(tmp_path))
    assert (
        out.returncode == 0
        and "torn tail" in out.stdout
        and "opening the WAL truncates" in out.stdout
    )
    out = haperf("repair", str(tmp_path), "--yes")
    assert out.returncode == 0 and "repaired: records 1..49" in out.stdout
    (backup,) = tmp_path.glob("repair-*")  # the torn bytes are kept too
    (kept,) = backup.iterdir()
    assert kept.name == f"{last.name}.from-{tail}" and kept.read_bytes()
    assert "torn tail" not in haperf("verify", str(tmp_path)).stdout
