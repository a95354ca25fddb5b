"""Unit tests of the cluster benchmark's library: percentiles, parsers, report, failover logic.

Owns the checks that the measuring machinery measures what it says: nearest-rank percentiles,
RESP and HTTP replies parsed the same however the bytes are split, redis-benchmark's CSV read,
the report showing '-' (never 0) for what was not measured and haperf/peer ratios, and the
failover series on an in-process fake cluster: the failover time is never shorter than the
fake's election delay, and a member that does not catch up is counted and repaired.
"""

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from clusterbench import procs, redisbench, report
from clusterbench.floors import fdatasync_floor, load_average
from clusterbench.http import HttpConnection, HttpStatusError
from clusterbench.resp import RespError, RespParser, encode
from clusterbench.stats import latency_summary, median, percentile
from clusterbench.suite import Plan, attempt_timeout_s, failover_series
from clusterbench.sys_etcd import parse_check_perf
from clusterbench.system import RespSystem, System
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=200, deadline=None)


@EXAMPLES
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=300), st.integers(1, 100))
def test_percentile_is_the_nearest_rank(samples: list[int], q: int) -> None:
    ordered = sorted(samples)
    value = percentile(ordered, q)
    assert value in ordered
    at_or_below = sum(1 for s in ordered if s <= value)
    below = sum(1 for s in ordered if s < value)
    assert at_or_below * 100 >= q * len(ordered)
    assert below * 100 < q * len(ordered)


