"""Floors: the cheapest way to do nothing (a call) and to move bytes (memcpy), timed the same way.

Owns the rows every other benchmark divides by. floor.py_call is a no-op Python function called
in the harness loop: a haperf call at 1.0x of it costs no more than an empty Python call.
floor.c_call is the same with a C builtin (id). floor.memcpy_1MiB copies 1 MiB between two
preallocated buffers (a memoryview slice assignment is one memcpy), the bandwidth bar for
byte-crunching rows. floor.await_call awaits a no-op coroutine inside one coroutine loop on the
bench event loop: the bar for async rows (`await af()`).
"""

from haperf.bench.registry import Benchmark, Op, register_all

MEMCPY_BYTES = 1 << 20


def _noop(_x: object) -> None:
    return None


def _py_call() -> Op:
    return Op(_noop, (b"x",))


def _c_call() -> Op:
    return Op(id, (b"x",))


def _memcpy() -> Op:
    src = bytes(range(256)) * (MEMCPY_BYTES // 256)
    dst = memoryview(bytearray(MEMCPY_BYTES))
    return Op(dst.__setitem__, (slice(None), src))


register_all(
    [
        Benchmark(
            "floor.py_call",
            "floor",
            "noop(x): empty Python function, same loop",
            _py_call,
            floor=None,
            is_floor=True,
        ),
        Benchmark(
            "floor.c_call",
            "floor",
            "id(x): C builtin, same loop",
            _c_call,
            floor=None,
            is_floor=True,
        ),
        Benchmark(
            "floor.memcpy_1MiB",
            "floor",
            "memcpy of 1 MiB (memoryview slice assignment)",
            _memcpy,
            floor=None,
            bytes_per_op=MEMCPY_BYTES,
            is_floor=True,
        ),
    ]
)


async def _anoop(_x: object) -> None:
    return None


def _await_call() -> Op:
    return Op(_anoop, (b"x",), is_async=True)


register_all(
    [
        Benchmark(
            "floor.await_call",
            "floor",
            "await anoop(x): empty coroutine awaited in one coroutine loop (bench event loop)",
            _await_call,
            floor=None,
            is_floor=True,
        ),
    ]
)
