"""Shared plumbing of the part-B policies: clock type, decorator typing and config checks.

Owns nothing stateful. Invariants: every check raises ConfigError with a message that names the
parameter, the value given and the accepted range; `is_async` is the one place that decides
whether a callable is wrapped as a coroutine function.
"""

import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from haperf.errors import ConfigError

P = ParamSpec("P")
R = TypeVar("R")

Clock = Callable[[], int]
"""Returns the current time in integer nanoseconds (time.monotonic_ns by default)."""


def is_async(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions (async def), the ones a policy wraps as async."""
    return inspect.iscoroutinefunction(fn)


def require_async(fn: Callable[..., Any], policy: str) -> None:
    if not is_async(fn):
        raise ConfigError(
            f"{policy} only wraps async functions (it needs an event loop to cancel or race the "
            f"call), got the plain function {getattr(fn, '__qualname__', fn)!r}; make it "
            "`async def` or drop this policy for sync code"
        )


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty str (a metrics label), got {name!r}")
    return name


def check_clock(clock: Clock) -> Clock:
    if not callable(clock):
        raise ConfigError(f"clock must be a callable returning int ns, got {clock!r}")
    return clock


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return value


def check_int_range(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an int in {low}..{high}, got {value!r}")
    return value


def check_fraction(name: str, value: float, *, low_open: bool = True) -> float:
    """value in (0, 1) (or [0, 1) when low_open is False)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
    if not ok:
        bounds = "(0, 1)" if low_open else "[0, 1)"
        raise ConfigError(f"{name} must be a number in {bounds}, got {value!r}")
    return value
