"""A KV cluster of child processes on 127.0.0.1: the CLI's, the chaos harness's, the benchmarks'.

Owns `LocalCluster`: free loopback ports picked at construction (raft, resp, admin per member), a
node file per member (`<base>/node-<id>.json`, rewritten at each start so a changed dial hook
takes effect on restart), one child per member (`python -m haperf.kv.service --config FILE`,
the same as `python -m haperf node --config FILE` minus the other CLI commands' imports; output
appended to `<base>/node-<id>.log`), and the faults a test needs: kill (any signal), pause and
resume (SIGSTOP/SIGCONT), restart on the same ports and data directory, graceful stop (SIGTERM,
then SIGKILL after a timeout). Also the cluster file (`cluster.json`) that lets `cluster status`
and `kv` find a running cluster, and small helpers to read the nodes' admin endpoints.

Invariants: it only ever signals processes it started itself (by their Popen handle, never by
name or process group); every wait is bounded by a timeout and raises LocalClusterError (naming
the node and its log file) when it runs out or a child exits early; an exit guard stops every
child of every open cluster, and each child also stops by itself when this process dies
(HAPERF_PARENT_PID, watched by KVService), so no child outlives its parent.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from haperf.errors import ConfigError, LocalClusterError
from haperf.kv.config import (
    MEMBERS_MAX,
    MemberAddress,
    RaftOptions,
    ServiceConfig,
    parse_address,
    raft_options_from_dict,
)

PARENT_PID_ENV = "HAPERF_PARENT_PID"
"""Set in every child's environment: the child stops when its parent is no longer this pid."""

POLL_INTERVAL_S = 0.02
STATUS_TIMEOUT_S = 1.0
STOP_TIMEOUT_S = 5.0
GUARD_STOP_TIMEOUT_S = 2.0
LOG_TAIL_BYTES = 2000
PORT_PICK_ATTEMPTS_MAX = 20
PORT_MIN = 10_000
PORT_SPAN = 20_000
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
CLUSTER_FILE_NAME = "cluster.json"

DialHook = Callable[[int, int], "str | None"]


@dataclass(frozen=True, slots=True)
class Member:
    """One member's addresses and files."""

    id: int
    raft: str
    resp: str
    admin: str
    data_dir: str
    log_path: str
    config_path: str

    def as_dict(self) -> dict[str, str]:
        return {
            "raft": self.raft,
            "resp": self.resp,
            "admin": self.admin,
            "data_dir": self.data_dir,
            "log": self.log_path,
        }


# --- admin endpoint helpers (also used by the CLI) ------------------------------------------


def http_get(address: str, path: str, timeout_s: float = STATUS_TIMEOUT_S) -> tuple[int, bytes]:
    """GET http://address/path; (status code, body). OSError/HTTPException when unreachable.

    http.client directly, not urllib: a proxy in the environment must never see loopback calls.
    """
    host, port = parse_address(address, "admin address")
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fetch_status(address: str, timeout_s: float = STATUS_TIMEOUT_S) -> dict[str, Any] | None:
    """A node's /status document, or None when it does not answer 200 with JSON in time."""
    try:
        code, body = http_get(address, "/status", timeout_s)
    except (OSError, http.client.HTTPException):
        return None
    if code != 200:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def default_cluster_file() -> Path:
    """Where `cluster up` records the running cluster: $HAPERF_CLUSTER_FILE, else
    $XDG_STATE_HOME/haperf/cluster.json (~/.local/state/haperf/cluster.json)."""
    explicit = os.environ.get("HAPERF_CLUSTER_FILE")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "haperf" / CLUSTER_FILE_NAME


