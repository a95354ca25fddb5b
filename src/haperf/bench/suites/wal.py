"""WAL benchmarks: haperf's WAL beside Python baselines and peers, all measured in one run.

Owns the wal group. Records are 100 bytes. Floors (Python baselines on the same disk):
raw_write_fdatasync (os.write of one record + os.fdatasync, on an O_APPEND file) and
raw_joined_{64,256,1024} (b"".join of N records, one os.write, one os.fdatasync). Peers: sqlite3
in WAL mode with synchronous=FULL (1 and N inserts per transaction) and lmdb with sync on
(N puts per write transaction), each only when importable. The Python baselines are also
listed as peers of the rows they bound: with --compare a peer is timed round-robin with the
haperf row, so a burst of disk latency from a neighbour hits both alike, while a floor row is
timed on its own, earlier (on a shared disk the interleaved ratio is the one to read).

haperf rows: append_100B (buffered, no sync), append_sync_100B (sync_policy "always": append
returns after fdatasync), group_{64,256,1024} (append_batch of N records + sync(); extra: p50 and
p99 ms per batch), async_1000_writers (1,000 coroutines, each awaiting append_durable 8 times
in a row, group commit; extra: records/s and p50/p99 latency of one durable append), and
recovery_<size> (open = verify every frame of a log of HAPERF_BENCH_WAL_RECOVERY_MIB MiB,
default 64, beside recovery_floor_<size>: mmap and crc32c every byte of the same files).

Files go in HAPERF_BENCH_DIR when set, else tempfile's directory (docs/wal.md: on the
measuring machine /tmp is the ext4 root disk, not tmpfs). Every row removes its files in
`cleanup`, and the temporary directory removes itself if a harness never calls cleanup.
"""

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.bench.timing import bench_loop

RECORD = bytes(range(100))
GROUPS = (64, 256, 1024)
ASYNC_WRITERS = 1000
ASYNC_ROUNDS = 8  # durable appends each writer makes per timed call
RECOVERY_MIB = int(os.environ.get("HAPERF_BENCH_WAL_RECOVERY_MIB", "64"))
# Latency samples kept per row (a ring would be overkill: rows run for well under a second).
LATENCY_SAMPLES_MAX = 1 << 20


def _workdir() -> tempfile.TemporaryDirectory[str]:
    base = os.environ.get("HAPERF_BENCH_DIR") or None
    return tempfile.TemporaryDirectory(prefix="haperf-bench-wal-", dir=base)


def _records(n: int) -> list[bytes]:
    return [RECORD] * n


def _percentiles_ms(samples: list[int]) -> dict[str, float]:
    if len(samples) < 2:
        return {}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": q[49] / 1e6, "p99_ms": q[98] / 1e6}


def _owned(op: Op, tmp: tempfile.TemporaryDirectory[str], close: Callable[[], None]) -> Op:
    """Attach cleanup: close, then remove the files. A harness that never calls cleanup still
    leaves no files behind: the TemporaryDirectory removes itself when the Op is collected."""
    done = False

    def cleanup() -> None:
        nonlocal done
        if not done:
            done = True
            close()
            tmp.cleanup()

    return Op(op.fn, op.args, op.is_async, op.ops_per_call, cleanup, op.extra)


# ----------------------------------------------------------------------------- Python floors


