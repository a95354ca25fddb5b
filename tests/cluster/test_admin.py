"""The admin HTTP endpoint over real loopback sockets, with a fake node as its status source:
each endpoint's content, keep-alive and pipelining, HEAD, and every malformed or oversized
request answered with the right status and no crash (the server keeps serving afterwards)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from haperf.errors import ConfigError, NodeStoppedError
from haperf.kv.admin import AdminServer, render_metrics
from tests.cluster.fakeservice import FakeNode

IO_TIMEOUT_S = 10.0


def serve(body: Callable[[AdminServer, FakeNode], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        node = FakeNode(1, (1, 2, 3))
        admin = AdminServer(node, "127.0.0.1:0", **options)
        async with admin:
            await asyncio.wait_for(body(admin, node), IO_TIMEOUT_S)

    asyncio.run(main())


async def connect(admin: AdminServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = admin.address.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return code, headers, body


async def exchange(admin: AdminServer, raw: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send raw bytes on a new connection; the response and, when it says `Connection: close`,
    whether the server then really closed (False for a kept-alive connection)."""
    reader, writer = await connect(admin)
    writer.write(raw)
    await writer.drain()
    code, headers, body = await read_response(reader)
    closed = headers["connection"] == "close" and await reader.read(1) == b""
    writer.close()
    return code, headers, body, closed


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()


def test_status_is_the_node_status_plus_service_info() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        code, headers, payload, _ = await exchange(admin, get("/status"))
        assert code == 200 and headers["content-type"] == "application/json"
        doc = orjson.loads(payload)
        expected = node.status()
        for key in ("id", "role", "term", "leader", "commit", "applied", "wal_bytes", "peers"):
            assert doc[key] == expected[key]
        assert doc["peers"]["2"]["lag_entries"] == 0
        assert doc["service"]["ready"] is True and doc["service"]["pid"] > 0

    serve(body)


def test_metrics_exposition_format() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        node.commit, node.applied, node.term = 42, 41, 7
        code, headers, payload, _ = await exchange(admin, get("/metrics"))
        assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        text = payload.decode()
        assert 'haperf_raft_term{node="1"} 7' in text
        assert 'haperf_raft_commit_index{node="1"} 42' in text
        assert 'haperf_raft_applied_index{node="1"} 41' in text
        assert 'haperf_raft_role{node="1",role="leader"} 1' in text
        assert 'haperf_raft_role{node="1",role="follower"} 0' in text
        assert 'haperf_raft_peer_lag_entries{node="1",peer="3"} 0' in text
        assert 'haperf_raft_peer_heard_ago_seconds{node="1",peer="2"} 0.01' in text
        assert 'haperf_raft_peer_learner{node="1",peer="2"} 0' in text
        assert 'haperf_raft_proposals_total{node="1"} 42' in text
        assert "# TYPE haperf_raft_proposals_total counter" in text
        assert "# TYPE haperf_raft_peer_lag_seconds gauge" in text
        assert re.search(r'^process_resident_memory_bytes\{node="1"\} \d+$', text, re.M)
        check_exposition(text)

    serve(body)


def check_exposition(text: str) -> None:
    """Every family has one HELP and one TYPE before its samples; samples parse."""
    seen_help: set[str] = set()
    seen_type: set[str] = set()
    sample = re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_]+="[^"]*"(,[a-zA-Z_]+="[^"]*")*\})? '
        r"(-?[0-9.e+-]+|NaN|[+-]Inf)$"
    )
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in seen_help
            seen_help.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in seen_help and name not in seen_type and kind in ("gauge", "counter")
            seen_type.add(name)
        else:
            match = sample.match(line)
            assert match, line
            assert match.group(1) in seen_type, line


def test_metrics_of_a_follower_have_no_fake_lag() -> None:
    node = FakeNode(2, (1, 2, 3))
    text = render_metrics(node.status(), process=False)
    assert "# TYPE haperf_raft_peer_lag_entries gauge" in text
    assert "haperf_raft_peer_lag_entries{" not in text  # null on a follower: no sample at all
    assert 'haperf_raft_peer_connected{node="2",peer="1"} 1' in text
    assert 'haperf_raft_is_leader{node="2"} 0' in text
    check_exposition(text)


def test_livez_and_readyz_follow_the_node() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        node.leader = 0
        code, _, payload, _ = await exchange(admin, get("/readyz"))
        assert code == 503 and b"no known leader" in payload
        assert (await exchange(admin, get("/livez")))[0] == 200
        node.leader, node.commit, node.applied = 1, 10, 3
        code, _, payload, _ = await exchange(admin, get("/readyz"))
        assert code == 503 and b"catching up: applied 3 of 10" in payload
        node.commit, node.applied = 12, 10  # the target stays the commit first learned
        assert (await exchange(admin, get("/readyz")))[0] == 200
        admin.set_stopping()
        code, _, payload, _ = await exchange(admin, get("/readyz"))
        assert code == 503 and b"stopping" in payload

    serve(body)


