"""kill -9: a child runs a Raft-like append + set_hard_state + sync loop and prints each step
once sync() returned; the parent SIGKILLs it at random moments (and kills recovery too), then
reopens the directory and checks that every acknowledged step is there.

The parent replays the child's steps (same seed, round and starting state; see crash_child.py)
to know the state after the last acknowledged step A and after the one in flight B. The
reopened state must be A, or a state on the way to B: hard state and snapshot those of A or B,
and the log a prefix of B's that still holds every entry A and B agree on (an acknowledged
entry is lost only when step B durably overwrote it, Raft 5.3). Seeded (printed;
HAPERF_CRASH_SEED replays one), bounded: ROUNDS rounds of at most RUN_S_MAX seconds.
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

from haperf.raft.durable import DiskStorage
from tests.raft_durable.crash_child import (
    ENTRY_BYTES_MAX,
    SEGMENT_BYTES,
    Model,
    model_from,
    next_step,
    step_rng,
)

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = 4
ROUNDS_SLOW = 40  # `pytest -m slow`
RECOVERY_KILLS = 2
RUN_S_MAX = 0.6
CHILD_WAIT_S = 30


def spawn(directory: Path, seed: int, round_no: int, *extra: str) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(seed), str(round_no), *extra],
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
        if (started is not None and now - started >= run_s) or now > deadline:
            break
        for _key, _ in sel.select(timeout=0.01):
            chunk = os.read(child.stdout.fileno(), 65536)
            data += chunk
            if started is None and chunk:
                started = time.monotonic()
        if child.poll() is not None:
            break
    child.send_signal(signal.SIGKILL)
    data += child.stdout.read()  # acks already in the pipe were acknowledged before the kill
    child.wait(CHILD_WAIT_S)
    child.stdout.close()
    sel.close()
    return data


def copy_model(m: Model) -> Model:
    return Model(m.hard_state, m.snap, list(m.log))


def tail(m: Model, after: int) -> list[tuple[int, int, int, bytes]]:
    return [e for e in m.log if e[0] > after]


def check(got: Model, a: Model, b: Model, where: str) -> None:
    # A step that installs a snapshot makes it durable before the hard state; initial_state()
    # raises the (volatile) commit index to the snapshot index.
    term, vote, commit = a.hard_state
    lifted = (term, vote, max(commit, got.snap_index))
    allowed = (a.hard_state, b.hard_state, lifted)
    assert got.hard_state in allowed, f"{where}: hard state {got.hard_state} not in {allowed}"
    assert got.snap in (a.snap, b.snap), f"{where}: snapshot {got.snap and got.snap[:2]}"
    s = got.snap_index
    ta, tb = tail(a, s), tail(b, s)
    if got.log == ta:
        return
    agree = 0
    while agree < min(len(ta), len(tb)) and ta[agree] == tb[agree]:
        agree += 1
    assert got.log == tb[: len(got.log)], f"{where}: the log is not a prefix of the next step's"
    assert len(got.log) >= agree, f"{where}: acknowledged entries lost ({len(got.log)} < {agree})"


def test_acknowledged_steps_survive_kill_9(tmp_path: Path) -> None:
    run_rounds(tmp_path, ROUNDS)


@pytest.mark.slow
def test_acknowledged_steps_survive_many_kill_9(tmp_path: Path) -> None:
    run_rounds(tmp_path, ROUNDS_SLOW)


def run_rounds(tmp_path: Path, rounds: int) -> None:
    seed = int(os.environ.get("HAPERF_CRASH_SEED", random.randrange(1 << 30)))
    print(f"DiskStorage kill -9 test seed={seed}")
    rng = random.Random(seed)
    directory = tmp_path / "node"
    start = Model()
    acked_total = 0
    for round_no in range(rounds):
        out = run_and_kill(spawn(directory, seed, round_no), rng.uniform(0.05, RUN_S_MAX))
        steps = [int(line) for line in out.decode().split()]
        assert steps == list(range(len(steps))), f"seed={seed}: garbled output"
        acked_total += len(steps)
        for _ in range(RECOVERY_KILLS):
            child = spawn(directory, seed, round_no, "recover")
            assert child.stdout is not None
            assert child.stdout.readline() == b"opening\n"
            time.sleep(rng.uniform(0.0, 0.01))
            child.send_signal(signal.SIGKILL)
            child.wait(CHILD_WAIT_S)
            child.stdout.close()
        # Replay: a = the state after the last acknowledged step, b = after the one in flight.
        step_gen = step_rng(seed, round_no)
        a = copy_model(start)
        b = copy_model(start)
        for _ in range(len(steps) + 1):
            a = copy_model(b)
            next_step(step_gen, b)
        with DiskStorage(
            directory, segment_bytes=SEGMENT_BYTES, entry_bytes_max=ENTRY_BYTES_MAX
        ) as disk:
            got = model_from(disk.initial_state())
        check(got, a, b, f"seed={seed} round={round_no} after {len(steps)} acknowledged steps")
        start = got
    assert acked_total, "the child never acknowledged a step"
    print(f"{acked_total} acknowledged steps, final log ends at {start.last_index}")
