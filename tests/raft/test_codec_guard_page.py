"""No read past the end: every malformed frame is decoded flush against an unreadable page.

Owns the out-of-bounds check for the decoder. A frame placed so that its last byte is the last
byte of a readable page, followed by a PROT_NONE page, makes any read beyond the frame a
segmentation fault instead of a silently wrong answer. Every truncation and bit flip of a frame
with every section, resealed hostile lengths, and the fuzz generators run there, through
decode() and FrameReader.feed_borrowed() (both read the caller's memory in place). Linux only
(mprotect through ctypes).
"""

import contextlib
import ctypes
import mmap
import random
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest

from haperf._native import codec
from haperf.errors import CodecError
from tests.conftest import REPO_ROOT
from tests.raft import test_codec_fuzz as fuzz
from tests.raft.codec_cases import reseal, set_u32
from tests.raft.test_codec_malformed import FULL

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="mprotect via ctypes: Linux")

PAGE = mmap.PAGESIZE
PROT_NONE = 0
PROT_READ_WRITE = 3


class GuardedBuffer:
    """One readable page followed by an inaccessible one."""

    def __init__(self) -> None:
        self.mm = mmap.mmap(-1, 2 * PAGE)
        self._libc = ctypes.CDLL(None, use_errno=True)
        anchor = ctypes.c_char.from_buffer(self.mm)
        self._addr = ctypes.addressof(anchor)
        del anchor  # release the export; the mapping's address does not change
        self._protect(PROT_NONE)

    def _protect(self, prot: int) -> None:
        self._libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if self._libc.mprotect(self._addr + PAGE, PAGE, prot) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")

    def flush_end(self, data: bytes) -> memoryview:
        """A view of `data` copied so that it ends exactly at the guard page."""
        assert len(data) <= PAGE
        start = PAGE - len(data)
        self.mm[start:PAGE] = data
        return memoryview(self.mm)[start:PAGE]

    def close(self) -> None:
        self._protect(PROT_READ_WRITE)
        self.mm.close()


@pytest.fixture
def guarded() -> Iterator[GuardedBuffer]:
    buf = GuardedBuffer()
    yield buf
    buf.close()


def _try(guarded: GuardedBuffer, data: bytes) -> None:
    view = guarded.flush_end(data)
    try:
        for copy_max in (codec.COPY_SIZE_MAX, 0):
            try:
                msg = codec.decode(view, copy_max)
            except CodecError:
                pass
            else:
                assert codec.decode(codec.encode(msg)) == msg
                del msg
        with contextlib.suppress(CodecError):
            codec.FrameReader().feed_borrowed(view)
    finally:
        view.release()


def test_the_guard_page_really_faults(guarded: GuardedBuffer) -> None:
    addr = guarded._addr + PAGE
    with open("/proc/self/maps") as maps:
        assert f"{addr:x}-{addr + PAGE:x} ---" in maps.read()
    # Control, in a child process: one byte read past a flush view is a segmentation fault.
    code = (
        "import ctypes\n"
        "from tests.raft.test_codec_guard_page import GuardedBuffer, PAGE\n"
        "buf = GuardedBuffer()\n"
        "ctypes.string_at(buf._addr + PAGE - 1, 1)\n"
        "print('last byte readable', flush=True)\n"
        "ctypes.string_at(buf._addr + PAGE, 1)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.stdout == "last byte readable\n"
    assert child.returncode == -signal.SIGSEGV, child.stderr


def test_truncations_and_bit_flips_read_nothing_past_the_end(guarded: GuardedBuffer) -> None:
    frame = codec.encode(FULL)
    for cut in range(len(frame) + 1):
        _try(guarded, frame[:cut])
    for bit in range(len(frame) * 8):
        bad = bytearray(frame)
        bad[bit // 8] ^= 1 << (bit % 8)
        _try(guarded, bytes(bad))
        _try(guarded, reseal(bad))


def test_hostile_lengths_read_nothing_past_the_end(guarded: GuardedBuffer) -> None:
    frame = codec.encode(FULL)
    for offset in range(12, len(frame) - 3):
        for value in fuzz.HOSTILE_U32:
            _try(guarded, set_u32(frame, offset, value))
    # A field bitmap claiming every section, with nothing behind it.
    head = codec.MAGIC + bytes([codec.VERSION, 2]) + struct.pack("<I", 14) + bytes(4)
    _try(guarded, reseal(head + struct.pack("<H", 0x7FFF)))


def test_fuzz_cases_read_nothing_past_the_end(guarded: GuardedBuffer) -> None:
    rng = random.Random(fuzz.DEFAULT_SEED + 1)
    corpus = [c for c in fuzz._corpus(rng) if len(c) <= PAGE]
    for _ in range(5_000):
        data = rng.choice(fuzz.GENERATORS)(rng, corpus)
        if len(data) <= PAGE:
            _try(guarded, data)
