"""Child processes of the cluster benchmark, loopback ports, and per-process CPU and memory.

Owns `Children` (every process this benchmark spawns, each in its own session so that a signal
to its process group reaches it and its own children, and never anything else), free loopback
ports, and the /proc readings behind the idle CPU and RSS figures. Invariants: only pids this
module spawned are ever signalled; an atexit hook kills every group still alive, so no member
outlives the benchmark; CPU is read from /proc/<pid>/stat (utime + stime in clock ticks), RSS
from /proc/<pid>/status (VmRSS).
"""

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_TIMEOUT_S = 5.0
PORTS_MAX = 64


class Children:
    """The processes this benchmark started (each the leader of its own process group)."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        atexit.register(self.kill_all)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in a new session, stdout and stderr appended to `log_path`."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self._procs[proc.pid] = proc
        return proc

    def signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Send `sig` to the process group of a child this object spawned, if it still runs."""
        if proc.pid not in self._procs:
            raise ValueError(f"pid {proc.pid} was not started by this benchmark; not signalled")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the child's group and reap it."""
        self.signal(proc, signal.SIGKILL)
        proc.wait()
        self._procs.pop(proc.pid, None)

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the child's group, then SIGKILL it if it has not exited within `timeout_s`."""
        self.signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(proc, signal.SIGKILL)
            proc.wait()
        # The group may hold children of the child: make sure none survives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._procs.pop(proc.pid, None)

    def kill_all(self) -> None:
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        self._procs.clear()


CHILDREN = Children()


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while picked)."""
    if not 0 < count <= PORTS_MAX:
        raise ValueError(f"asked for {count} ports; between 1 and {PORTS_MAX}")
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, timeout_s: float) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:`port`, False at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far (its threads included), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: the fields after it start past its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS_PER_S


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/{pid}/status has no VmRSS line (a zombie?)")


def idle_usage(pids: Mapping[int, int], duration_s: float) -> dict[str, dict[str, float]]:
    """Per member id: CPU in % of one core over `duration_s` of idling, and RSS in MB after it."""
    start_wall = time.monotonic()
    start_cpu = {member: cpu_seconds(pid) for member, pid in pids.items()}
    time.sleep(duration_s)
    elapsed = time.monotonic() - start_wall
    usage: dict[str, dict[str, float]] = {}
    for member, pid in pids.items():
        used = cpu_seconds(pid) - start_cpu[member]
        usage[str(member)] = {
            "cpu_pct": round(100.0 * used / elapsed, 2),
            "rss_mb": round(rss_bytes(pid) / 1e6, 1),
        }
    return usage
