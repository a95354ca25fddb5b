"""Runs redis-benchmark against a RESP port and reads its CSV result.

Owns the in-flight shapes (connections x pipeline depth) used for each in-flight count, the
command line, and the parsing of redis-benchmark's `--csv` output (rps and latency percentiles,
which redis-benchmark measures per request from its send to its reply). Invariants: keys are
random over a fixed keyspace (`-r`), values are VALUE_BYTES long; error replies, which
redis-benchmark counts as completed requests and reports only on stderr, are counted here and
returned, so that a run full of errors cannot pass for a fast one; every run has a timeout.
"""

import csv
import io
import shutil
import subprocess
from typing import Any

VALUE_BYTES = 100
KEYSPACE = 100_000
RUN_TIMEOUT_S_MIN = 60.0

# In flight -> (connections, pipeline depth): enough connections to spread the work, and
# pipelining, which is what a RESP client does for throughput.
SHAPES: dict[int, tuple[int, int]] = {
    1: (1, 1),
    64: (4, 16),
    256: (16, 16),
    1024: (32, 32),
    8192: (64, 128),
}


def shape(in_flight: int) -> tuple[int, int]:
    """The (connections, pipeline) pair for `in_flight` requests outstanding at once."""
    if in_flight in SHAPES:
        return SHAPES[in_flight]
    clients = min(in_flight, 64)
    return clients, max(1, in_flight // clients)


def binary() -> str | None:
    return shutil.which("redis-benchmark")


def parse_csv(text: str) -> dict[str, float]:
    """The first data row of redis-benchmark --csv output, as floats keyed by column."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    header_index = next((i for i, row in enumerate(rows) if row and row[0] == "test"), None)
    if header_index is None or header_index + 1 >= len(rows):
        raise ValueError(f"no CSV result in redis-benchmark output: {text[-300:]!r}")
    header, row = rows[header_index], rows[header_index + 1]
    return {name: float(value) for name, value in zip(header[1:], row[1:], strict=True)}


def run(
    port: int,
    test: str,
    *,
    in_flight: int,
    requests: int,
    host: str = "127.0.0.1",
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """One redis-benchmark run of `test` ("set" or "get"); rps and latency figures in ms."""
    exe = binary()
    if exe is None:
        raise FileNotFoundError(
            "redis-benchmark is not installed (Debian: apt install redis-tools)"
        )
    clients, pipeline = shape(in_flight)
    argv = [
        exe,
        "-h", host,
        "-p", str(port),
        "-t", test,
        "-d", str(VALUE_BYTES),
        "-r", str(KEYSPACE),
        "-n", str(max(requests, clients * pipeline)),
        "-c", str(clients),
        "-P", str(pipeline),
        "--csv",
    ]  # fmt: skip
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout_s or RUN_TIMEOUT_S_MIN,
        check=False,
    )
    errors = sum(1 for line in out.stderr.splitlines() if line.startswith("Error from server"))
    if out.returncode != 0:
        raise RuntimeError(
            f"redis-benchmark exited {out.returncode}: {out.stderr[-400:]} {out.stdout[-200:]}"
        )
    try:
        figures = parse_csv(out.stdout)
    except ValueError as exc:
        raise RuntimeError(f"{exc}; stderr: {out.stderr[-400:]!r}") from exc
    return {
        "ops_per_s": figures["rps"],
        "p50_ms": figures.get("p50_latency_ms"),
        "p99_ms": figures.get("p99_latency_ms"),
        "max_ms": figures.get("max_latency_ms"),
        "requests": max(requests, clients * pipeline),
        "errors": errors,
        "client": f"redis-benchmark -c {clients} -P {pipeline}",
    }


def sustained(
    port: int, test: str, *, in_flight: int, duration_s: float, calibrate_requests: int
) -> dict[str, Any]:
    """A short calibration run sizes a second run of about `duration_s` at the rate it found.

    With duration_s <= 0 the calibration run is the result (quick mode).
    """
    first = run(port, test, in_flight=in_flight, requests=calibrate_requests)
    if duration_s <= 0 or first["ops_per_s"] <= 0:
        return first
    requests = int(first["ops_per_s"] * duration_s)
    return run(
        port,
        test,
        in_flight=in_flight,
        requests=requests,
        timeout_s=max(RUN_TIMEOUT_S_MIN, 6 * duration_s),
    )
