"""Wire codec benchmarks: encode and decode AppendEntries of 1, 100 and 1000 entries of 100 B.

Owns the codec group. Each encode_append_N / decode_append_N row times haperf._native.codec on
one MSG_APP frame, beside peers doing the same job on an equivalent structure (a dict of the
message's scalar fields with `entries` as a list of [term, index, type, data] lists):
msgpack.packb / unpackb, pickle protocol 5, and orjson, which cannot carry bytes, so its rows
include base64-encoding (or decoding) every payload. The peers' encode rows start from the
ready-made dict, so they do not pay the Message-to-dict conversion haperf's codec does not need.
Decode rows decode one whole frame: payloads up to codec.COPY_SIZE_MAX come back as bytes;
decode_append_100_views forces zero-copy memoryviews for every payload (copy_bytes_max=0).
Decode rows are divided by codec.objects_floor_N: building the same Message, N Entry objects
and N payload copies with no parsing and no checksum (codec._objects_floor), the allocations
any decoder returning this API must make; 1.0x of it means parsing and checking cost nothing.
Also: a heartbeat each way, and FrameReader.feed on a stream of 16 AppendEntries(100) frames
cut into 64 KiB chunks (per message). Inputs are built once in setup, outside the timed region.
"""

import base64
import pickle
from collections.abc import Callable
from typing import Any

from haperf._native import codec
from haperf._native import raftmsg as m
from haperf.bench.registry import Benchmark, Op, Peer, register_all

ENTRY_COUNTS = (1, 100, 1000)
ENTRY_BYTES = 100
STREAM_FRAMES = 16
STREAM_CHUNK_BYTES = 65536


def append_entries(n: int) -> m.Message:
    """The benchmark's AppendEntries: n entries of ENTRY_BYTES distinct bytes each."""
    batch = [
        m.Entry(7, 1000 + i, bytes((i + j) & 0xFF for j in range(ENTRY_BYTES))) for i in range(n)
    ]
    return m.Message(
        m.MSG_APP, to=2, frm=1, term=7, log_term=7, index=999, commit=999, entries=batch
    )


def as_dict(msg: m.Message) -> dict[str, Any]:
    """The equivalent plain structure the peers serialise."""
    return {
        "type": msg.type,
        "to": msg.to,
        "frm": msg.frm,
        "term": msg.term,
        "log_term": msg.log_term,
        "index": msg.index,
        "commit": msg.commit,
        "entries": [[e.term, e.index, e.type, bytes(e.data)] for e in msg.entries],
    }


def _b64_dict(plain: dict[str, Any]) -> dict[str, Any]:
    out = dict(plain)
    out["entries"] = [
        [t, i, k, base64.b64encode(data).decode("ascii")] for t, i, k, data in plain["entries"]
    ]
    return out


def _encode(n: int) -> Callable[[], Op]:
    return lambda: Op(codec.encode, (append_entries(n),))


def _decode(n: int, copy_bytes_max: int = codec.COPY_SIZE_MAX) -> Callable[[], Op]:
    return lambda: Op(codec.decode, (codec.encode(append_entries(n)), copy_bytes_max))


def _objects_floor(n: int) -> Callable[[], Op]:
    return lambda: Op(codec._objects_floor, (bytes(n * ENTRY_BYTES), n))


