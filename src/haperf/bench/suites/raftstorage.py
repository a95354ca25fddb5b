"""Raft durable storage benchmarks: DiskStorage on the Ready path and on restart.

Owns the raftstorage group. Entries carry 100 bytes of data.
- ready_100x100B: what Host does with a leader's common Ready: DiskStorage.append(100 entries),
  set_hard_state (commit moved: written, not fsynced), sync() (one WAL fdatasync). Its floor,
  wal_floor_100x102B, is the raw WAL doing append_batch of the same 100 records (the 2-byte entry
  header + the data, built once) + sync() in the same run; with --compare the floor is also
  timed interleaved, as a peer. The row reuses 100 Entry objects and sets their index each call
  (about 3 us per call of the row's time). extra: p50/p99 ms per Ready.
- ready_nosync_100x100B / wal_floor_nosync_100x102B: the same with fsync=False / sync_policy
  "none": the CPU cost of the storage layer without the disk.
- recovery_64k: DiskStorage(dir) + initial_state() on a log of RECOVERY_ENTRIES entries (open,
  verify every frame, decode every entry into an Entry). Floor recovery_floor_64k: WAL(dir) +
  iterate() copying every record, the least a Python recovery of the same log must do.
Files go in HAPERF_BENCH_DIR when set, else tempfile's directory; every row removes its files in
`cleanup`.
"""

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from haperf._native.raft import HardState
from haperf._native.raftmsg import Entry
from haperf.bench.registry import Benchmark, Op, Peer, register_all

DATA = bytes(range(100))
BATCH = 100
TERM = 3
RECOVERY_ENTRIES = 1 << 16
SEGMENT_BYTES = 16 << 20
# The recovery log (8.4 MB of frames) stays in the first half of one segment, so opening it does
# not start preallocating the next segment (a 32 MiB zero-fill that close() would wait for).
RECOVERY_SEGMENT_BYTES = 32 << 20
LATENCY_SAMPLES_MAX = 1 << 20


def _workdir() -> tempfile.TemporaryDirectory[str]:
    base = os.environ.get("HAPERF_BENCH_DIR") or None
    return tempfile.TemporaryDirectory(prefix="haperf-bench-raftstorage-", dir=base)


def _owned(op: Op, tmp: tempfile.TemporaryDirectory[str], close: Callable[[], None]) -> Op:
    done = False

    def cleanup() -> None:
        nonlocal done
        if not done:
            done = True
            close()
            tmp.cleanup()

    return Op(op.fn, op.args, op.is_async, op.ops_per_call, cleanup, op.extra)


def _percentiles_ms(samples: list[int]) -> dict[str, float]:
    if len(samples) < 2:
        return {}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": q[49] / 1e6, "p99_ms": q[98] / 1e6}


def _records() -> list[bytes]:
    from haperf.raft.durable import encode_entry

    return [encode_entry(Entry(TERM, 1, DATA)) for _ in range(BATCH)]


def _ready(fsync: bool) -> Callable[[], Op]:
    def setup() -> Op:
        from haperf.raft.durable import DiskStorage

        tmp = _workdir()
        disk = DiskStorage(os.path.join(tmp.name, "node"), fsync=fsync, segment_bytes=SEGMENT_BYTES)
        entries = [Entry(TERM, 1 + k, DATA) for k in range(BATCH)]
        disk.set_hard_state(HardState(TERM, 1, 0))
        disk.sync()
        append, set_hard_state, sync = disk.append, disk.set_hard_state, disk.sync
        clock = time.perf_counter_ns
        samples: list[int] = []
        state = [1]  # next index

        def ready(batch: list[Entry]) -> None:
            start = clock()
            first = state[0]
            for k, e in enumerate(batch):
                e.index = first + k
            append(batch)
            set_hard_state(HardState(TERM, 1, first - 1))
            sync()
            state[0] = first + BATCH
            if len(samples) < LATENCY_SAMPLES_MAX:
                samples.append(clock() - start)

        op = Op(ready, (entries,), ops_per_call=BATCH, extra=lambda: _percentiles_ms(samples))
        return _owned(op, tmp, disk.close)

    return setup


