"""CRC32C: published vectors, every length and alignment against a reference, buffers, errors.

Every path the CPU offers is checked (the dispatching one and each forced path), so a machine
with the crc32 instruction still tests the portable code and vice versa.
"""

import array
import sys
import threading
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf._native import crc32c as native
from haperf.checksum import NOGIL_BYTES_MIN, backend, crc32c, crc32c_combine
from tests.checksum.reference import crc32c_bitwise, crc32c_prefixes

CrcFn = Callable[..., int]


def _forced(name: str) -> CrcFn:
    def fn(data: object, value: int = 0) -> int:
        return native.crc32c_path(name, data, value)  # type: ignore[arg-type]

    return fn


def _paths() -> list[tuple[str, CrcFn]]:
    paths: list[tuple[str, CrcFn]] = [("auto", crc32c), ("portable", native.crc32c_portable)]
    paths += [(name, _forced(name)) for name in native.paths()]
    return paths


PATHS = _paths()
PATH_IDS = [name for name, _ in PATHS]


@pytest.fixture(params=PATHS, ids=PATH_IDS)
def crc(request: pytest.FixtureRequest) -> CrcFn:
    fn: CrcFn = request.param[1]
    return fn


# RFC 3720 (iSCSI) appendix B.4 gives these CRC32C results; "123456789" is the standard check.
RFC3720_B4 = [
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (
        # B.4's 48-byte "SCSI Read (10) Command PDU".
        bytes.fromhex(
            "01c00000" + "00" * 12 + "14000000"
            "00000400"
            "00000014"
            "00000018"
            "28000000"
            "00000000"
            "02000000"
            "00000000"
        ),
        0xD9963A56,
    ),
]


def test_reference_matches_published_vectors() -> None:
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    for data, expected in RFC3720_B4:
        assert crc32c_bitwise(data) == expected
        assert list(crc32c_prefixes(data))[-1] == expected


def test_check_value(crc: CrcFn) -> None:
    assert crc(b"123456789") == 0xE3069283
    assert crc(b"") == 0


@pytest.mark.parametrize(
    ("data", "expected"), RFC3720_B4, ids=["zeros", "ones", "inc", "dec", "pdu"]
)
def test_rfc3720_vectors(crc: CrcFn, data: bytes, expected: int) -> None:
    assert len(data) in (32, 48)
    assert crc(data) == expected


def _aligned_buffer(size: int, seed: int) -> tuple[np.ndarray, int]:
    """Random bytes in a numpy buffer, plus the offset at which its address is 64-byte aligned."""
    rng = np.random.default_rng(seed)
    buf = rng.integers(0, 256, size + 64, dtype=np.uint8)
    base = (-buf.ctypes.data) % 64
    return buf, base


@pytest.mark.parametrize("value", [0, 0xFFFFFFFF, 0x12345678])
def test_every_length_and_alignment(crc: CrcFn, value: int) -> None:
    """Lengths 0..4096 at each of the 64 start alignments, against the reference."""
    buf, base = _aligned_buffer(4096 + 64, seed=value)
    view = memoryview(buf)
    for alignment in range(64):
        start = base + alignment
        window = bytes(view[start : start + 4096])
        expected = list(crc32c_prefixes(window, value))
        got = [crc(view[start : start + n], value) for n in range(4097)]
        mismatches = [n for n in range(4097) if got[n] != expected[n]]
        assert not mismatches, f"alignment {alignment}: first bad length {mismatches[0]}"


@pytest.mark.parametrize("size", [24575, 24576, 24577, 100_003, 1 << 20, (1 << 20) + 7])
def test_large_inputs(crc: CrcFn, size: int) -> None:
    """Sizes around the long-lane block (3 x 8 KiB) and beyond, against the reference."""
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc(data) == list(crc32c_prefixes(data))[-1]


@given(data=st.binary(max_size=3000), value=st.integers(0, 0xFFFFFFFF))
def test_matches_bitwise_reference(data: bytes, value: int) -> None:
    expected = crc32c_bitwise(data, value)
    for _, fn in PATHS:
        assert fn(data, value) == expected


@given(data=st.binary(max_size=5000), cut=st.integers(0, 5000))
def test_incremental_equals_whole(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)


@given(a=st.binary(max_size=2000), b=st.binary(max_size=2000))
def test_combine(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc32c(a), crc32c(b), len(b)) == crc32c(a + b)