def test_node_errors_become_503() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        node.fail_with = NodeStoppedError("node stopped")
        code, _, payload, _ = await exchange(admin, get("/status"))
        assert code == 503 and b"node stopped" in payload
        assert (await exchange(admin, get("/livez")))[0] == 200

    serve(body)


def test_keep_alive_pipelining_and_head() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        reader, writer = await connect(admin)
        writer.write(
            b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status?pretty=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        code, headers, payload = await read_response(reader)
        assert (code, payload, headers["connection"]) == (200, b"ok\n", "keep-alive")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head
        code, _, payload = await read_response(reader)  # HEAD sent no body: next is the GET
        assert code == 200 and orjson.loads(payload)["id"] == 1
        writer.write(b"GET /livez HTTP/1.0\r\n\r\n")  # 1.0 without keep-alive: closes
        code, headers, _ = await read_response(reader)
        assert code == 200 and headers["connection"] == "close"
        assert await reader.read(1) == b""
        writer.close()
        assert admin.requests == 4

    serve(body)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"POST /status HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 405),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /status\r\n\r\n", 400),
        (b"get /status HTTP/1.1\r\n\r\n", 400),
        (b"GET status HTTP/1.1\r\n\r\n", 400),
        (b"GET /status HTTP/2.0\r\n\r\n", 505),
        (b"GET /status FTP/1.1\r\n\r\n", 400),
        (b"GET /st\xffatus HTTP/1.1\r\n\r\n", 400),
        (b"GET /status HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /status HTTP/1.1\r\n folded: header\r\n\r\n", 400),
        (b"GET /status HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
        (b"GET /status HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET /status HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET /status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /status HTTP/1.1\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n", 431),
        (b"GET /status HTTP/1.1\r\n" + b"X-A: 1\r\n" * 100 + b"\r\n", 431),
        (
            b"GET /status HTTP/1.1\r\n"
            + b"X-Some-Header: "
            + b"v" * 900
            + b"\r\n" * 1
            + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 900) for i in range(20))
            + b"\r\n",
            431,
        ),
    ],
)
def test_bad_requests_get_an_error_status_and_the_server_survives(raw: bytes, code: int) -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        got, headers, _, closed = await exchange(admin, raw)
        assert got == code
        if code == 405:
            assert headers["allow"] == "GET, HEAD"
        if code not in (404, 405):
            assert closed and headers["connection"] == "close"
            assert admin.bad_requests == 1
        assert (await exchange(admin, get("/livez")))[0] == 200

    serve(body)


def test_clients_that_stall_or_vanish_are_dropped() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        reader, writer = await connect(admin)
        writer.write(b"GET /status HTTP/1.1\r\nHost")  # then nothing: the request timeout
        assert await reader.read(1) == b""
        writer.close()
        reader, writer = await connect(admin)  # idle connection: the idle timeout
        assert await reader.read(1) == b""
        writer.close()
        reader, writer = await connect(admin)
        writer.write(b"GET /status HTTP/1.1\r\n")
        writer.close()  # gone mid-request
        assert (await exchange(admin, get("/livez")))[0] == 200

    serve(body, request_timeout_ns=200_000_000, idle_timeout_ns=200_000_000)


def test_connection_limit_answers_503() -> None:
    async def body(admin: AdminServer, node: FakeNode) -> None:
        held = [await connect(admin) for _ in range(2)]
        await asyncio.sleep(0.05)  # let the server accept both (ordering, not timing)
        for _ in range(100):
            code, _, payload, closed = await exchange(admin, get("/livez"))
            if code == 503:
                break
            await asyncio.sleep(0.01)
        assert code == 503 and closed and b"too many" in payload
        for _, writer in held:
            writer.close()

    serve(body, connections_max=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"listen": "nohost"}, "AdminServer listen"),
        ({"connections_max": 0}, "connections_max must be"),
        ({"request_line_bytes_max": 10}, "request_line_bytes_max must be >= 64"),
        ({"body_bytes_max": -1}, "body_bytes_max must be >= 0"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], message: str) -> None:
    listen = options.pop("listen", "127.0.0.1:0")
    with pytest.raises(ConfigError, match=message):
        AdminServer(FakeNode(), listen, **options)


def test_subsystem_counters_and_gauges() -> None:
    text = render_metrics(
        FakeNode().status(),
        subsystems={"resp": {"commands": 12, "redirects": 1}, "kv": {"keys": 3}},
        process=False,
    )
    assert 'haperf_resp_commands_total{node="1"} 12' in text
    assert "# TYPE haperf_resp_redirects_total counter" in text
    assert 'haperf_kv_keys{node="1"} 3' in text and "# TYPE haperf_kv_keys gauge" in text
    check_exposition(text)


def test_a_maximum_among_the_counters_is_a_gauge() -> None:
    status = FakeNode().status()
    status["counters"] = {"syncs": 4, "window_ns_max": 7}
    text = render_metrics(status, process=False)
    assert 'haperf_raft_syncs_total{node="1"} 4' in text
    assert "# TYPE haperf_raft_window_ns_max gauge" in text
    assert 'haperf_raft_window_ns_max{node="1"} 7' in text
    check_exposition(text)
