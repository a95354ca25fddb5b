"""The Policy contract every resilience policy implements, and helpers shared by the policies.

Owns the structural type `Policy` (what Pipeline composes and the Prometheus exporter reads),
the clock and sleep types, `is_async_callable` and `copy_function_attributes`.

Invariants of a Policy:
- `name` is a non-empty str, used as the `policy` label of its metrics;
- `policy(fn)` decorates a sync or an async function (told apart with
  inspect.iscoroutinefunction) and returns a wrapper with the same signature: a sync wrapper for
  a sync function, a coroutine function for a coroutine function;
- `metrics()` returns the current counters and gauges, snake_case keys to int or float. It reads
  counters the policy keeps (in C for the native policies): a scrape never changes them, and a
  call never calls into a metrics library. Counter keys (monotonic) are those in COUNTER_KEYS,
  or those a policy lists in an optional `counter_keys` attribute; every other key is a gauge.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, ParamSpec, Protocol, TypeVar, runtime_checkable

P = ParamSpec("P")
R = TypeVar("R")

Clock = Callable[[], int]
"""Monotonic time in integer nanoseconds (time.monotonic_ns by default; a fake clock in tests)."""
Sleep = Callable[[float], object]
"""Blocks for a number of seconds (time.sleep by default)."""
AsyncSleep = Callable[[float], Awaitable[object]]
"""Waits for a number of seconds (asyncio.sleep by default)."""

COUNTER_KEYS: Final = frozenset(
    {
        "calls",
        "successes",
        "failures",
        "rejections",
        "slow_calls",
        "ignored",
        "transitions",
        "retries",
        "retry_budget_rejections",
        "exhausted",
        "deadline_exceeded",
        "fallbacks",
        "hedges",
        "timeouts",
    }
)
"""Metric keys that are monotonic counters for every policy (everything else is a gauge)."""


@runtime_checkable
class Policy(Protocol):
    """A resilience policy: a named decorator with pull-based metrics."""

    name: str

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Wrap `fn` (sync or async); the wrapper has the same signature."""
        ...

    def metrics(self) -> dict[str, int | float]:
        """Current counters and gauges, read on scrape."""
        ...


def is_async_callable(fn: object) -> bool:
    """True for a coroutine function, including haperf's native async wrappers (they present
    the wrapped function's code object, so inspect.iscoroutinefunction sees them too)."""
    return inspect.iscoroutinefunction(fn)


_COPIED = ("__module__", "__name__", "__qualname__", "__doc__")
# Present so inspect treats a native wrapper as function-like (iscoroutinefunction, signature).
_FUNCTION_LIKE = ("__code__", "__defaults__", "__kwdefaults__", "__annotations__")


def copy_function_attributes(wrapper: Any, fn: Callable[..., Any]) -> None:
    """functools.update_wrapper for native wrappers: the names and docstring, __wrapped__ (so
    inspect.signature reports the wrapped signature) and, for Python functions, the code object
    and defaults (so inspect.iscoroutinefunction answers as it does for `fn`)."""
    for attr in _COPIED:
        if hasattr(fn, attr):
            setattr(wrapper, attr, getattr(fn, attr))
    if inspect.isfunction(fn) or hasattr(fn, "__code__"):
        for attr in _FUNCTION_LIKE:
            if hasattr(fn, attr):
                setattr(wrapper, attr, getattr(fn, attr))
    wrapper.__wrapped__ = fn