def _msgpack_encode(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import msgpack  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return Op(msgpack.packb, (as_dict(append_entries(n)),))

    return setup


def _msgpack_decode(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import msgpack  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return Op(msgpack.unpackb, (msgpack.packb(as_dict(append_entries(n))),))

    return setup


def _pickle_encode(n: int) -> Callable[[], Op]:
    return lambda: Op(pickle.dumps, (as_dict(append_entries(n)), 5))


def _pickle_decode(n: int) -> Callable[[], Op]:
    return lambda: Op(pickle.loads, (pickle.dumps(as_dict(append_entries(n)), 5),))


def _orjson_encode(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import orjson

        def encode(plain: dict[str, Any]) -> bytes:
            return orjson.dumps(_b64_dict(plain))

        return Op(encode, (as_dict(append_entries(n)),))

    return setup


def _orjson_decode(n: int) -> Callable[[], Op]:
    def setup() -> Op:
        import orjson

        def decode(data: bytes) -> dict[str, Any]:
            out: dict[str, Any] = orjson.loads(data)
            out["entries"] = [[t, i, k, base64.b64decode(s)] for t, i, k, s in out["entries"]]
            return out

        return Op(decode, (orjson.dumps(_b64_dict(as_dict(append_entries(n)))),))

    return setup


def _peers(n: int, *, encode: bool) -> tuple[Peer, ...]:
    if encode:
        return (
            Peer("msgpack.packb", _msgpack_encode(n), note="dict with a list of entry lists"),
            Peer("pickle.dumps", _pickle_encode(n), note="protocol 5, same dict"),
            Peer("orjson.dumps", _orjson_encode(n), note="same dict, base64 payloads"),
        )
    return (
        Peer("msgpack.unpackb", _msgpack_decode(n), note="dict with a list of entry lists"),
        Peer("pickle.loads", _pickle_decode(n), note="protocol 5, same dict"),
        Peer("orjson.loads", _orjson_decode(n), note="same dict, base64 payloads"),
    )


def _stream() -> Op:
    frames = codec.encode_many([append_entries(100)] * STREAM_FRAMES)
    chunks = [frames[i : i + STREAM_CHUNK_BYTES] for i in range(0, len(frames), STREAM_CHUNK_BYTES)]
    reader = codec.FrameReader()

    def feed_all(pieces: list[bytes]) -> int:
        received = 0
        for piece in pieces:
            received += len(reader.feed(piece))
        return received

    return Op(feed_all, (chunks,), ops_per_call=STREAM_FRAMES)


def _heartbeat() -> m.Message:
    return m.Message(m.MSG_HEARTBEAT, to=2, frm=1, term=7, commit=999)


def _benchmarks() -> list[Benchmark]:
    rows: list[Benchmark] = []
    for n in ENTRY_COUNTS:
        size = codec.encoded_size(append_entries(n))
        rows.append(
            Benchmark(
                f"codec.objects_floor_{n}",
                "codec",
                f"build the Message + {n} Entry objects + {n} x {ENTRY_BYTES} B bytes that a "
                f"decode returns, without decoding",
                _objects_floor(n),
                floor=None,
                is_floor=True,
            )
        )
        rows.append(
            Benchmark(
                f"codec.encode_append_{n}",
                "codec",
                f"encode(AppendEntries with {n} x {ENTRY_BYTES} B entries) -> {size} B frame",
                _encode(n),
                bytes_per_op=size,
                peers=_peers(n, encode=True),
            )
        )
        rows.append(
            Benchmark(
                f"codec.decode_append_{n}",
                "codec",
                f"decode({size} B frame of AppendEntries with {n} x {ENTRY_BYTES} B entries)",
                _decode(n),
                floor=f"codec.objects_floor_{n}",
                bytes_per_op=size,
                peers=_peers(n, encode=False),
            )
        )
    rows += [
        Benchmark(
            "codec.decode_append_100_views",
            "codec",
            "decode(AppendEntries(100 x 100 B), copy_bytes_max=0): every payload a memoryview",
            _decode(100, 0),
            floor="codec.objects_floor_100",
            bytes_per_op=codec.encoded_size(append_entries(100)),
        ),
        Benchmark(
            "codec.feed_append_100",
            "codec",
            f"FrameReader.feed: {STREAM_FRAMES} AppendEntries(100) frames in "
            f"{STREAM_CHUNK_BYTES // 1024} KiB chunks, per message",
            _stream,
            bytes_per_op=codec.encoded_size(append_entries(100)),
        ),
        Benchmark(
            "codec.encode_heartbeat",
            "codec",
            "encode(heartbeat: to, frm, term, commit)",
            lambda: Op(codec.encode, (_heartbeat(),)),
        ),
        Benchmark(
            "codec.decode_heartbeat",
            "codec",
            "decode(heartbeat frame)",
            lambda: Op(codec.decode, (codec.encode(_heartbeat()),)),
        ),
    ]
    return rows


register_all(_benchmarks())