def read_cluster_file(path: str | Path) -> dict[int, dict[str, str]]:
    """The members recorded in a cluster file: {id: {"raft", "resp", "admin", ...}}."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the cluster file ({exc.strerror}); start a cluster with "
            "'python -m haperf cluster up' or name one with --cluster FILE"
        ) from None
    try:
        doc = orjson.loads(raw)
        members = {int(k): dict(v) for k, v in doc["members"].items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ConfigError(f"{path}: not a haperf cluster file (no members)") from None
    for member_id, member in members.items():
        for kind in ("raft", "resp", "admin"):
            parse_address(member.get(kind), f"{path}: members.{member_id}.{kind}")
    return members


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path(EPHEMERAL_RANGE_FILE).read_text().split())
    except (OSError, ValueError):
        return 49152, 65535  # the IANA dynamic range, what other systems use
    return low, high


def _free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free on `host` now, below the kernel's ephemeral range.

    Below it, because a member keeps its ports across restarts: while it is down, its peers'
    outgoing connections (and anyone else's) draw local ports from the ephemeral range and
    could take one of its ports, so its restart would fail to bind. All candidates are held
    open together while picking, so the picks are distinct.
    """
    low, _ = _ephemeral_range()
    first = max(PORT_MIN, low - PORT_SPAN)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    sockets: list[socket.socket] = []
    try:
        for _ in range(count * PORT_PICK_ATTEMPTS_MAX):
            if len(sockets) == count:
                break
            # No room below the ephemeral range: let the kernel choose (port 0).
            port = 0 if first >= low else rng.randrange(first, low)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        if len(sockets) < count:
            raise LocalClusterError(f"could not find {count} free ports on {host}")
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _previous_addresses(base_dir: Path, n: int) -> dict[int, tuple[str, str, str]] | None:
    """The addresses recorded by an earlier cluster of `n` members in `base_dir`, when its data is
    still there: members keep their addresses across restarts, because Raft replicates each
    member's addresses in its log (a member restarted on new ports would look for its peers on
    their old ones). LocalClusterError when those ports are taken now."""
    path = base_dir / CLUSTER_FILE_NAME
    if not path.is_file() or not any((base_dir / f"node-{i}").is_dir() for i in range(1, n + 1)):
        return None
    try:
        members = read_cluster_file(path)
    except ConfigError:
        return None
    if sorted(members) != list(range(1, n + 1)):
        raise LocalClusterError(
            f"{base_dir} holds the data of a cluster of {len(members)} members, not {n}; use "
            "the same size or another base directory"
        )
    addresses = {i: (m["raft"], m["resp"], m["admin"]) for i, m in members.items()}
    for i, triple in addresses.items():
        for address in triple:
            host, port = parse_address(address, f"{path}: members.{i}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                # As the servers bind: connections of the last run in TIME_WAIT do not count,
                # a listener does.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    raise LocalClusterError(
                        f"{address} (node {i}'s port, recorded in {path}) is in use: is that "
                        "cluster still running? Stop it, or use another base directory"
                    ) from None
    return addresses


# --- the exit guard -------------------------------------------------------------------------


