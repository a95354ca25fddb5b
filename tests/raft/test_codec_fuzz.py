"""Fuzzing the decoder: random and mutated frames give a Message or a CodecError, nothing else.

Four generators, all from one seeded random.Random (the seed is printed; set HAPERF_FUZZ_SEED
to replay a run): random bytes; random bodies behind a valid header and CRC; bodies built
section by section with lengths and counts slightly or wildly off (also behind a valid CRC),
which reach every branch of the body parser; and valid frames mutated (bit flips, byte writes,
inserts, deletes, cuts, length fields set to hostile values), half of them resealed so the
checksum does not stop them first.
A frame that decodes must re-encode, and decode back to the same message. Every case also runs
through a FrameReader split at a random point. CI runs a few thousand cases; the slow-marked
run does two million (HAPERF_FUZZ_CASES overrides the count).
"""

import os
import random
import struct
from collections.abc import Callable

import pytest

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.errors import CodecError
from tests.raft.codec_cases import append_entries, reseal, samples

DEFAULT_SEED = 20261122
CI_CASES = 20_000
SLOW_CASES = 2_000_000
HOSTILE_U32 = (0, 1, 12, 13, 14, 21, 255, 4096, 4097, 65536, 65537, 2**24, 2**26, 2**31, 2**32 - 1)


def _corpus(rng: random.Random) -> list[bytes]:
    frames = [codec.encode(x) for x in samples().values()]
    frames.append(codec.encode(append_entries(4, size=codec.COPY_SIZE_MAX + 40)))
    for _ in range(20):
        frames.append(codec.encode(_random_message(rng)))
    return frames


def _random_message(rng: random.Random) -> m.Message:
    def u64() -> int:
        return rng.choice((0, 0, 1, rng.getrandbits(8), rng.getrandbits(64), 2**64 - 1))

    conf = m.ConfState(
        [u64() for _ in range(rng.randrange(4))],
        [u64() for _ in range(rng.randrange(3))],
        [u64() for _ in range(rng.randrange(3))],
        auto_leave=rng.random() < 0.5,
    )
    return m.Message(
        type=rng.randrange(1, 15),
        to=u64(),
        frm=u64(),
        term=u64(),
        log_term=u64(),
        index=u64(),
        commit=u64(),
        reject=rng.random() < 0.5,
        reject_hint=u64(),
        hint_term=u64(),
        snap_offset=u64(),
        snap_done=rng.random() < 0.5,
        context=rng.randbytes(rng.randrange(12)),
        entries=[
            m.Entry(u64(), u64(), rng.randbytes(rng.choice((0, 3, 40, 600))), rng.randrange(2))
            for _ in range(rng.randrange(5))
        ],
        snapshot=m.SnapshotMeta(u64(), u64(), conf) if rng.random() < 0.3 else None,
        snap_data=rng.randbytes(rng.choice((0, 0, 7, 700))),
    )


def _random_bytes(rng: random.Random, _corpus: list[bytes]) -> bytes:
    return rng.randbytes(rng.randrange(0, 200))


def _random_body(rng: random.Random, _corpus: list[bytes]) -> bytes:
    body = rng.randbytes(rng.randrange(2, 300))
    fields = rng.getrandbits(15) if rng.random() < 0.9 else rng.getrandbits(16)
    body = struct.pack("<H", fields) + body[2:]
    head = codec.MAGIC + bytes([codec.VERSION, rng.randrange(0, 17)])
    head += struct.pack("<I", 12 + len(body)) + b"\0\0\0\0"
    return reseal(head + body)