def test_combine_large_length() -> None:
    """Combining past 4 GiB of (virtual) zeros agrees with extending in steps."""
    zeros = bytes(1 << 20)
    crc_zeros = crc32c(zeros)
    head = crc32c(b"head")
    step = head
    for _ in range(3):
        step = crc32c(zeros, step)
    assert crc32c_combine(head, crc32c(zeros, crc32c(zeros, crc_zeros)), 3 << 20) == step
    assert 0 <= crc32c_combine(head, 0, (1 << 64) - 1) <= 0xFFFFFFFF


def test_buffer_types_agree() -> None:
    data = np.random.default_rng(7).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    expected = crc32c(data)
    assert crc32c(bytearray(data)) == expected
    assert crc32c(memoryview(data)) == expected
    assert crc32c(np.frombuffer(data, dtype=np.uint8)) == expected
    assert crc32c(np.frombuffer(data, dtype=np.float64)) == expected
    assert crc32c(np.frombuffer(data, dtype=np.uint8).reshape(10, 100)) == expected
    assert crc32c(array.array("B", data)) == expected
    assert crc32c(memoryview(data)[100:200]) == crc32c(data[100:200])


def test_large_buffers_are_not_copied() -> None:
    """Checksumming 32 MiB through the buffer protocol allocates nothing of that size."""
    big = np.ones(32 << 20, dtype=np.uint8)
    view = memoryview(bytearray(8 << 20))
    tracemalloc.start()
    try:
        crc32c(big)
        crc32c(view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_non_contiguous_buffer_is_rejected_clearly() -> None:
    strided = np.arange(100, dtype=np.uint8)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        crc32c(strided)
    fortran = np.asfortranarray(np.arange(100, dtype=np.uint8).reshape(10, 10))
    with pytest.raises(ValueError, match="C-contiguous"):
        crc32c(fortran)


@pytest.mark.parametrize("bad", ["text", 42, None, 3.5, [1, 2]])
def test_non_buffer_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        crc32c(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1 << 32, 1 << 70])
def test_out_of_range_value_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.0xFFFFFFFF"):
        crc32c(b"abc", bad)


@pytest.mark.parametrize("bad", ["0", 1.0, None, b"\x00"])
def test_non_int_value_is_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="value must be an int"):
        crc32c(b"abc", bad)  # type: ignore[arg-type]


def test_combine_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="crc_a"):
        crc32c_combine(-1, 0, 0)
    with pytest.raises(TypeError, match="crc_b"):
        crc32c_combine(0, "0", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="len_b"):
        crc32c_combine(0, 0, -1)
    with pytest.raises(ValueError, match="len_b"):
        crc32c_combine(0, 0, 1 << 64)


def test_backend_names_the_dispatch_choice() -> None:
    assert backend() in native.paths()
    assert native.paths()[0] == "slicing-by-8"


def test_unavailable_path_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown crc32c path"):
        native.crc32c_path("no-such-path", b"")


def test_threads_checksum_large_buffers_concurrently() -> None:
    """Inputs above NOGIL_BYTES_MIN run without the GIL; results stay exact under threads."""
    buffers = [
        np.random.default_rng(seed).integers(0, 256, 4 * NOGIL_BYTES_MIN + seed, dtype=np.uint8)
        for seed in range(4)
    ]
    expected = [crc32c(b.tobytes()) for b in buffers]
    results: list[list[int]] = [[] for _ in buffers]

    def work(i: int) -> None:
        for _ in range(50):
            results[i].append(crc32c(buffers[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(buffers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    for i, got in enumerate(results):
        assert got == [expected[i]] * 50


def _main_thread_ran_during(data: object, calls: int) -> bool:
    """Whether the main thread got to run while another thread checksummed `data` `calls` times.

    The switch interval is raised to 30 s, so a thread that keeps the GIL is never asked to give
    it up mid-work: the main thread, woken by the event, can only run while the worker is inside
    a call that released the GIL, or after the worker is done.
    """
    started = threading.Event()
    finished = [False]

    def work() -> None:
        started.set()
        for _ in range(calls):
            crc32c(data)
        finished[0] = True

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait(timeout=60)
        ran_during = not finished[0]
        worker.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert not worker.is_alive()
    return ran_during


def test_large_inputs_release_the_gil() -> None:
    assert _main_thread_ran_during(np.ones(64 << 20, dtype=np.uint8), calls=20)


def test_small_inputs_keep_the_gil() -> None:
    """The control: below NOGIL_BYTES_MIN the worker never lets go, so the check above can fail."""
    assert not _main_thread_ran_during(bytes(NOGIL_BYTES_MIN - 1), calls=20_000)
