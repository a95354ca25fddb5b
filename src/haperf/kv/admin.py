"""The per-node HTTP admin endpoint: /status (JSON), /metrics (Prometheus text), /livez, /readyz.

Owns a small HTTP/1.1 server on asyncio streams and the rendering of a node's `status()` as JSON
and as Prometheus text exposition 0.0.4 (the metric names are listed in docs/ops.md).

HTTP: GET and HEAD only (other methods on a known path get 405 with Allow), keep-alive by default
in HTTP/1.1 (`Connection: close` honoured; HTTP/1.0 closes unless it asks for keep-alive),
pipelined requests answered in order. Everything is bounded: the request line
(`request_line_bytes_max`, else 414), the header block (`header_bytes_max` and `headers_max`, else
431), a request body (`body_bytes_max`, else 413; a body is read and ignored), requests per
connection, open connections (`connections_max`, else 503 and close), and the time to receive a
request and to wait idle between requests. A malformed request gets 400 and the connection is
closed. No request can crash the server or make it buffer without bound.

Readiness (/readyz): 200 once the node knows a leader and has applied up to the commit index it
learned when it first saw a leader after start; 503 before that and while stopping. Liveness
(/livez): 200 while the event loop answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from haperf._version import __version__
from haperf.errors import ConfigError, HaperfError
from haperf.resilience.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from haperf.resilience.metrics import escape_help, escape_label_value, format_value
from haperf.runtime.address import parse_address as transport_parse_address

REQUEST_LINE_BYTES_MAX = 8192
HEADER_BYTES_MAX = 16384
HEADERS_MAX = 64
BODY_BYTES_MAX = 65536
CONNECTIONS_MAX = 128
REQUESTS_PER_CONNECTION_MAX = 100_000
REQUEST_TIMEOUT_NS = 10_000_000_000
IDLE_TIMEOUT_NS = 60_000_000_000
LINGER_TIMEOUT_S = 1.0
LINGER_BYTES_MAX = 1 << 20
CLOSE_TIMEOUT_S = 2.0

ROLES = ("leader", "follower", "candidate", "pre_candidate")
PATHS = ("/status", "/metrics", "/livez", "/readyz")
ALLOWED_METHODS = ("GET", "HEAD")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class StatusSource(Protocol):
    """What the admin server needs from a node: RaftNode.status() (NODE_API.md section 3)."""

    def status(self) -> dict[str, Any]: ...


class _HttpError(Exception):
    """A request the server answers with `code` and then closes the connection."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- metrics --------------------------------------------------------------------------------

GAUGES: tuple[tuple[str, str, str], ...] = (
    ("term", "term", "Current Raft term."),
    ("leader_id", "leader", "Id of the leader this node knows (0: unknown)."),
    ("commit_index", "commit", "Highest log index known to be committed."),
    ("applied_index", "applied", "Highest log index applied to the state machine."),
    ("last_index", "last_index", "Index of the last entry in this node's log."),
    ("snapshot_index", "snapshot_index", "Last index covered by the latest snapshot."),
    ("wal_bytes", "wal_bytes", "Bytes of the write-ahead log on disk."),
    ("proposals_pending", "proposals_pending", "Proposals waiting for commit and apply."),
    ("reads_pending", "reads_pending", "Linearizable reads waiting for their read index."),
)
PEER_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("peer_connected", "connected", "1 when the transport connection to the peer is up."),
    ("peer_learner", "learner", "1 when the peer is a learner (it does not vote)."),
    (
        "peer_heard_ago_seconds",
        "heard_ago_seconds",
        "Seconds since the leader last heard from the peer (leader only).",
    ),
    (
        "peer_match_rejects",
        "match_rejects",
        "Appends the peer rejected at or below its match index: it lost acknowledged state "
        "(leader only; a count growing every heartbeat needs an operator, see docs/raft.md).",
    ),
    ("peer_match_index", "match", "Highest index known replicated on the peer (leader only)."),
    ("peer_next_index", "next", "Next index the leader sends to the peer (leader only)."),
    ("peer_lag_entries", "lag_entries", "Entries the peer is behind the leader (leader only)."),
    (
        "peer_lag_seconds",
        "lag_seconds",
        "Age of the oldest entry the peer lacks, in seconds (leader only).",
    ),
)
COUNTER_HELP: dict[str, str] = {
    "proposals": "Proposals accepted by this node.",
    "proposals_dropped": "Proposals dropped before they were appended.",
    "reads": "Linearizable reads served.",
    "elections": "Elections this node started.",
    "leader_changes": "Times the known leader changed.",
    "messages_sent": "Raft messages sent.",
    "messages_received": "Raft messages received.",
    "snapshots_sent": "Snapshots sent to followers.",
    "snapshots_installed": "Snapshots installed from a leader.",
    "fsyncs": "Durable syncs of the log and hard state.",
}