def _structured(rng: random.Random, _corpus: list[bytes]) -> bytes:
    """A checksum-valid frame whose sections follow the layout, with lengths slightly off."""

    def length(true: int) -> int:
        roll = rng.random()
        if roll < 0.8:
            return true
        if roll < 0.95:
            return max(0, true + rng.randrange(-3, 4))
        return rng.choice(HOSTILE_U32)

    fields = rng.getrandbits(15)
    body = bytearray(struct.pack("<H", fields))
    body += rng.randbytes(8 * bin(fields & 0x1FF).count("1"))
    if fields & codec.FIELD_BITS["context"]:
        ctx = rng.randbytes(rng.randrange(6))
        body += struct.pack("<I", length(len(ctx))) + ctx
    if fields & codec.FIELD_BITS["entries"]:
        datas = [rng.randbytes(rng.choice((0, 2, 9, 520))) for _ in range(rng.randrange(4))]
        body += struct.pack("<I", length(len(datas)))
        for data in datas:
            kind = rng.choice((0, 1, 1, 2))
            body += rng.randbytes(16) + bytes([kind]) + struct.pack("<I", length(len(data)))
        body += b"".join(datas)
    if fields & codec.FIELD_BITS["snapshot"]:
        counts = [rng.randrange(3) for _ in range(3)]
        body += rng.randbytes(16) + bytes([rng.choice((0, 1, 1, 2))])
        body += struct.pack("<3I", *(length(c) for c in counts))
        body += rng.randbytes(8 * sum(counts))
    if fields & codec.FIELD_BITS["snap_data"]:
        data = rng.randbytes(rng.choice((1, 5, 600)))
        body += struct.pack("<I", length(len(data))) + data
    if rng.random() < 0.1:
        body += rng.randbytes(rng.randrange(1, 4))
    msg_type = rng.randrange(1, 15) if rng.random() < 0.9 else rng.choice((0, 15, 255))
    head = codec.MAGIC + bytes([codec.VERSION, msg_type])
    head += struct.pack("<I", 12 + len(body)) + b"\0\0\0\0"
    return reseal(head + body)


def _mutated(rng: random.Random, corpus: list[bytes]) -> bytes:
    buf = bytearray(rng.choice(corpus))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        at = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[at] = rng.randrange(256)
        elif op == 2:
            buf[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3 and buf:
            del buf[at : at + rng.randrange(1, 9)]
        elif op == 4:
            del buf[rng.randrange(len(buf) + 1) :]
        elif op == 5 and len(buf) >= 16:
            at = rng.randrange(12, len(buf) - 3)
            buf[at : at + 4] = struct.pack("<I", rng.choice(HOSTILE_U32))
        elif op == 6 and len(buf) >= 8:
            buf[4:8] = struct.pack("<I", len(buf))
    if rng.random() < 0.5 and len(buf) >= 12:
        if rng.random() < 0.7:
            buf[4:8] = struct.pack("<I", len(buf))
        return reseal(buf)
    return bytes(buf)


GENERATORS: tuple[Callable[[random.Random, list[bytes]], bytes], ...] = (
    _random_bytes,
    _random_body,
    _structured,
    _structured,
    _mutated,
    _mutated,
)


def _check_one(data: bytes, split: int) -> bool:
    """True when `data` decoded to a Message; the test fails on any non-CodecError."""
    try:
        msg = codec.decode(data)
    except CodecError:
        decoded = False
    else:
        decoded = True
        assert codec.decode(codec.encode(msg)) == msg
    reader = codec.FrameReader(frame_bytes_max=1 << 20)
    try:
        out = reader.feed(data[:split]) + reader.feed(data[split:])
    except CodecError:
        out = None
    if decoded:
        assert out is not None and len(out) == 1
    return decoded


def run_fuzz(cases: int, seed: int) -> dict[str, int]:
    print(f"codec fuzz: {cases} cases, seed {seed} (replay with HAPERF_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    corpus = _corpus(rng)
    decoded = 0
    for _ in range(cases):
        data = rng.choice(GENERATORS)(rng, corpus)
        decoded += _check_one(data, rng.randrange(len(data) + 1))
    return {"cases": cases, "decoded": decoded}


def _seed() -> int:
    return int(os.environ.get("HAPERF_FUZZ_SEED", DEFAULT_SEED))


def test_fuzz_ci() -> None:
    result = run_fuzz(CI_CASES, _seed())
    # Resealed mutations (an inserted byte in a payload, a flipped flag bit) sometimes still
    # parse: the fuzzer reaches success paths too, not only the first check.
    assert 0 < result["decoded"] < result["cases"]


@pytest.mark.slow
def test_fuzz_millions() -> None:
    cases = int(os.environ.get("HAPERF_FUZZ_CASES", SLOW_CASES))
    result = run_fuzz(cases, _seed())
    assert result["decoded"] > 0