def test_empty_samples_give_none_not_zero() -> None:
    assert percentile([], 50) is None
    assert median([]) is None
    summary = latency_summary([])
    assert summary["count"] == 0
    assert summary["p50_ms"] is None and summary["p99_ms"] is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([3_000_000, 1_000_000, 2_000_000])
    assert summary == {"count": 3, "p50_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0, "mean_ms": 2.0}
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


_REPLIES = st.recursive(
    st.one_of(
        st.binary(max_size=40),
        st.integers(-(2**62), 2**62),
        st.none(),
        st.text(alphabet="abcXYZ 019", max_size=20).map(lambda t: ("+", t)),
        st.text(alphabet="abcXYZ 019", max_size=20).map(lambda t: ("-", t)),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


def _wire(reply: Any) -> bytes:
    if isinstance(reply, tuple):
        return f"{reply[0]}{reply[1]}\r\n".encode()
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    return b"*%d\r\n" % len(reply) + b"".join(_wire(r) for r in reply)


def _expected(reply: Any) -> Any:
    if isinstance(reply, tuple):
        return reply[1].encode() if reply[0] == "+" else ("error", reply[1])
    if isinstance(reply, list):
        return [_expected(r) for r in reply]
    return reply


def _normal(reply: Any) -> Any:
    if isinstance(reply, RespError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [_normal(r) for r in reply]
    return reply


@EXAMPLES
@given(st.lists(_REPLIES, min_size=1, max_size=6), st.data())
def test_resp_parser_gives_the_same_replies_however_bytes_are_split(
    replies: list[Any], data: st.DataObject
) -> None:
    wire = b"".join(_wire(r) for r in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    parser = RespParser()
    got: list[Any] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got += parser.feed(wire[start:cut])
        start = cut
    assert [_normal(r) for r in got] == [_expected(r) for r in replies]


def test_resp_encode_is_an_array_of_bulk_strings() -> None:
    parser = RespParser()
    assert parser.feed(encode(b"SET", b"k", b"v" * 3)) == [[b"SET", b"k", b"vvv"]]


class _FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _http_response(status: int, body: bytes, chunked: bool) -> bytes:
    if not chunked:
        return b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]) if c)
    return b"HTTP/1.1 %d OK\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (status, chunks)


@EXAMPLES
@given(
    st.lists(
        st.tuples(st.sampled_from([200, 500]), st.binary(max_size=60), st.booleans()),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_http_responses_match_requests_in_order_however_bytes_are_split(
    responses: list[tuple[int, bytes, bool]], data: st.DataObject
) -> None:
    async def scenario() -> None:
        conn = HttpConnection()
        transport = _FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        futures = [conn.request_nowait(b"req %d" % i) for i in range(len(responses))]
        wire = b"".join(_http_response(s, b, c) for s, b, c in responses)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
        start = 0
        for cut in [*cuts, len(wire)]:
            conn.data_received(wire[start:cut])
            start = cut
        assert transport.written == [b"req %d" % i for i in range(len(responses))]
        for fut, (status, body, _) in zip(futures, responses, strict=True):
            assert fut.done()
            if status == 200:
                assert fut.result() == body
            else:
                with pytest.raises(HttpStatusError):
                    fut.result()
        assert conn.is_open and not transport.closed

    asyncio.run(scenario())


def test_http_connection_loss_fails_every_waiting_request() -> None:
    async def scenario() -> None:
        conn = HttpConnection()
        conn.connection_made(_FakeTransport())  # type: ignore[arg-type]
        waiting = [conn.request_nowait(b"x"), conn.request_nowait(b"y")]
        conn.connection_lost(None)
        for fut in waiting:
            with pytest.raises(ConnectionError):
                fut.result()
        with pytest.raises(ConnectionError):
            conn.request_nowait(b"z")

    asyncio.run(scenario())


def test_redis_benchmark_csv_is_read_by_column() -> None:
    text = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
        '"p99_latency_ms","max_latency_ms"\n"SET","14212.16","498.768","271.360","528.895",'
        '"786.431","790.100","800.000"\n'
    )
    figures = redisbench.parse_csv("WARNING: something\n" + text)
    assert figures["rps"] == 14212.16
    assert figures["p50_latency_ms"] == 528.895
    assert figures["p99_latency_ms"] == 790.1
    with pytest.raises(ValueError):
        redisbench.parse_csv("no csv here")
    clients, pipeline = redisbench.shape(4096)
    assert clients * pipeline == 4096
    assert all(c * p == n for n, (c, p) in redisbench.SHAPES.items())


def test_etcdctl_check_perf_summary_and_throughput_are_read() -> None:
    passed = (
        " 60 / 60  100.00% 1m0s\nPASS: Throughput is 150 writes/s\n"
        "PASS: Slowest request took 0.04s\nPASS\n"
    )
    assert parse_check_perf(passed) == (
        ["PASS: Throughput is 150 writes/s", "PASS: Slowest request took 0.04s", "PASS"],
        150.0,
    )
    failed = "FAIL: Throughput too low: 4142 writes/s\nPASS: Stddev is 0.04s\nFAIL\n"
    assert parse_check_perf(failed)[1] == 4142.0
    assert parse_check_perf("no summary") == ([], None)


def _doc(systems: dict[str, Any]) -> dict[str, Any]:
    return {
        "date_utc": "2026-01-01T00:00:00Z",
        "command": "run.py",
        "machine": {"cpu": "test cpu", "cores": 2, "python": "CPython"},
        "plan": {"quick": True, "in_flight": [64]},
        "systems": systems,
    }


def test_report_shows_dash_for_unmeasured_and_ratios_of_haperf_to_peers() -> None:
    doc = _doc(
        {
            "haperf": {
                "sequential_writes": {"ops_per_s": 3000.0, "p50_ms": 0.3},
                "concurrent_writes": {"64": {"ops_per_s": 90000.0}, "8192": {"ops_per_s": 1e5}},
                "failover": {"median_ms": 200.0, "not_caught_up": 0},
                "floors": {"before": {"fdatasync_100B": {"p50_ms": 0.2}, "loadavg": [1.0]}},
            },
            "etcd": {
                "sequential_writes": {"ops_per_s": 1500.0, "p50_ms": 0.6},
                "concurrent_writes": {"64": {"ops_per_s": 4500.0}},
                "failover": {"error": "RuntimeError: boom"},
                "floors": {"before": {"fdatasync_100B": {"p50_ms": 0.4}, "loadavg": [2.0]}},
            },
            "PySyncObj": {"unavailable": "PySyncObj is not installed"},
        }
    )
    lines = report.table(doc).splitlines()
    row = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in lines[2:]}
    seq = row["sequential writes/s, 1 client (higher is better)"]
    assert seq[1:4] == ["3,000", "1,500", "-"]
    assert seq[5] == "2.00x" and seq[6].rstrip(" |") == "-"
    assert row["sequential write p50 ms"][5] == "0.50x"
    assert row["failover median ms (SIGKILL leader -> next commit)"][2] == "-"
    assert row["restarted member not caught up within 10 s (runs)"][1] == "0"
    best = row["best writes/s, any in-flight setting (higher is better)"]
    assert best[1] == "100,000 (at 8192)" and best[2] == "4,500 (at 64)"
    assert "writes/s at 8192 in flight (higher is better)" in row
    assert row["floor: 100 B write+fdatasync p50 ms, just before this system"][5] == "-"
    notes = report.notes(doc)
    assert "not measured: PySyncObj is not installed" in notes
    assert "failover: RuntimeError: boom" in notes


def test_update_doc_replaces_only_the_marked_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{report.TABLE_START}\nSTALE-TABLE\n{report.TABLE_END}\noutro\n")
    report.update_doc(page, _doc({}))
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "STALE-TABLE" not in text and "| metric |" in text
    page.write_text("no markers")
    with pytest.raises(ValueError):
        report.update_doc(page, _doc({}))


def test_proc_readings_of_this_process() -> None:
    spent = time.process_time()
    while time.process_time() - spent < 0.05:
        pass
    assert procs.cpu_seconds(os.getpid()) > 0
    assert procs.rss_bytes(os.getpid()) > 1_000_000
    ports = procs.free_ports(4)
    assert len(set(ports)) == 4


def test_fdatasync_floor_reports_ordered_percentiles_and_cleans_up() -> None:
    before = set(Path(tempfile.gettempdir()).glob("haperf-clusterbench-floor-*"))
    floor = fdatasync_floor(5)
    assert floor["samples"] == 5
    assert 0 < floor["p50_ms"] <= floor["p99_ms"]
    assert set(Path(tempfile.gettempdir()).glob("haperf-clusterbench-floor-*")) == before
    assert len(load_average()) == 3


def test_children_never_signal_a_process_they_did_not_start() -> None:
    import subprocess

    foreign = subprocess.Popen(["sleep", "5"])
    try:
        with pytest.raises(ValueError, match="not started by this benchmark"):
            procs.CHILDREN.signal(foreign, 9)
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


def test_attempt_timeout_follows_the_sequential_p99_within_bounds() -> None:
    assert attempt_timeout_s(None) == 0.5
    assert attempt_timeout_s({"p99_ms": 1.0}) == 0.1
    assert attempt_timeout_s({"p99_ms": 100.0}) == 0.4
    assert attempt_timeout_s({"p99_ms": 5000.0}) == 1.0


class FakeCluster(System):
    """In-process stand-in: a leader takes writes; after a kill a new one is elected later."""

    name = "fake"

    def __init__(self, election_s: float, stuck: set[int]) -> None:
        self.election_s = election_s
        self.stuck = stuck  # kill rounds (1-based) after which the restarted member is stuck
        self.current = 1
        self.alive = {1, 2, 3}
        self.elected_at = 0.0
        self.kills = 0
        self.repaired: list[int] = []
        self.data: dict[int, dict[bytes, bytes]] = {1: {}, 2: {}, 3: {}}
        self.blocked: set[int] = set()

    def check_available(self) -> None:
        return None

    def start(self, workdir: Path) -> None:
        del workdir

    def close(self) -> None:
        return None

    def pid(self, member: int) -> int:
        return os.getpid()

    def leader(self, timeout_s: float) -> int:
        while time.monotonic() < self.elected_at:
            time.sleep(0.01)
        return self.current

    def kill(self, member: int) -> None:
        self.kills += 1
        self.alive.discard(member)
        self.current = min(self.alive)
        self.elected_at = time.monotonic() + self.election_s
        if self.kills in self.stuck:
            self.blocked.add(member)

    def restart(self, member: int) -> None:
        self.alive.add(member)

    def repair(self, member: int) -> None:
        self.repaired.append(member)
        self.blocked.discard(member)

    def notes(self) -> dict[str, str]:
        return {}

    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        raise NotImplementedError

    async def concurrent_writes(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        raise NotImplementedError

    async def linearizable_reads(self, in_flight: int, duration_s: float) -> dict[str, Any]:
        raise NotImplementedError

    async def write_once(self, member: int, key: bytes, value: bytes) -> None:
        await asyncio.sleep(0.001)
        if member not in self.alive:
            raise ConnectionRefusedError("dead")
        if member != self.current or time.monotonic() < self.elected_at:
            raise ConnectionError("not the leader")
        for m in self.alive - self.blocked:
            self.data[m][key] = value

    async def reset_client(self, member: int) -> None:
        return None

    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        return self.data[member].get(key) == value


def _plan(kills: int) -> Plan:
    return Plan(
        quick=True,
        idle_s=0.0,
        sequential_s=0.0,
        sequential_ops_max=1,
        concurrent_s=0.0,
        in_flight=(),
        reads_in_flight=1,
        reads_s=0.0,
        kills=kills,
        catchup_deadline_s=0.3,
        settle_s=0.0,
    )


def test_failover_is_never_shorter_than_the_election_and_stuck_members_are_counted() -> None:
    fake = FakeCluster(election_s=0.15, stuck={2})
    result = asyncio.run(failover_series(fake, _plan(3), timeout_s=0.05))
    assert result["kills"] == 3 and result["timeouts"] == 0
    killed = [r["killed"] for r in result["runs"]]
    assert killed == [1, 2, 1]
    for run in result["runs"]:
        assert run["failover_ms"] >= 150.0
    assert result["median_ms"] >= 150.0
    assert result["max_ms"] >= result["median_ms"]
    assert [r["caught_up"] for r in result["runs"]] == [True, False, True]
    assert result["not_caught_up"] == 1
    assert fake.repaired == [2]


class _OneLeaderResp(RespSystem):
    """Just enough of a RESP system for the redis-benchmark retry logic."""

    def __init__(self) -> None:
        super().__init__()
        self.leaders = [1, 2, 2]

    def resp_port(self, member: int) -> int:
        return 6000 + member

    def leader(self, timeout_s: float) -> int:
        return self.leaders.pop(0)

    def check_available(self) -> None:
        return None

    def start(self, workdir: Path) -> None:
        del workdir

    def close(self) -> None:
        return None

    def pid(self, member: int) -> int:
        return 0

    def kill(self, member: int) -> None:
        return None

    def restart(self, member: int) -> None:
        return None

    def repair(self, member: int) -> None:
        return None

    def notes(self) -> dict[str, str]:
        return {}

    async def sequential_writes(self, duration_s: float, ops_max: int) -> dict[str, Any]:
        return {}

    async def caught_up(self, member: int, key: bytes, value: bytes) -> bool:
        return True


def test_a_failed_redis_benchmark_run_is_repeated_once_against_the_new_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def sustained(port: int, test: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(port)
        if len(calls) == 1:
            raise RuntimeError("redis-benchmark exited 1: MOVED 0 127.0.0.1:6002")
        return {"ops_per_s": 10.0, "test": test}

    monkeypatch.setattr(redisbench, "sustained", sustained)
    system = _OneLeaderResp()
    result = asyncio.run(system.concurrent_writes(64, 0.0))
    assert calls == [6001, 6002]
    assert result["ops_per_s"] == 10.0 and result["test"] == "set"
    assert result["failed_attempts"] == ["redis-benchmark exited 1: MOVED 0 127.0.0.1:6002"]

    def always_down(port: int, test: str, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("down")

    monkeypatch.setattr(redisbench, "sustained", always_down)
    system.leaders = [1, 1]
    with pytest.raises(RuntimeError, match="failed 2 times"):
        asyncio.run(system.linearizable_reads(256, 0.0))
