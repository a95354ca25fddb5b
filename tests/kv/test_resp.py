"""The RESP parser and encoders: round trips, every truncation, hostile lengths, fuzzing.

Owns the tests of haperf._native.resp and its pure-Python twins in haperf.kv.resp. The native
parser is checked against the Python one on random, mutated and hostile byte streams (same
requests, same error at the same point); requests survive any split into chunks; the reply
encoders agree with each other and ReplyParser reads back what they wrote.
"""

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haperf.errors import ProtocolError
from haperf.kv.resp import (
    ErrorReply,
    PyReplyParser,
    PyRequestParser,
    ReplyParser,
    RequestParser,
    encode_command,
    encode_commands,
    encode_replies,
    encode_reply,
    py_encode_replies,
)

Parser = type[RequestParser] | type[PyRequestParser]
PARSERS = [RequestParser, PyRequestParser]

arg_st = st.binary(max_size=40)
request_st = st.lists(arg_st, min_size=1, max_size=6)


def _feed_all(parser: RequestParser | PyRequestParser, chunks: list[bytes]) -> object:
    """All requests the chunks give, then ("error", message) if the stream broke."""
    out: list[object] = []
    for chunk in chunks:
        try:
            out.extend(parser.feed(chunk))
        except ProtocolError as err:
            out.append(("error", str(err)))
            return out
        if parser.error is not None:
            out.append(("error", str(parser.error)))
            return out
    return out


def _split(data: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    if len(data) < 2:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("parser_type", PARSERS)
@given(st.lists(request_st, min_size=1, max_size=8), st.integers(min_value=0, max_value=2**32))
def test_pipelined_requests_round_trip_in_any_chunking(
    parser_type: Parser, requests: list[list[bytes]], seed: int
) -> None:
    data = encode_commands(requests)
    assert data == b"".join(encode_command(r) for r in requests)
    rng = random.Random(seed)
    parser = parser_type()
    got = _feed_all(parser, _split(data, rng, rng.randint(1, 12)))
    assert got == requests
    assert parser.pending_bytes == 0


@pytest.mark.parametrize("parser_type", PARSERS)
def test_every_truncation_waits_then_completes(parser_type: Parser) -> None:
    requests = [[b"SET", b"key", b"v" * 20], [b"GET", b"key"], [b"PING"]]
    data = encode_commands(requests) + b"PING\r\n"
    for cut in range(len(data) + 1):
        parser = parser_type()
        first = parser.feed(data[:cut])
        rest = parser.feed(data[cut:])
        assert first + rest == [*requests, [b"PING"]]
        assert parser.error is None


@pytest.mark.parametrize("parser_type", PARSERS)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*99999999999\r\n", "above args_max"),
        (b"*1\r\n$99999999999\r\n", "above bulk_bytes_max"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
        (b"*1\r\n\x00", "expected '$', got byte 0x00"),
        (b"*1\r\n$3\r\nabcXY", "not followed by CRLF"),
        (b"*2\r\n$3\r\nabc\r\n$3\r\nab", None),  # incomplete, not an error
        (b"*" + b"1" * 30, "no CRLF"),
        (b"*1\r\n$" + b"9" * 40, "no CRLF"),
        (b"*1\r\n$1\rx", "no CRLF"),
        (b"*123456789012345678901\r\n", "invalid multibulk length"),
        (b"x" * 70_000, "too big inline request"),
    ],
)
def test_hostile_requests_get_a_protocol_error(
    parser_type: Parser, data: bytes, message: str | None
) -> None:
    parser = parser_type(args_max=1000, bulk_bytes_max=1 << 20, request_bytes_max=1 << 21)
    if message is None:
        assert parser.feed(data) == []
        assert parser.error is None
        return
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parser.feed(data)
    # The stream is given up: every later feed raises the same error.
    with pytest.raises(ProtocolError):
        parser.feed(b"*1\r\n$4\r\nPING\r\n")


@pytest.mark.parametrize("parser_type", PARSERS)
def test_request_bytes_max_bounds_a_request_before_its_bytes_arrive(parser_type: Parser) -> None:
    parser = parser_type(args_max=100, bulk_bytes_max=1000, request_bytes_max=2000)
    head = b"*3\r\n$3\r\nSET\r\n$1000\r\n"
    assert parser.feed(head) == []
    with pytest.raises(ProtocolError, match="request_bytes_max"):
        parser.feed(b"x" * 1000 + b"\r\n$1000\r\n")