class _Families:
    """Metric families in first-use order, each HELP and TYPE once before its samples."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._labels = labels
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: object,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        if value is None or isinstance(value, str):
            return  # declared (HELP/TYPE) but not measured here: no sample, never a fake 0
        if not isinstance(value, int | float):
            return
        merged = {**self._labels, **(labels or {})}
        text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in merged.items())
        family[2].append(
            f"{name}{{{text}}} {format_value(value)}" if text else f"{name} {format_value(value)}"
        )

    def render(self) -> str:
        lines: list[str] = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {escape_help(help_text)}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _metric_key(key: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in key.lower())
    return cleaned.removesuffix("_total")


def render_metrics(
    status: Mapping[str, Any],
    *,
    namespace: str = "haperf",
    extra: Mapping[str, int | float] | None = None,
    subsystems: Mapping[str, Mapping[str, float]] | None = None,
    process: bool = True,
) -> str:
    """Prometheus text for one node's status(), plus the admin server's own figures (`extra`)
    and other parts' counters (`subsystems`: {"resp": {"commands": 12, ...}} gives
    `haperf_resp_commands_total`; a key in GAUGE_KEYS is a gauge instead)."""
    node_label = {"node": str(status.get("id", ""))}
    fam = _Families(node_label)
    raft = f"{namespace}_raft"
    role = status.get("role")
    fam.add(f"{raft}_is_leader", "gauge", "1 when this node is the leader.", int(role == "leader"))
    for r in ROLES:
        fam.add(
            f"{raft}_role",
            "gauge",
            "1 for the node's current role, 0 for the others.",
            int(role == r),
            {"role": r},
        )
    for metric, key, help_text in GAUGES:
        fam.add(f"{raft}_{metric}", "gauge", help_text, status.get(key))
    fam.add(
        f"{raft}_voters",
        "gauge",
        "Voting members in the configuration.",
        len(status.get("voters") or ()),
    )
    fam.add(
        f"{raft}_learners",
        "gauge",
        "Learners in the configuration.",
        len(status.get("learners") or ()),
    )
    peers = status.get("peers") or {}
    for metric, key, help_text in PEER_GAUGES:
        name = f"{raft}_{metric}"
        fam.add(name, "gauge", help_text, None)
        for peer_id in sorted(peers, key=lambda p: (len(str(p)), str(p))):
            value = peers[peer_id].get(key)
            if isinstance(value, bool):
                value = int(value)
            fam.add(name, "gauge", help_text, value, {"peer": str(peer_id)})
    for key, value in sorted((status.get("counters") or {}).items()):
        metric = _metric_key(str(key))
        if metric.endswith(GAUGE_SUFFIXES):  # a maximum or a current level, not a count
            fam.add(f"{raft}_{metric}", "gauge", f"Raft node figure {key}.", value)
            continue
        fam.add(
            f"{raft}_{metric}_total",
            "counter",
            COUNTER_HELP.get(metric, f"Raft node counter {key}."),
            value,
        )
    admin = f"{namespace}_admin"
    for key, value in (extra or {}).items():
        fam.add(
            f"{admin}_{key}",
            "counter" if key.endswith("_total") else "gauge",
            _ADMIN_HELP.get(key, f"Admin server figure {key}."),
            value,
        )
    for subsystem, figures in (subsystems or {}).items():
        for key, value in sorted(figures.items()):
            base = f"{namespace}_{_metric_key(subsystem)}_{_metric_key(str(key))}"
            if key in GAUGE_KEYS:
                fam.add(base, "gauge", f"{subsystem} {key}.", value)
            else:
                fam.add(f"{base}_total", "counter", f"{subsystem} {key} (counter).", value)
    if process:
        for name, kind, help_text, value in _process_figures():
            fam.add(name, kind, help_text, value)
    return fam.render()


GAUGE_SUFFIXES = ("_max", "_min", "_current", "_last")
GAUGE_KEYS = frozenset({"keys", "clients", "open_connections", "bytes"})
_ADMIN_HELP = {
    "requests_total": "HTTP requests answered by the admin endpoint.",
    "bad_requests_total": "Malformed or oversized HTTP requests refused.",
    "connections": "Open admin HTTP connections.",
}
_START_TIME_S = time.time()


def _process_figures() -> list[tuple[str, str, str, float | None]]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss: float | None = None
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = None  # not Linux: no cheap current RSS, so no sample
    return [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of this process.",
            usage.ru_utime + usage.ru_stime,
        ),
        ("process_resident_memory_bytes", "gauge", "Resident set size of this process.", rss),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process (Unix seconds).",
            _START_TIME_S,
        ),
    ]


# --- readiness ------------------------------------------------------------------------------


class Readiness:
    """Ready = a leader is known and applied >= the commit index learned at the first sight of a
    leader; `stopping()` makes it not ready for good."""

    def __init__(self) -> None:
        self.target_index: int | None = None
        self.stopping = False

    def check(self, status: Mapping[str, Any]) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        leader = status.get("leader") or 0
        commit = int(status.get("commit") or 0)
        applied = int(status.get("applied") or 0)
        if not leader:
            return False, "no known leader (election in progress)"
        if self.target_index is None:
            self.target_index = commit
        if applied < self.target_index:
            return False, f"catching up: applied {applied} of {self.target_index}"
        return True, f"ok: leader {leader}, applied {applied}"


# --- server ---------------------------------------------------------------------------------


class AdminServer:
    """HTTP admin endpoint of one node. `await start()`, `address`, `await close()`."""

    def __init__(
        self,
        node: StatusSource,
        listen: str,
        *,
        extra_status: Callable[[], Mapping[str, Any]] | None = None,
        extra_metrics: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
        request_line_bytes_max: int = REQUEST_LINE_BYTES_MAX,
        header_bytes_max: int = HEADER_BYTES_MAX,
        headers_max: int = HEADERS_MAX,
        body_bytes_max: int = BODY_BYTES_MAX,
        connections_max: int = CONNECTIONS_MAX,
        requests_per_connection_max: int = REQUESTS_PER_CONNECTION_MAX,
        request_timeout_ns: int = REQUEST_TIMEOUT_NS,
        idle_timeout_ns: int = IDLE_TIMEOUT_NS,
    ) -> None:
        host, port = _listen_address(listen)
        for name, value in (
            ("request_line_bytes_max", request_line_bytes_max),
            ("header_bytes_max", header_bytes_max),
            ("headers_max", headers_max),
            ("connections_max", connections_max),
            ("requests_per_connection_max", requests_per_connection_max),
            ("request_timeout_ns", request_timeout_ns),
            ("idle_timeout_ns", idle_timeout_ns),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"AdminServer: {name} must be a whole number >= 1, got {value!r}")
        if request_line_bytes_max < 64:
            raise ConfigError("AdminServer: request_line_bytes_max must be >= 64")
        if not isinstance(body_bytes_max, int) or body_bytes_max < 0:
            raise ConfigError(f"AdminServer: body_bytes_max must be >= 0, got {body_bytes_max!r}")
        self._node = node
        self._host = host
        self._port = port
        self._extra_status = extra_status
        self._extra_metrics = extra_metrics
        self._line_max = request_line_bytes_max
        self._header_bytes_max = header_bytes_max
        self._headers_max = headers_max
        self._body_max = body_bytes_max
        self._connections_max = connections_max
        self._requests_max = requests_per_connection_max
        self._request_timeout_s = request_timeout_ns / 1e9
        self._idle_timeout_s = idle_timeout_ns / 1e9
        self.readiness = Readiness()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.requests = 0
        self.bad_requests = 0

    @property
    def address(self) -> str:
        """The bound "host:port" (after start; the port is real even when 0 was asked)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("AdminServer.address is known only after start()")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        # The stream limit bounds every readuntil: the request line and each header line.
        self._server = await asyncio.start_server(
            self._serve,
            self._host,
            self._port,
            limit=max(self._line_max, 1024),
            reuse_address=True,
        )

    def set_stopping(self) -> None:
        """From now on /readyz answers 503 (load balancers drain this node)."""
        self.readiness.stopping = True

    async def close(self) -> None:
        self.set_stopping()
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT_S)

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection handling --

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._writers) >= self._connections_max:
                self.bad_requests += 1
                body = b"too many admin connections\n"
                writer.write(self._response(503, _TEXT, body, keep_alive=False, head=False))
                await self._linger_close(reader, writer)
                return
            self._writers.add(writer)
            try:
                await self._requests(reader, writer)
            finally:
                self._writers.discard(writer)
            await self._linger_close(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            writer.close()  # the client went away or stalled: nothing to answer
        except asyncio.CancelledError:
            writer.close()  # the server is closing
        finally:
            self._tasks.discard(task)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(self._requests_max):
            # Waiting for the first byte of a request is idle time; the rest is request time.
            first = await asyncio.wait_for(reader.read(1), self._idle_timeout_s)
            if not first:
                return
            try:
                method, path, keep_alive = await asyncio.wait_for(
                    self._read_request(first, reader), self._request_timeout_s
                )
            except _HttpError as exc:
                self.bad_requests += 1
                body = f"{exc}\n".encode()
                writer.write(self._response(exc.code, _TEXT, body, keep_alive=False, head=False))
                await writer.drain()
                return
            self.requests += 1
            code, content_type, body, extra_headers = self._route(method, path)
            writer.write(
                self._response(
                    code,
                    content_type,
                    body,
                    keep_alive=keep_alive,
                    head=method == "HEAD",
                    extra=extra_headers,
                )
            )
            await writer.drain()
            if not keep_alive:
                return

    async def _readline(self, reader: asyncio.StreamReader, code: int, what: str) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _HttpError(code, f"{what} longer than {self._line_max} bytes") from None

    async def _read_request(
        self, first: bytes, reader: asyncio.StreamReader
    ) -> tuple[str, str, bool]:
        line = first + await self._readline(reader, 414, "request line")
        if len(line) > self._line_max:
            raise _HttpError(414, f"request line longer than {self._line_max} bytes")
        try:
            text = line.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise _HttpError(400, "request line is not ASCII") from None
        parts = text.split(" ")
        if len(parts) != 3 or not all(parts):
            raise _HttpError(400, "malformed request line (expected METHOD PATH HTTP/1.1)")
        method, target, version = parts
        if not version.startswith("HTTP/") or not method.isalpha() or not method.isupper():
            raise _HttpError(400, "malformed request line (expected METHOD PATH HTTP/1.1)")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _HttpError(505, f"{version} is not supported; use HTTP/1.1")
        if not target.startswith("/"):
            raise _HttpError(400, "the request target must be a path starting with /")
        headers = await self._read_headers(reader)
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        if "transfer-encoding" in headers:
            raise _HttpError(501, "request bodies with Transfer-Encoding are not supported")
        length_text = headers.get("content-length", "0").strip()
        if not length_text.isdigit():
            raise _HttpError(400, "Content-Length is not a number")
        length = int(length_text)
        if length > self._body_max:
            raise _HttpError(413, f"request body larger than {self._body_max} bytes")
        if length:
            await reader.readexactly(length)  # ignored: no endpoint takes a body
        return method, target.split("?", 1)[0], keep_alive

    async def _read_headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        total = 0
        for _ in range(self._headers_max + 1):
            line = await self._readline(reader, 431, "a header line")
            total += len(line)
            if total > self._header_bytes_max:
                raise _HttpError(431, f"headers larger than {self._header_bytes_max} bytes")
            if line in (b"\r\n", b"\n"):
                return headers
            if len(headers) >= self._headers_max:
                break
            try:
                text = line.decode("latin-1").rstrip("\r\n")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                raise _HttpError(400, "undecodable header") from None
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip() or " " in name or "\t" in name:
                raise _HttpError(400, f"malformed header line {text[:40]!r}")
            key = name.lower()
            if key == "content-length" and key in headers and headers[key] != value.strip():
                raise _HttpError(400, "conflicting Content-Length headers")
            headers[key] = value.strip()
        raise _HttpError(431, f"more than {self._headers_max} header lines")

    def _route(self, method: str, path: str) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
        if path not in PATHS:
            return 404, _TEXT, f"no such endpoint; try {', '.join(PATHS)}\n".encode(), ()
        if method not in ALLOWED_METHODS:
            allow = (("Allow", ", ".join(ALLOWED_METHODS)),)
            return 405, _TEXT, f"{method} is not allowed; use GET\n".encode(), allow
        if path == "/livez":
            return 200, _TEXT, b"ok\n", ()
        try:
            status = self._node.status()
        except HaperfError as exc:
            return 503, _TEXT, f"node unavailable: {exc}\n".encode(), ()
        if path == "/readyz":
            ready, why = self.readiness.check(status)
            return (200 if ready else 503), _TEXT, f"{why}\n".encode(), ()
        if path == "/metrics":
            self.readiness.check(status)
            extra = {
                "requests_total": self.requests,
                "bad_requests_total": self.bad_requests,
                "connections": len(self._writers),
            }
            subsystems = self._extra_metrics() if self._extra_metrics is not None else None
            text = render_metrics(status, extra=extra, subsystems=subsystems)
            return 200, METRICS_CONTENT_TYPE, text.encode(), ()
        ready, why = self.readiness.check(status)
        doc = dict(status)
        service: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "ready": ready,
            "ready_reason": why,
        }
        if self._extra_status is not None:
            service.update(self._extra_status())
        doc["service"] = service
        body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        return 200, _JSON, body, ()

    @staticmethod
    def _response(
        code: int,
        content_type: str,
        body: bytes,
        *,
        keep_alive: bool,
        head: bool,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "Connection: keep-alive" if keep_alive else "Connection: close",
            *(f"{k}: {v}" for k, v in extra),
        ]
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head_bytes if head else head_bytes + body

    @staticmethod
    async def _linger_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Close after the response has left: shut our side, then discard what the client still
        sends (bounded in bytes and time), so the kernel does not answer unread input with a
        reset that destroys the response before the client reads it."""
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_TIMEOUT_S):
                discarded = 0
                while discarded < LINGER_BYTES_MAX:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    discarded += len(chunk)
        writer.close()


def _listen_address(listen: str) -> tuple[str, int]:
    # Port 0 (any free port) is allowed here, unlike in a node file.
    return transport_parse_address(listen, what="AdminServer listen")
