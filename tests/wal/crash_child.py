"""Child process of the kill -9 test: appends and syncs forever, printing acknowledged records.

Run as `python crash_child.py DIR SEED MODE`. MODE is one of:
- always: append under sync_policy="always" (each append durable on return), ack each;
- batch: append_batch of 1..40 records then sync(), ack the batch;
- threads: 4 threads calling append_durable (group commit), each ack printed as it returns;
- raft: batches appended at explicit indexes then sync(), and now and then truncate_after(i)
  (a Raft log conflict), announced as "T? i" before the call and acknowledged as "T i" once it
  returned;
- recover: only open the WAL (recovery) and close it, so the parent can kill recovery.
Each ack line is "INDEX TID N": record INDEX holds record_payload(SEED, TID, N). A line is
printed only after the call that made the record (or truncation) durable returned, and flushed
at once.
"""

import os
import random
import sys
import threading

from haperf.wal import WAL

SEGMENT_BYTES = 65536


def record_payload(seed: int, tid: int, n: int) -> bytes:
    rng = random.Random(seed * 1_000_003 + tid * 7919 + n)
    return f"{tid}:{n}:".encode() + rng.randbytes(rng.randrange(0, 400))


def main() -> None:
    directory, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = sys.stdout
    lock = threading.Lock()

    def ack(index: int, tid: int, n: int) -> None:
        with lock:
            out.write(f"{index} {tid} {n}\n")
            out.flush()

    policy = "always" if mode == "always" else "group"
    if mode == "recover":
        out.write("opening\n")  # the parent times its kill from here, into the recovery
        out.flush()
    wal = WAL(directory, sync_policy=policy, segment_bytes=SEGMENT_BYTES, record_bytes_max=1024)
    if mode == "recover":
        wal.close()
        return
    rng = random.Random(seed)
    n = wal.last_index  # distinct (tid, n) per run: start past anything used before
    if mode == "always":
        while True:
            n += 1
            ack(wal.append(record_payload(seed, 0, n)), 0, n)
    elif mode == "raft":
        unique = random.Random(f"{seed}:{os.getpid()}")
        while True:
            last = wal.last_index
            if last > wal.first_index and rng.random() < 0.15:
                at = rng.randrange(max(wal.first_index - 1, last - 40), last)
                with lock:
                    out.write(f"T? {at}\n")  # records after `at` may vanish from here on
                    out.flush()
                wal.truncate_after(at)
                with lock:
                    out.write(f"T {at}\n")
                    out.flush()
                continue
            ns = [unique.getrandbits(40) for _ in range(rng.randrange(1, 21))]
            end = wal.append_batch([record_payload(seed, 0, k) for k in ns], last + 1)
            wal.sync()
            for i, k in enumerate(ns):
                ack(end - len(ns) + 1 + i, 0, k)
    elif mode == "batch":
        while True:
            count = rng.randrange(1, 41)
            batch = [record_payload(seed, 0, n + k + 1) for k in range(count)]
            last = wal.append_batch(batch)
            wal.sync()
            for k in range(count):
                ack(last - count + 1 + k, 0, n + k + 1)
            n += count
    else:

        def writer(tid: int) -> None:
            k = n
            while True:
                k += 1
                ack(wal.append_durable(record_payload(seed, tid, k)), tid, k)

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


if __name__ == "__main__":
    main()