def _stop_children(procs: dict[int, subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGCONT + SIGTERM every running child, SIGKILL what is left after `timeout_s`. Used by
    the guard, which must not hold a reference to the cluster itself."""
    running = [p for p in procs.values() if p.poll() is None]
    for proc in running:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[LocalCluster, P], R],
) -> Callable[Concatenate[LocalCluster, P], R]:
    """Run a method that starts, signals or waits for children under the cluster's lock."""

    @functools.wraps(method)
    def locked(self: LocalCluster, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class LocalCluster:
    """N KV nodes in child processes on loopback; see the module docstring and docs/ops.md.

    with LocalCluster(3) as cluster:
        cluster.start()
        leader = cluster.wait_leader(10)
        cluster.kill(leader)              # SIGKILL
        cluster.restart(leader)           # same ports, same data
    """

    def __init__(
        self,
        n: int = 3,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        raft_options: RaftOptions | Mapping[str, Any] | None = None,
        dial: DialHook | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        node_command: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(n, int) or not 1 <= n <= MEMBERS_MAX:
            raise ConfigError(f"LocalCluster: n must be in 1..{MEMBERS_MAX}, got {n!r}")
        if raft_options is None:
            self.raft_options = RaftOptions()
        elif isinstance(raft_options, RaftOptions):
            self.raft_options = raft_options
        else:
            self.raft_options = raft_options_from_dict(dict(raft_options), "raft_options")
        self._own_base = base_dir is None
        self.base_dir = Path(
            tempfile.mkdtemp(prefix="haperf-cluster-") if base_dir is None else base_dir
        ).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._dial = dial
        self._python = python
        self._env = dict(env or {})
        # `python -m haperf.kv.service --config F` is `python -m haperf node --config F` without
        # importing every other CLI command (numpy among them): a smaller, faster child.
        self._command = list(node_command) if node_command else [python, "-m", "haperf.kv.service"]
        previous = _previous_addresses(self.base_dir, n)
        ports = [] if previous else _free_ports(host, 3 * n)
        self.members: dict[int, Member] = {}
        for i in range(1, n + 1):
            if previous:
                raft, resp, admin = previous[i]
            else:
                raft, resp, admin = (f"{host}:{p}" for p in ports[3 * (i - 1) : 3 * i])
            self.members[i] = Member(
                id=i,
                raft=raft,
                resp=resp,
                admin=admin,
                data_dir=str(self.base_dir / f"node-{i}"),
                log_path=str(self.base_dir / f"node-{i}.log"),
                config_path=str(self.base_dir / f"node-{i}.json"),
            )
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._paused: set[int] = set()
        self._signalled: set[int] = set()  # members told to exit: their exit is no failure
        self._closed = False
        # The chaos harness drives a cluster from several threads (asyncio.to_thread).
        self._lock = threading.RLock()
        # Runs at interpreter exit (atexit) or when the cluster is garbage collected unclosed.
        self._guard = weakref.finalize(self, _stop_children, self._procs, GUARD_STOP_TIMEOUT_S)

    # -- configuration --

    @property
    def ids(self) -> list[int]:
        return sorted(self.members)

    def set_dial(self, hook: DialHook | None) -> None:
        """Route each directed link (from, to) through hook(from, to) (None: direct); applies to
        nodes started or restarted from now on."""
        self._dial = hook

    def dial(self, from_id: int, to_id: int) -> str | None:
        """Where node `from_id` connects to reach `to_id` (None: its raft address directly)."""
        return None if self._dial is None else self._dial(from_id, to_id)

    def config(self, node_id: int) -> ServiceConfig:
        """The node file this cluster writes for `node_id`."""
        member = self._member(node_id)
        dial = {}
        for other in self.ids:
            if other != node_id and (addr := self.dial(node_id, other)) is not None:
                dial[other] = addr
        return ServiceConfig(
            id=node_id,
            members={i: MemberAddress(m.raft, m.resp, m.admin) for i, m in self.members.items()},
            data_dir=member.data_dir,
            dial=dial,
            raft=self.raft_options,
            source=member.config_path,
        )

    def cluster_doc(self) -> dict[str, Any]:
        """The cluster file's content (what `cluster status` and `kv` read)."""
        return {
            "pid": os.getpid(),
            "base_dir": str(self.base_dir),
            "members": {str(i): m.as_dict() for i, m in sorted(self.members.items())},
        }

    @_locked
    def write_cluster_file(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the cluster file (default `<base_dir>/cluster.json`) atomically."""
        target = Path(path) if path is not None else self.base_dir / CLUSTER_FILE_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(self.cluster_doc(), option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, target)
        return target

    # -- processes --

    def _member(self, node_id: int) -> Member:
        try:
            return self.members[node_id]
        except KeyError:
            raise ConfigError(
                f"node {node_id} is not a member of this cluster ({self.ids})"
            ) from None

    def _targets(self, ids: Iterable[int] | int | None) -> list[int]:
        if ids is None:
            return self.ids
        if isinstance(ids, int):
            return [self._member(ids).id]
        return [self._member(i).id for i in ids]

    @_locked
    def start(self, ids: Iterable[int] | None = None) -> None:
        """Start the given members (default all) that are not running."""
        if self._closed:
            raise LocalClusterError("this LocalCluster is closed; make a new one")
        # Recorded at every start: a later LocalCluster on this base_dir reuses the addresses.
        self.write_cluster_file()
        env = {**os.environ, **self._env, PARENT_PID_ENV: str(os.getpid())}
        env.setdefault("PYTHONUNBUFFERED", "1")
        for node_id in self._targets(ids):
            if self.alive(node_id):
                continue
            self._reap(node_id)
            member = self.members[node_id]
            config = self.config(node_id)
            Path(member.config_path).write_bytes(config.to_json())
            with open(member.log_path, "ab") as log:
                log.write(f"--- start node {node_id} at {time.time():.3f}\n".encode())
                log.flush()
                # A new session: Ctrl-C on the terminal reaches the parent only, which stops
                # the children in order (and the children's own parent watch covers a crash).
                self._procs[node_id] = subprocess.Popen(
                    [*self._command, "--config", member.config_path],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            self._paused.discard(node_id)
            self._signalled.discard(node_id)

    def pid(self, node_id: int) -> int | None:
        proc = self._procs.get(self._member(node_id).id)
        return None if proc is None or proc.poll() is not None else proc.pid

    def alive(self, node_id: int) -> bool:
        """True while the member's process runs (paused counts as alive)."""
        return self.pid(node_id) is not None

    def paused(self, node_id: int) -> bool:
        return node_id in self._paused and self.alive(node_id)

    def live_ids(self) -> list[int]:
        """Members running and not paused."""
        return [i for i in self.ids if self.alive(i) and i not in self._paused]

    def returncode(self, node_id: int) -> int | None:
        proc = self._procs.get(self._member(node_id).id)
        return None if proc is None else proc.poll()

    def _signal(self, node_id: int, sig: int) -> bool:
        proc = self._procs.get(self._member(node_id).id)
        if proc is None or proc.poll() is not None:
            return False
        if sig not in (signal.SIGSTOP, signal.SIGCONT):
            self._signalled.add(node_id)
        proc.send_signal(sig)
        return True

    @_locked
    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL) to the member's process; a SIGKILL is waited for."""
        if not self._signal(node_id, sig):
            raise LocalClusterError(f"node {node_id} is not running; nothing to kill")
        if sig == signal.SIGKILL:
            self._wait_exit(node_id, STOP_TIMEOUT_S)
            self._paused.discard(node_id)

    @_locked
    def pause(self, node_id: int) -> None:
        """SIGSTOP: the process keeps its sockets but runs nothing (a GC pause, a VM stall)."""
        if not self._signal(node_id, signal.SIGSTOP):
            raise LocalClusterError(f"node {node_id} is not running; nothing to pause")
        self._paused.add(node_id)

    @_locked
    def resume(self, node_id: int) -> None:
        """SIGCONT a paused member."""
        if not self._signal(node_id, signal.SIGCONT):
            raise LocalClusterError(f"node {node_id} is not running; nothing to resume")
        self._paused.discard(node_id)

    @_locked
    def restart(self, node_id: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the member if it runs, then start it again on the same ports and data."""
        self.stop(node_id, timeout_s=timeout_s)
        self.start([node_id])

    @_locked
    def stop(self, node_id: int | None = None, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (graceful), then SIGKILL whatever still runs after `timeout_s`."""
        targets = [i for i in self._targets(node_id) if self.alive(i)]
        for i in targets:
            if i in self._paused:
                self._signal(i, signal.SIGCONT)  # a stopped process handles SIGTERM only later
                self._paused.discard(i)
            self._signal(i, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for i in targets:
            proc = self._procs[i]
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)

    def _wait_exit(self, node_id: int, timeout_s: float) -> None:
        proc = self._procs[node_id]
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise LocalClusterError(
                f"node {node_id} (pid {proc.pid}) did not exit within {timeout_s:g} s"
            ) from None

    def _reap(self, node_id: int) -> None:
        proc = self._procs.pop(node_id, None)
        if proc is not None:
            proc.wait(STOP_TIMEOUT_S)

    @_locked
    def close(self) -> None:
        """Stop every child; remove the base directory if this cluster made it."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            self._guard.detach()
            if self._own_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing --

    def log_tail(self, node_id: int, size: int = LOG_TAIL_BYTES) -> str:
        path = self._member(node_id).log_path
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _check_running(self, ids: Iterable[int]) -> None:
        for i in ids:
            proc = self._procs.get(i)
            if proc is not None and i not in self._signalled and proc.poll() is not None:
                raise LocalClusterError(
                    f"node {i} exited with status {proc.returncode}; its log "
                    f"{self.members[i].log_path} ends with:\n{self.log_tail(i)}"
                )

    def status(self, node_id: int, timeout_s: float = STATUS_TIMEOUT_S) -> dict[str, Any] | None:
        """The member's /status document, or None when it does not answer."""
        return fetch_status(self._member(node_id).admin, timeout_s)

    def statuses(self, ids: Iterable[int] | None = None) -> dict[int, dict[str, Any] | None]:
        return {i: self.status(i) for i in (self.live_ids() if ids is None else ids)}

    def leader(self) -> int | None:
        """The leader every live member agrees on right now (None: no agreement)."""
        live = self.live_ids()
        if not live:
            return None
        statuses = self.statuses(live)
        leaders = {s.get("leader") if s else None for s in statuses.values()}
        if len(leaders) != 1:
            return None
        leader = leaders.pop()
        if not isinstance(leader, int) or leader not in statuses:
            return None
        own = statuses[leader]
        return leader if own is not None and own.get("role") == "leader" else None

    def wait_leader(self, timeout_s: float = 10.0) -> int:
        """Wait until every live member names the same leader, itself live and leading."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_running(self._procs)
            leader = self.leader()
            if leader is not None:
                return leader
            if time.monotonic() >= deadline:
                raise LocalClusterError(
                    f"no leader agreed on by nodes {self.live_ids()} within {timeout_s:g} s; "
                    f"logs in {self.base_dir}"
                )
            time.sleep(POLL_INTERVAL_S)

    def wait_ready(self, timeout_s: float = 10.0, ids: Iterable[int] | None = None) -> None:
        """Wait until the given (default: live) members answer /readyz with 200."""
        targets = list(self.live_ids() if ids is None else ids)
        deadline = time.monotonic() + timeout_s
        pending = set(targets)
        while True:
            self._check_running(targets)
            for i in sorted(pending):
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if http_get(self.members[i].admin, "/readyz", STATUS_TIMEOUT_S)[0] == 200:
                        pending.discard(i)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise LocalClusterError(
                    f"nodes {sorted(pending)} not ready within {timeout_s:g} s; logs: "
                    + ", ".join(self.members[i].log_path for i in sorted(pending))
                )
            time.sleep(POLL_INTERVAL_S)

    def wait_applied(self, node_id: int, index: int, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until the member's applied index reaches `index`; its last /status."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_running([node_id])
            status = self.status(node_id)
            if status is not None and int(status.get("applied") or 0) >= index:
                return status
            if time.monotonic() >= deadline:
                seen = None if status is None else status.get("applied")
                raise LocalClusterError(
                    f"node {node_id} applied {seen} < {index} after {timeout_s:g} s; log "
                    f"{self.members[node_id].log_path}"
                )
            time.sleep(POLL_INTERVAL_S)
