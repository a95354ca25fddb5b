"""The Policy contract, checked on every part-B policy: a name, a decorator that keeps the
wrapped function's signature (sync and async, or a ConfigError for async-only policies on sync
functions), and metrics() with snake_case keys and numeric values that count the calls."""

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from haperf.errors import ConfigError
from haperf.resilience import (
    AdaptiveLimiter,
    Bulkhead,
    ErrorBudget,
    Fallback,
    Hedge,
    KeyedRateLimiter,
    LatencyBudget,
    RateLimiter,
    Timeout,
)
from tests.resilience.vloop_limits import FakeClock, VirtualLoop, run_virtual

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def policies() -> list[tuple[str, Callable[[FakeClock], Any], bool]]:
    """(label, factory(clock), async_only)."""
    return [
        ("rate_limiter", lambda c: RateLimiter(1000, 100, name="rl", clock=c), False),
        (
            "keyed",
            lambda c: KeyedRateLimiter(1000, 100, key=lambda a, b=0: a, name="kl", clock=c),
            False,
        ),
        ("adaptive", lambda c: AdaptiveLimiter(name="al", clock=c), False),
        ("bulkhead", lambda c: Bulkhead(4, name="bh"), False),
        ("timeout", lambda c: Timeout(10**9, name="to"), True),
        ("hedge", lambda c: Hedge(delay_ns=10**9, name="hd", clock=c), True),
        ("fallback", lambda c: Fallback(lambda e: -1, name="fb"), False),
        ("latency_budget", lambda c: LatencyBudget(name="lb", clock=c), False),
        ("error_budget", lambda c: ErrorBudget(name="eb", clock=c), False),
    ]


POLICIES = pytest.mark.parametrize(
    ("label", "factory", "async_only"), policies(), ids=[p[0] for p in policies()]
)


def add(a: int, b: int = 0) -> int:
    """Adds."""
    return a + b


async def aadd(a: int, b: int = 0) -> int:
    """Adds, asynchronously."""
    await asyncio.sleep(0)
    return a + b


@POLICIES
def test_contract(label: str, factory: Callable[[FakeClock], Any], async_only: bool) -> None:
    clock = FakeClock()
    policy = factory(clock)
    assert isinstance(policy.name, str) and policy.name
    if async_only:
        with pytest.raises(ConfigError, match="async"):
            policy(add)
    else:
        wrapped = policy(add)
        assert inspect.signature(wrapped) == inspect.signature(add)
        assert wrapped.__doc__ == add.__doc__ and wrapped.__name__ == "add"
        assert not inspect.iscoroutinefunction(wrapped)
        assert wrapped(2, b=3) == 5
    awrapped = policy(aadd)
    assert inspect.iscoroutinefunction(awrapped)
    assert inspect.signature(awrapped) == inspect.signature(aadd)

    async def main(loop: VirtualLoop) -> int:
        return int(await awrapped(4, 5))

    assert run_virtual(main) == 9
    metrics = policy.metrics()
    assert metrics and all(SNAKE.match(k) for k in metrics)
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values())
    assert metrics["calls"] == (1 if async_only else 2), metrics