@pytest.mark.parametrize("parser_type", PARSERS)
def test_requests_before_an_error_are_returned_first(parser_type: Parser) -> None:
    parser = parser_type()
    got = parser.feed(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n")
    assert got == [[b"PING"]]
    assert isinstance(parser.error, ProtocolError)
    with pytest.raises(ProtocolError):
        parser.feed(b"")


@pytest.mark.parametrize("parser_type", PARSERS)
def test_inline_commands_and_empty_arrays(parser_type: Parser) -> None:
    parser = parser_type()
    assert parser.feed(b"PING\r\n\r\n  set  k\tv \n*0\r\n*-1\r\nGET k\r\n") == [
        [b"PING"],
        [b"set", b"k", b"v"],
        [b"GET", b"k"],
    ]


def test_large_value_in_many_chunks_is_parsed_once() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = encode_command([b"SET", b"k", value])
    parser = RequestParser(bulk_bytes_max=2 << 20, request_bytes_max=4 << 20)
    out = []
    for i in range(0, len(data), 4096):
        out += parser.feed(data[i : i + 4096])
        if i + 4096 < len(data):
            assert out == []
    assert out == [[b"SET", b"k", value]]


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2**32))
def test_native_and_python_parsers_agree_on_random_bytes(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    chunks = _split(data, rng, rng.randint(1, 6))
    bounds = {"args_max": 8, "bulk_bytes_max": 64, "request_bytes_max": 256, "inline_bytes_max": 64}
    native = _feed_all(RequestParser(**bounds), chunks)
    assert native == _feed_all(PyRequestParser(**bounds), chunks)


@given(st.lists(request_st, min_size=1, max_size=4), st.data())
def test_native_and_python_parsers_agree_on_mutated_requests(
    requests: list[list[bytes]], draw: st.DataObject
) -> None:
    raw = bytearray(encode_commands(requests))
    for _ in range(draw.draw(st.integers(min_value=1, max_value=4))):
        i = draw.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[i] = draw.draw(st.sampled_from([0, 10, 13, 36, 42, 45, 48, 57, 255]))
    bounds = {"args_max": 8, "bulk_bytes_max": 64, "request_bytes_max": 512, "inline_bytes_max": 64}
    data = bytes(raw)
    native = _feed_all(RequestParser(**bounds), [data])
    assert native == _feed_all(PyRequestParser(**bounds), [data])


def test_parser_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        RequestParser(args_max=0)
    with pytest.raises(ValueError):
        PyRequestParser(request_bytes_max=1)


# ------------------------------------------------------------------ replies

reply_st = st.recursive(
    st.one_of(
        st.none(),
        st.binary(max_size=20),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=10,
        ),
        st.builds(ErrorReply, st.text(alphabet="ABC xyz", min_size=1, max_size=10)),
    ),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)


def _expected(value: object) -> object:
    """What ReplyParser gives back for an encoded value (ints outside int64 become bulk)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return b"%d" % value
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


@given(st.lists(reply_st, max_size=6), st.integers(min_value=0, max_value=2**32))
def test_replies_encode_identically_and_parse_back(values: list[object], seed: int) -> None:
    data = encode_replies(values)
    assert data == py_encode_replies(values)
    assert data == b"".join(encode_reply(v) for v in values)
    assert encode_replies(values, True) == py_encode_replies(values, True)
    for parser in (ReplyParser(), PyReplyParser()):
        got: list[object] = []
        for chunk in _split(data, random.Random(seed), 5):
            got += parser.feed(chunk)
        assert got == [_expected(v) for v in values]
    # RESP3 (after HELLO 3) differs only in its null, which both parsers read as None.
    resp3 = encode_replies(values, True)
    expected = [_expected(v) for v in values]
    assert ReplyParser().feed(resp3) == PyReplyParser().feed(resp3) == expected


@given(st.binary(max_size=120))
def test_reply_parsers_agree_on_random_bytes(data: bytes) -> None:
    results = []
    for parser in (ReplyParser(), PyReplyParser()):
        try:
            results.append(("ok", parser.feed(data)))
        except ProtocolError:
            results.append(("error", None))
    assert results[0] == results[1]


def test_reply_types_and_resp3() -> None:
    assert encode_replies([None, True, "OK", b"", ErrorReply("ERR x")]) == (
        b"$-1\r\n:1\r\n+OK\r\n$0\r\n\r\n-ERR x\r\n"
    )
    assert encode_reply({b"proto": 3, b"m": [None]}, True) == (
        b"%2\r\n$5\r\nproto\r\n:3\r\n$1\r\nm\r\n*1\r\n_\r\n"
    )
    assert encode_reply({b"a": 1}) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert ErrorReply("ERR a\r\nb").message == "ERR a  b"
    with pytest.raises(ValueError, match="CR or LF"):
        encode_reply("a\r\n")
    with pytest.raises(TypeError):
        encode_reply(1.5)
    nested: list[object] = []
    for _ in range(20):
        nested = [nested]
    with pytest.raises(ValueError, match="deeper"):
        encode_reply(nested)
    assert encode_command(["SET", b"k", 12]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    with pytest.raises(TypeError):
        encode_command([1.5])


@pytest.mark.parametrize(
    "data", [b"?what\r\n", b"$-5\r\n", b"*-7\r\n", b":abc\r\n", b"$3\r\nabcXY"]
)
def test_reply_parser_refuses_non_resp(data: bytes) -> None:
    for parser in (ReplyParser(), PyReplyParser()):
        with pytest.raises(ProtocolError):
            parser.feed(data)
