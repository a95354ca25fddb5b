"""Fallback: when a call fails with one of the given exceptions, answer with a handler instead.

Owns Fallback. Invariants: only exceptions matching `on` (default: Exception) are handled, and
CancelledError, KeyboardInterrupt, SystemExit and GeneratorExit always propagate, even with
`on=(BaseException,)`; the handler gets the
exception and its result is returned in place of the call's; a handler that raises propagates
its own error (chained to the original); an async call may have a sync or an async handler, a
sync call needs a sync handler.
"""

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, overload

from haperf._native.callstats import CallStats
from haperf.errors import ConfigError
from haperf.resilience._limits_common import P, R, check_name, is_async

# Even `on=(BaseException,)` never turns these into a value: they stop the task or the process.
_NEVER_HANDLED = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class Fallback:
    """Return handler(exc) when the wrapped call raises one of `on`."""

    def __init__(
        self,
        handler: Callable[[BaseException], Any],
        *,
        on: tuple[type[BaseException], ...] = (Exception,),
        name: str = "fallback",
    ) -> None:
        if not callable(handler):
            raise ConfigError(f"handler must be callable (exception -> value), got {handler!r}")
        if (
            not isinstance(on, tuple)
            or not on
            or not all(isinstance(e, type) and issubclass(e, BaseException) for e in on)
        ):
            raise ConfigError(f"on must be a non-empty tuple of exception types, got {on!r}")
        self.name = check_name(name)
        self._handler = handler
        self._on = on
        self._stats = CallStats()

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        handler = self._handler
        on = self._on
        stats = self._stats
        if is_async(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                stats.calls += 1
                try:
                    result = await fn(*args, **kwargs)
                except on as exc:
                    if isinstance(exc, _NEVER_HANDLED):
                        raise
                    stats.failures += 1
                    stats.fallbacks += 1
                    value = handler(exc)
                    if inspect.isawaitable(value):
                        value = await value
                    return value
                stats.successes += 1
                return result

            return async_wrapper
        if is_async(handler):
            raise ConfigError(
                f"Fallback {self.name!r}: a sync function needs a sync handler, got the async "
                f"{getattr(handler, '__qualname__', handler)!r}"
            )

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            stats.calls += 1
            try:
                result = fn(*args, **kwargs)
            except on as exc:
                if isinstance(exc, _NEVER_HANDLED):
                    raise
                stats.failures += 1
                stats.fallbacks += 1
                return handler(exc)
            stats.successes += 1
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        stats = self._stats
        return {
            "calls": stats.calls,
            "successes": stats.successes,
            "failures": stats.failures,
            "fallbacks": stats.fallbacks,
        }