def _raw_fdatasync() -> Op:
    tmp = _workdir()
    fd = os.open(os.path.join(tmp.name, "raw.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    write, sync = os.write, os.fdatasync

    def one(data: bytes) -> None:
        write(fd, data)
        sync(fd)

    return _owned(Op(one, (RECORD,)), tmp, lambda: os.close(fd))


def _raw_joined(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        tmp = _workdir()
        path = os.path.join(tmp.name, "raw.log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        write, sync = os.write, os.fdatasync

        def batch(records: list[bytes]) -> None:
            write(fd, b"".join(records))
            sync(fd)

        return _owned(Op(batch, (_records(n),), ops_per_call=n), tmp, lambda: os.close(fd))

    return setup


# ----------------------------------------------------------------------------- peers


def _sqlite(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        tmp = _workdir()
        db = sqlite3.connect(os.path.join(tmp.name, "peer.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, data BLOB)")
        rows = [(RECORD,)] * n
        execute, executemany = db.execute, db.executemany

        def txn(_rows: list[tuple[bytes]]) -> None:
            execute("BEGIN")
            executemany("INSERT INTO log (data) VALUES (?)", _rows)
            execute("COMMIT")

        def one(data: bytes) -> None:
            execute("INSERT INTO log (data) VALUES (?)", (data,))  # autocommit: one txn each

        op = Op(one, (RECORD,)) if n == 1 else Op(txn, (rows,), ops_per_call=n)
        return _owned(op, tmp, db.close)

    return setup


def _lmdb(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import lmdb  # type: ignore[import-not-found,unused-ignore]

        tmp = _workdir()
        env = lmdb.open(tmp.name, map_size=1 << 30, sync=True, metasync=True)
        counter = [0]

        def txn(records: list[bytes]) -> None:
            key = counter[0]
            with env.begin(write=True) as t:
                put = t.put
                for r in records:
                    key += 1
                    put(key.to_bytes(8, "big"), r, append=True)
            counter[0] = key

        return _owned(Op(txn, (_records(n),), ops_per_call=n), tmp, env.close)

    return setup


# ----------------------------------------------------------------------------- haperf rows


def _wal(tmp: tempfile.TemporaryDirectory[str], **options: Any) -> Any:
    from haperf.wal import WAL

    return WAL(tmp.name, **options)


def _append_buffered() -> Op:
    tmp = _workdir()
    wal = _wal(tmp, sync_policy="none")
    return _owned(Op(wal.append, (RECORD,)), tmp, wal.close)


def _append_sync() -> Op:
    tmp = _workdir()
    wal = _wal(tmp, sync_policy="always")
    return _owned(Op(wal.append, (RECORD,)), tmp, wal.close)


def _group(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        tmp = _workdir()
        wal = _wal(tmp, sync_policy="group")
        append_batch, sync, clock = wal.append_batch, wal.sync, time.perf_counter_ns
        samples: list[int] = []

        def batch(records: list[bytes]) -> None:
            start = clock()
            append_batch(records)
            sync()
            if len(samples) < LATENCY_SAMPLES_MAX:
                samples.append(clock() - start)

        return _owned(
            Op(
                batch,
                (_records(n),),
                ops_per_call=n,
                extra=lambda: _percentiles_ms(samples),
            ),
            tmp,
            wal.close,
        )

    return setup


def _async_writers() -> Op:
    from haperf.wal import AsyncWAL

    tmp = _workdir()
    loop = bench_loop()
    wal = _wal(tmp, sync_policy="group")
    awal = AsyncWAL(wal, loop)
    clock = time.perf_counter_ns
    latencies: list[int] = []
    totals = [0, 0]  # records, ns

    async def writer() -> None:
        # A writer keeps writing: its next append goes in while other writers' records are
        # still being synced, so fdatasyncs overlap with appending, as in a live service.
        for _ in range(ASYNC_ROUNDS):
            start = clock()
            await awal.append_durable(RECORD)
            if len(latencies) < LATENCY_SAMPLES_MAX:
                latencies.append(clock() - start)

    async def round_of_writers(n: int) -> None:
        start = clock()
        await asyncio.gather(*[writer() for _ in range(n)])
        totals[0] += n * ASYNC_ROUNDS
        totals[1] += clock() - start

    def extra() -> dict[str, float]:
        out = _percentiles_ms(latencies)
        if totals[1]:
            out["records_per_s"] = totals[0] * 1e9 / totals[1]
        return out

    def close() -> None:
        loop.run_until_complete(awal.close())

    return _owned(
        Op(
            round_of_writers,
            (ASYNC_WRITERS,),
            is_async=True,
            ops_per_call=ASYNC_WRITERS * ASYNC_ROUNDS,
            extra=extra,
        ),
        tmp,
        close,
    )


def make_recovery_log(directory: str, total_bytes: int, segment_bytes: int = 16 << 20) -> int:
    """Write a log of about total_bytes of 100-byte records; return the record count."""
    from haperf.wal import WAL

    per_record = 24 + 104
    count = max(1, total_bytes // per_record)
    with WAL(directory, sync_policy="none", segment_bytes=segment_bytes) as wal:
        batch = _records(4096)
        left = count
        while left > 0:
            take = min(left, len(batch))
            wal.append_batch(batch[:take])
            left -= take
        wal.sync()
    return count


def _recovery(total_bytes: int) -> Callable[[], Op]:
    def setup() -> Op:
        from haperf.wal import WAL

        tmp = _workdir()
        count = make_recovery_log(tmp.name, total_bytes)

        def recover(directory: str) -> None:
            # Opening verifies every frame's CRC, index and padding, then maps the segments.
            wal = WAL(directory, sync_policy="none", segment_bytes=16 << 20)
            assert wal.last_index == count
            wal.close()

        return _owned(Op(recover, (tmp.name,)), tmp, lambda: None)

    return setup


def _recovery_floor(total_bytes: int) -> Callable[[], Op]:
    def setup() -> Op:
        import mmap

        from haperf.checksum import crc32c

        tmp = _workdir()
        make_recovery_log(tmp.name, total_bytes)

        def checksum_files(directory: str) -> int:
            # The least any verifying recovery must do: read and checksum every byte once.
            total = 0
            for name in sorted(os.listdir(directory)):
                if name.endswith(".wal"):
                    with open(os.path.join(directory, name), "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                        with mmap.mmap(f.fileno(), size, flags=flags, prot=mmap.PROT_READ) as m:
                            total ^= crc32c(m)
            return total

        return _owned(Op(checksum_files, (tmp.name,)), tmp, lambda: None)

    return setup


def _recovery_label(total_bytes: int) -> str:
    if total_bytes % (1 << 30) == 0:
        return f"{total_bytes >> 30}GiB"
    return f"{total_bytes >> 20}MiB"


def _posix() -> bool:
    return os.name == "posix" and hasattr(os, "fdatasync")


def _benchmarks() -> list[Benchmark]:
    rows = [
        Benchmark(
            "wal.raw_write_fdatasync",
            "wal",
            "Python baseline: os.write(100 B) + os.fdatasync per record (O_APPEND file)",
            _raw_fdatasync,
            floor=None,
            is_floor=True,
        )
    ]
    rows += [
        Benchmark(
            f"wal.raw_joined_{n}",
            "wal",
            f"Python baseline: b''.join({n} x 100 B) + one os.write + one os.fdatasync",
            _raw_joined(n),
            floor=None,
            is_floor=True,
        )
        for n in GROUPS
    ]
    rows += [
        Benchmark(
            "wal.append_100B",
            "wal",
            "wal.append(100 B), buffered (no sync; written out when the buffer fills)",
            _append_buffered,
            floor="floor.py_call",
        ),
        Benchmark(
            "wal.append_sync_100B",
            "wal",
            'wal.append(100 B) under sync_policy="always" (fdatasync before it returns)',
            _append_sync,
            floor="wal.raw_write_fdatasync",
            peers=(
                Peer("raw write+fdatasync", _raw_fdatasync, note="the floor, interleaved"),
                Peer("sqlite3 WAL FULL x1", _sqlite(1), note="1 insert per transaction"),
                Peer("lmdb sync x1", _lmdb(1), note="1 put per write transaction"),
            ),
        ),
    ]
    rows += [
        Benchmark(
            f"wal.group_{n}",
            "wal",
            f"wal.append_batch({n} x 100 B) + wal.sync(): one fdatasync per {n} records",
            _group(n),
            floor=f"wal.raw_joined_{n}",
            peers=(
                Peer(f"raw joined x{n}", _raw_joined(n), note="the floor, interleaved"),
                Peer(f"sqlite3 WAL FULL x{n}", _sqlite(n), note=f"{n} inserts per transaction"),
                Peer(f"lmdb sync x{n}", _lmdb(n), note=f"{n} puts per write transaction"),
            ),
        )
        for n in GROUPS
    ]
    label = _recovery_label(RECOVERY_MIB << 20)
    rows += [
        Benchmark(
            f"wal.recovery_floor_{label}",
            "wal",
            f"floor: mmap + crc32c of every byte of the same {RECOVERY_MIB} MiB log's files",
            _recovery_floor(RECOVERY_MIB << 20),
            floor=None,
            bytes_per_op=RECOVERY_MIB << 20,
            is_floor=True,
        ),
        Benchmark(
            "wal.async_1000_writers",
            "wal",
            "1,000 coroutines each awaiting AsyncWAL.append_durable(100 B) 8 times (group commit)",
            _async_writers,
            floor="floor.await_call",
        ),
        Benchmark(
            f"wal.recovery_{label}",
            "wal",
            f"open a {RECOVERY_MIB} MiB log of 100 B records, verifying every frame",
            _recovery(RECOVERY_MIB << 20),
            floor=f"wal.recovery_floor_{label}",
            bytes_per_op=RECOVERY_MIB << 20,
        ),
    ]
    return rows


register_all(
    [
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
        for b in _benchmarks()
    ]
)
