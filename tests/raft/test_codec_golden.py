"""Golden frames: version 1 of the wire format stays byte-for-byte what it was.

Owns the compatibility pin. tests/raft/testdata/codec_v1.txt holds the frames of
codec_cases.samples() (one per Raft message kind) as the version-1 encoder first wrote them.
While this build speaks version 1, they must decode to the same messages, and the messages must
encode to the same bytes, so an accidental layout change fails here. A deliberate change bumps
VERSION, adds a new golden file, and decides here what becomes of version-1 frames; it never
rewrites this file.
"""

from pathlib import Path

import pytest

from haperf._native import codec
from tests.raft.codec_cases import samples

GOLDEN = Path(__file__).parent / "testdata" / "codec_v1.txt"


def _golden() -> dict[str, bytes]:
    frames = {}
    for line in GOLDEN.read_text().splitlines():
        if line and not line.startswith("#"):
            name, hexed = line.split()
            frames[name] = bytes.fromhex(hexed)
    return frames


def test_golden_file_covers_every_sample() -> None:
    assert sorted(_golden()) == sorted(samples())


@pytest.mark.parametrize("name", sorted(samples()))
def test_version_1_frames_decode_and_encode_unchanged(name: str) -> None:
    frame = _golden()[name]
    assert frame[2] == 1
    assert codec.decode(frame) == samples()[name]
    assert codec.encode(samples()[name]) == frame