def _wal_floor(fsync: bool) -> Callable[[], Op]:
    def setup() -> Op:
        from haperf.wal import WAL

        tmp = _workdir()
        wal = WAL(
            tmp.name,
            sync_policy="group" if fsync else "none",
            segment_bytes=SEGMENT_BYTES,
        )
        append_batch, sync = wal.append_batch, wal.sync

        def batch(records: list[bytes]) -> None:
            append_batch(records)
            sync()

        return _owned(Op(batch, (_records(),), ops_per_call=BATCH), tmp, wal.close)

    return setup


def _write_log(directory: str) -> None:
    from haperf.raft.durable import DiskStorage

    with DiskStorage(directory, fsync=False, segment_bytes=RECOVERY_SEGMENT_BYTES) as disk:
        index = 1
        while index <= RECOVERY_ENTRIES:
            disk.append([Entry(TERM, index + k, DATA) for k in range(4096)])
            index += 4096
        disk.set_hard_state(HardState(TERM, 1, RECOVERY_ENTRIES))


def _recovery() -> Op:
    from haperf.raft.durable import DiskStorage

    tmp = _workdir()
    directory = os.path.join(tmp.name, "node")
    _write_log(directory)

    def recover(path: str) -> None:
        disk = DiskStorage(path, fsync=False, segment_bytes=RECOVERY_SEGMENT_BYTES)
        entries = disk.initial_state()[2]
        assert len(entries) == RECOVERY_ENTRIES
        disk.close()

    return _owned(Op(recover, (directory,), ops_per_call=RECOVERY_ENTRIES), tmp, lambda: None)


def _recovery_floor() -> Op:
    from haperf.wal import WAL

    tmp = _workdir()
    directory = os.path.join(tmp.name, "node")
    _write_log(directory)
    wal_dir = os.path.join(directory, "wal")

    def read_all(path: str) -> None:
        wal = WAL(path, sync_policy="none", segment_bytes=RECOVERY_SEGMENT_BYTES)
        copies: list[Any] = [bytes(view) for view in wal.iterate()]
        assert len(copies) == RECOVERY_ENTRIES
        del copies
        wal.close()

    return _owned(Op(read_all, (wal_dir,), ops_per_call=RECOVERY_ENTRIES), tmp, lambda: None)


def _posix() -> bool:
    return os.name == "posix" and hasattr(os, "fdatasync")


def _benchmarks() -> list[Benchmark]:
    rows = [
        Benchmark(
            "raftstorage.wal_floor_100x102B",
            "raftstorage",
            "WAL append_batch(100 x 102 B, the same records) + sync(): one fdatasync",
            _wal_floor(True),
            floor=None,
            is_floor=True,
        ),
        Benchmark(
            "raftstorage.wal_floor_nosync_100x102B",
            "raftstorage",
            'WAL append_batch(100 x 102 B) + sync() under sync_policy="none"',
            _wal_floor(False),
            floor=None,
            is_floor=True,
        ),
        Benchmark(
            "raftstorage.recovery_floor_64k",
            "raftstorage",
            f"WAL open + iterate() copying {RECOVERY_ENTRIES} records (the same log)",
            _recovery_floor,
            floor=None,
            is_floor=True,
            bytes_per_op=len(DATA),
        ),
        Benchmark(
            "raftstorage.ready_100x100B",
            "raftstorage",
            "DiskStorage.append(100 x 100 B) + set_hard_state (commit) + sync(): a leader Ready",
            _ready(True),
            floor="raftstorage.wal_floor_100x102B",
            peers=(
                Peer("raw WAL x100", _wal_floor(True), note="the floor, interleaved"),
            ),
        ),
        Benchmark(
            "raftstorage.ready_nosync_100x100B",
            "raftstorage",
            "the same Ready with fsync=False: the storage layer's CPU cost",
            _ready(False),
            floor="raftstorage.wal_floor_nosync_100x102B",
            peers=(
                Peer("raw WAL x100 nosync", _wal_floor(False), note="the floor, interleaved"),
            ),
        ),
        Benchmark(
            "raftstorage.recovery_64k",
            "raftstorage",
            f"DiskStorage open + initial_state() of {RECOVERY_ENTRIES} entries of 100 B",
            _recovery,
            floor="raftstorage.recovery_floor_64k",
            bytes_per_op=len(DATA),
        ),
    ]
    return [
        Benchmark(
            b.name,
            b.group,
            b.op,
            b.setup,
            floor=b.floor,
            bytes_per_op=b.bytes_per_op,
            peers=b.peers,
            is_floor=b.is_floor,
            available=_posix,
        )
        for b in rows
    ]


register_all(_benchmarks())
