"""Describes the machine a benchmark ran on: CPU, cores, Python, haperf version and build.

Owns the `machine` object at the top of every report. Invariant: it only reads (files under
/proc, platform, the native build info); a field it cannot learn is reported as "unknown".
"""

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haperf._native import build, crc32c
from haperf._version import __version__


def cpu_model() -> str:
    """The CPU model name: /proc/cpuinfo on Linux, sysctl's answer on macOS, else platform's."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except OSError:
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe() -> dict[str, Any]:
    """The machine description shown at the top of the bench report and in --json."""
    info = build.info()
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "os": platform.platform(terse=True),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "haperf": __version__,
        "build_type": info["build_type"],
        "debug_checks": info["debug"],
        "compiler": info["compiler"],
        "cython": info["cython"],
        "crc32c_backend": crc32c.backend(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
