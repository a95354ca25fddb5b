"""The decorators keep the wrapped function's type for mypy (ParamSpec): a checked snippet
calls decorated sync and async functions correctly and incorrectly, and mypy must flag exactly
the incorrect calls.
"""

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SNIPPET = """
from haperf.resilience import CircuitBreaker, Pipeline, Retry

breaker = CircuitBreaker("t")
retry = Retry("t")


@breaker
def add(a: int, b: int = 1) -> int:
    return a + b


@Pipeline(breaker=breaker, retry=retry)
async def fetch(key: str, *, timeout_s: float = 1.0) -> bytes:
    return key.encode()


async def main() -> None:
    ok: int = add(1, b=2)
    data: bytes = await fetch("k", timeout_s=2.0)
    add("one")  # line 21: wrong argument type
    await fetch(1)  # line 22: wrong argument type
    bad: str = add(1)  # line 23: wrong return type
    print(ok, data, bad)
"""


def test_mypy_sees_the_wrapped_signatures(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    flagged = sorted(
        int(line.split(":")[1]) for line in out.stdout.splitlines() if ": error:" in line
    )
    assert flagged == [21, 22, 23], out.stdout + out.stderr
