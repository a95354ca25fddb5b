"""kill -9: a child appends and syncs in a loop and reports acknowledged records through a
pipe; the parent kills it at random moments (also while it recovers) and checks that every
acknowledged record survives, intact, at its index.

Seeded (the seed is printed, and HAPERF_CRASH_SEED replays one); bounded: a few rounds of a
fraction of a second each.
"""

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from haperf.wal import WAL
from tests.wal.crash_child import SEGMENT_BYTES, record_payload

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = 3
RECOVERY_KILLS = 2
RUN_S_MAX = 0.6
CHILD_WAIT_S = 30


def spawn(directory: Path, seed: int, mode: str) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(seed), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def run_and_kill(child: subprocess.Popen[bytes], run_s: float) -> bytes:
    """Collect the child's output for run_s seconds after its first ack, SIGKILL it, drain."""
    assert child.stdout is not None
    data = b""
    sel = selectors.DefaultSelector()
    sel.register(child.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + CHILD_WAIT_S
    started: float | None = None
    while True:
        now = time.monotonic()
        if started is not None and now - started >= run_s:
            break
        if now > deadline:
            break
        for _key, _ in sel.select(timeout=0.01):
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            data += chunk
            if started is None:
                started = time.monotonic()
        if child.poll() is not None:
            break
    child.send_signal(signal.SIGKILL)
    data += child.stdout.read()  # acks already in the pipe were acknowledged before the kill
    child.wait(CHILD_WAIT_S)
    sel.close()
    return data


@pytest.mark.parametrize("mode", ["always", "batch", "threads", "raft"])
def test_acknowledged_records_survive_kill_9(tmp_path: Path, mode: str) -> None:
    seed = int(os.environ.get("HAPERF_CRASH_SEED", random.randrange(1 << 30)))
    print(f"kill -9 test seed={seed} mode={mode}")
    rng = random.Random(seed)
    acked: dict[int, tuple[int, int]] = {}
    removed: dict[int, tuple[int, int]] = {}  # acknowledged, then truncated away
    # Acknowledged, then a truncation began (it may or may not have happened; later unacknowledged
    # appends may sit there): nothing is required of these indexes.
    maybe: dict[int, tuple[int, int]] = {}
    for _ in range(ROUNDS):
        out = run_and_kill(spawn(tmp_path, seed, mode), rng.uniform(0.02, RUN_S_MAX))
        for line in out.decode().splitlines():
            if line.startswith("T? "):
                # truncate_after is about to run: records after `at` may or may not survive.
                at = int(line[3:])
                for index in [i for i in acked if i > at]:
                    maybe[index] = acked.pop(index)
                continue
            if line.startswith("T "):
                # It returned: those records are gone for good and must never come back.
                at = int(line[2:])
                for index in [i for i in maybe if i > at]:
                    removed[index] = maybe.pop(index)
                continue
            index, tid, n = (int(x) for x in line.split())
            assert index not in acked or acked[index] == (tid, n), f"index {index} acked twice"
            acked[index] = (tid, n)
            removed.pop(index, None)
            maybe.pop(index, None)
        for _ in range(RECOVERY_KILLS):
            child = spawn(tmp_path, seed, "recover")
            assert child.stdout is not None
            assert child.stdout.readline() == b"opening\n"
            # Recovery of this log takes milliseconds: kill somewhere inside it (or just after).
            time.sleep(rng.uniform(0.0, 0.01))
            child.send_signal(signal.SIGKILL)
            child.wait(CHILD_WAIT_S)
            child.stdout.close()
    assert acked, "the child never acknowledged a record"
    print(f"{len(acked)} acknowledged records, last {max(acked)}")
    with WAL(tmp_path, segment_bytes=SEGMENT_BYTES, record_bytes_max=1024) as wal:
        assert wal.last_index >= max(acked), f"seed={seed}: acknowledged records lost"
        for index, (tid, n) in acked.items():
            assert wal.read(index) == record_payload(seed, tid, n), f"seed={seed} index={index}"
        # Unacknowledged records that survived are whole records too (every CRC verified).
        assert sum(1 for _ in wal.iterate()) == wal.last_index - wal.first_index + 1
        # A durable truncation never comes undone: removed records do not resurrect.
        for index, (tid, n) in removed.items():
            if index <= wal.last_index:
                assert wal.read(index) != record_payload(seed, tid, n), f"seed={seed} {index}"
