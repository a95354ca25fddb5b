"""CRC32C benchmarks: haperf's crc32c at sizes from 16 B to 1 MiB, each implementation, and peers.

Owns the crc32c group. The path_* rows force one implementation each (portable slicing-by-8,
SSE4.2 crc32 lanes, PCLMULQDQ folding, AVX-512 VPCLMULQDQ folding) where the CPU has it. Large
rows are divided by the instruction floor at the same size: three independent chains of the
SSE4.2 crc32 instruction over the buffer with nothing else (no merge, no tail; see
haperf_crc32c_limit in native/include/haperf_crc32c.h), the most that instruction can do on
this core, so a folding path below 1.00x of it is faster than any crc32-instruction design.
Small rows are divided by floor.py_call. Peers: zlib.crc32 (CRC-32/IEEE, a different
polynomial, so the same job but not interchangeable), the `crc32c` package and `google-crc32c`,
each run only when installed (pip install 'haperf[peers]').
"""

import random
import zlib
from collections.abc import Callable

from haperf._native import crc32c as native
from haperf.bench.registry import Benchmark, Op, Peer, register_all

SIZES = (16, 64, 256, 1024, 4096, 65536, 1 << 20)
INSTRUCTION_FLOOR_SIZES = (65536, 1 << 20)
SEED = 20261122


def size_label(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}KiB"
    return f"{n}B"


def payload(n: int) -> bytes:
    """Seeded random bytes, so every run checksums the same data."""
    return random.Random(SEED + n).randbytes(n)


def _op(fn: Callable[..., object], n: int) -> Callable[[], Op]:
    return lambda: Op(fn, (payload(n),))


def _instruction_floor(n: int, streams: int) -> Callable[[], Op]:
    def setup() -> Op:
        return Op(native._instruction_floor, (payload(n), streams))

    return setup


# Each implementation, by the name paths() gives it and a short label for row names.
PATH_LABELS = {
    "slicing-by-8": "portable",
    "sse4.2": "sse42",
    "pclmulqdq": "pclmul",
    "avx512-vpclmulqdq": "avx512",
}


def _path_op(path: str, n: int) -> Callable[[], Op]:
    return lambda: Op(native.crc32c_path, (path, payload(n)))


def _path_available(path: str) -> Callable[[], bool]:
    return lambda: path in native.paths()


def _has_instruction() -> bool:
    return native.backend() != "slicing-by-8"


def _zlib(n: int) -> Callable[[], Op]:
    return lambda: Op(zlib.crc32, (payload(n),))


def _icrar(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import crc32c as icrar  # type: ignore[import-not-found,unused-ignore]

        return Op(icrar.crc32c, (payload(n),))

    return setup


def _google(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import google_crc32c  # type: ignore[import-not-found,unused-ignore]

        if google_crc32c.implementation != "c":
            # Its pure-Python fallback would make the comparison meaningless.
            raise ImportError("google-crc32c without its C extension", name="google_crc32c")
        return Op(google_crc32c.value, (payload(n),))

    return setup


def _peers(n: int) -> tuple[Peer, ...]:
    return (
        Peer("zlib.crc32", _zlib(n), note="CRC-32/IEEE, not CRC32C"),
        Peer("crc32c.crc32c", _icrar(n), note="crc32c package"),
        Peer("google_crc32c.value", _google(n), note="google-crc32c package"),
    )


def _floor_for(n: int) -> str:
    if n in INSTRUCTION_FLOOR_SIZES:
        return f"crc32c.instruction_floor_{size_label(n)}"
    return "floor.py_call"


def _benchmarks() -> list[Benchmark]:
    rows = [
        Benchmark(
            f"crc32c.instruction_floor_{size_label(n)}",
            "crc32c",
            f"3 chains of the crc32 instruction over {size_label(n)} (no merge, no tail)",
            _instruction_floor(n, 3),
            floor=None,
            bytes_per_op=n,
            is_floor=True,
            available=_has_instruction,
        )
        for n in INSTRUCTION_FLOOR_SIZES
    ]
    rows += [
        Benchmark(
            f"crc32c.{size_label(n)}",
            "crc32c",
            f"crc32c(bytes of {size_label(n)})",
            _op(native.crc32c, n),
            floor=_floor_for(n),
            bytes_per_op=n,
            peers=_peers(n),
        )
        for n in SIZES
    ]
    rows.append(
        Benchmark(
            "crc32c.bytearray_64B",
            "crc32c",
            "crc32c(bytearray of 64 B): the buffer-protocol path",
            lambda: Op(native.crc32c, (bytearray(payload(64)),)),
            bytes_per_op=64,
        )
    )
    rows += [
        Benchmark(
            f"crc32c.path_{label}_{size_label(n)}",
            "crc32c",
            f"crc32c forced onto the {path} path, bytes of {size_label(n)}",
            _path_op(path, n),
            floor=_floor_for(n),
            bytes_per_op=n,
            available=_path_available(path),
        )
        for path, label in PATH_LABELS.items()
        for n in (4096, 1 << 20)
    ]
    rows.append(
        Benchmark(
            "crc32c.one_chain_1MiB",
            "crc32c",
            "1 chain of the crc32 instruction over 1 MiB: the latency-bound loop",
            _instruction_floor(1 << 20, 1),
            floor="crc32c.instruction_floor_1MiB",
            bytes_per_op=1 << 20,
            available=_has_instruction,
        )
    )
    return rows


register_all(_benchmarks())
