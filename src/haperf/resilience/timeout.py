"""Async timeouts without a timer handle per call: one deadline queue and one timer per loop.

Owns Timeout (the policy), TimeoutScope (an `async with` block, the counterpart of
asyncio.Timeout) and the per-loop wheel that expires both. Entries live in a native min-heap
(haperf._native.deadline); the loop holds ONE timer, armed at the earliest live deadline and
re-armed only when a new deadline is earlier or when it fires. Deadlines are on the loop's clock
(loop.time()), the clock its timer runs on, so virtual-time loops drive it in tests.

Semantics are asyncio.timeout's (CPython 3.11 asyncio/timeouts.py): at expiry the task is
cancelled; on exit an expired scope calls task.uncancel() and, if no other cancellation
is pending (uncancel() <= the count at entry) and the block ended in CancelledError, raises
TimeoutError from it. An outer cancel() during the block stays a CancelledError; nested scopes
convert only their own expiry; a scope is entered once (RuntimeError on reuse).
"""

import asyncio
import functools
import sys
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, cast

from haperf._native.callstats import CallStats
from haperf._native.deadline import DeadlineQueue
from haperf.resilience._limits_common import P, R, check_int_range, check_name, require_async

TIMEOUT_NS_MAX = 1 << 62
ENTRIES_MAX = 1 << 20
UNARMED_NS = (1 << 63) - 1  # INT64_MAX: no timer armed


if sys.version_info < (3, 12):
    # 3.11's asyncio.current_task(loop) is Python code around this dict lookup (3.12 made it C):
    # calling the lookup directly saves a Python frame on every call.
    _current_tasks: dict[asyncio.AbstractEventLoop, "asyncio.Task[Any]"]
    _current_tasks = asyncio.tasks._current_tasks  # type: ignore[attr-defined,unused-ignore]
    _task_of = _current_tasks.get
else:
    _task_of = asyncio.current_task


def _loop_ns(loop: asyncio.AbstractEventLoop) -> int:
    return int(loop.time() * 1e9)


class _Wheel:
    """The deadline queue of one event loop and its single timer.

    The wheel holds no reference to the loop or to its timer handle (the loop's timer holds the
    wheel), so a closed loop is not kept alive by the weak table below. A timer armed earlier
    than the previous one supersedes it by `token`: the superseded timer fires as a no-op.
    """

    __slots__ = ("__weakref__", "queue", "token")

    def __init__(self) -> None:
        self.queue = DeadlineQueue(ENTRIES_MAX)
        self.token = 0

    def add(self, loop: asyncio.AbstractEventLoop, deadline_ns: int, obj: object) -> int:
        handle = self.queue.add(deadline_ns, obj)
        if deadline_ns < self.queue.armed_ns:
            self.arm(loop, deadline_ns)
        return handle

    def arm(self, loop: asyncio.AbstractEventLoop, deadline_ns: int) -> None:
        self.token += 1
        self.queue.armed_ns = deadline_ns
        loop.call_at(deadline_ns / 1e9, self._fire, loop, self.token)

    def _fire(self, loop: asyncio.AbstractEventLoop, token: int) -> None:
        if token != self.token:
            return  # superseded by an earlier deadline
        # The loop ran this timer, so its deadline has passed on the loop's clock, even if
        # loop.time() -> int ns rounds to a nanosecond below it (seconds are floats).
        due_ns = self.queue.armed_ns
        self.queue.armed_ns = UNARMED_NS
        for obj in self.queue.pop_expired(max(_loop_ns(loop), due_ns)):
            if type(obj) is TimeoutScope:
                obj._on_timeout()
            else:
                cast("asyncio.Task[Any]", obj).cancel()
        nxt = self.queue.next_deadline()
        if nxt is not None:
            self.arm(loop, nxt)


_wheels: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wheel]" = (
    weakref.WeakKeyDictionary()
)


# The last loop asked about (weakly) and its wheel: WeakKeyDictionary lookups build a weak
# reference each time, and nearly every lookup is for the same loop.
_last_loop: "weakref.ref[asyncio.AbstractEventLoop] | None" = None
_last_wheel: _Wheel | None = None


def _wheel(loop: asyncio.AbstractEventLoop) -> _Wheel:
    global _last_loop, _last_wheel  # a one-entry lookup cache
    if _last_loop is not None and _last_loop() is loop:
        assert _last_wheel is not None
        return _last_wheel
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _Wheel()
    _last_loop, _last_wheel = weakref.ref(loop), wheel
    return wheel


def wheel_stats(loop: asyncio.AbstractEventLoop) -> dict[str, int]:
    """Counters of the loop's deadline queue (live entries, heap nodes, expirations, ...)."""
    q = _wheel(loop).queue
    return {
        "live": q.live,
        "heap_len": q.heap_len,
        "added": q.added,
        "expired": q.expired,
        "removed": q.removed,
        "compactions": q.compactions,
    }


_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = range(5)


class TimeoutScope:
    """`async with TimeoutScope(when_ns):` cancels the block at loop time when_ns (None: never).

    Same contract as asyncio.Timeout: when(), reschedule(when), expired(). Times are loop-clock
    integer nanoseconds (deadline_ns(loop) gives now).
    """

    __slots__ = (
        "_cancelling",
        "_handle",
        "_loop",
        "_state",
        "_stats",
        "_task",
        "_wheel",
        "_when_ns",
    )

    def __init__(self, when_ns: int | None, *, _stats: CallStats | None = None) -> None:
        self._state = _CREATED
        self._when_ns = when_ns
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wheel: _Wheel | None = None
        self._handle = -1
        self._cancelling = 0
        self._stats = _stats

    def when(self) -> int | None:
        return self._when_ns

    def expired(self) -> bool:
        return self._state in (_EXPIRING, _EXPIRED)

    def reschedule(self, when_ns: int | None) -> None:
        if self._state != _ENTERED:
            if self._state == _CREATED:
                raise RuntimeError("Timeout has not been entered")
            raise RuntimeError("Cannot change state of a finished or expiring timeout")
        wheel = self._wheel
        assert self._loop is not None and wheel is not None
        if self._handle >= 0:
            wheel.queue.remove(self._handle)
            self._handle = -1
        self._when_ns = when_ns
        if when_ns is not None:
            self._handle = wheel.add(self._loop, when_ns, self)

    def _on_timeout(self) -> None:
        assert self._state == _ENTERED and self._task is not None
        self._task.cancel()
        self._state = _EXPIRING

    async def __aenter__(self) -> "TimeoutScope":
        if self._state != _CREATED:
            raise RuntimeError("Timeout has already been entered")
        loop = asyncio.get_running_loop()
        task = _task_of(loop)
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._state = _ENTERED
        self._task = task
        self._loop = loop
        self._wheel = _wheel(loop)
        self._cancelling = task.cancelling()
        self.reschedule(self._when_ns)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._state in (_ENTERED, _EXPIRING) and self._wheel is not None
        if self._handle >= 0:
            self._wheel.queue.remove(self._handle)
            self._handle = -1
        if self._state == _EXPIRING:
            self._state = _EXPIRED
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                if self._stats is not None:
                    self._stats.timeouts += 1
                raise TimeoutError from exc
        elif self._state == _ENTERED:
            self._state = _EXITED


def loop_now_ns() -> int:
    """The running loop's clock in ns (the clock TimeoutScope deadlines are on)."""
    return _loop_ns(asyncio.get_running_loop())


def timeout_scope(delay_ns: int | None) -> TimeoutScope:
    """A TimeoutScope expiring delay_ns from now on the running loop (None: never)."""
    if delay_ns is None:
        return TimeoutScope(None)
    return TimeoutScope(loop_now_ns() + delay_ns)


class Timeout:
    """Cancel an async call after `timeout_ns` and raise TimeoutError (asyncio.timeout semantics).

    The decorator does not create a timer handle or a task per call: it registers the current
    task in the loop's deadline queue and retires the entry when the call returns.
    """

    def __init__(self, timeout_ns: int, *, name: str = "timeout") -> None:
        check_int_range("timeout_ns", timeout_ns, 1, TIMEOUT_NS_MAX)
        self.name = check_name(name)
        self.timeout_ns = timeout_ns
        self._stats = CallStats()

    def scope(self) -> TimeoutScope:
        """An `async with` block bounded by this policy's timeout (counted in its metrics)."""
        return TimeoutScope(loop_now_ns() + self.timeout_ns, _stats=self._stats)

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        require_async(fn, f"Timeout {self.name!r}")
        timeout_ns = self.timeout_ns
        stats = self._stats
        get_loop = asyncio.get_running_loop
        current_task = _task_of
        cancelled_error = asyncio.CancelledError
        cached_loop: asyncio.AbstractEventLoop | None = None
        wheel = _Wheel()  # replaced by the running loop's wheel on the first call

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            nonlocal cached_loop, wheel
            loop = get_loop()
            if loop is not cached_loop:
                wheel = _wheel(loop)
                cached_loop = loop
            task = current_task(loop)
            if task is None:
                raise RuntimeError("Timeout should be used inside a task")
            cancelling = task.cancelling()
            queue = wheel.queue
            handle = queue.add_after(loop.time(), timeout_ns, task)
            if handle < 0:
                handle = ~handle
                wheel.arm(loop, queue.deadline_of(handle))
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                # An expired entry: undo our cancel; convert it only if it is ours alone.
                if (
                    queue.remove(handle)
                    and task.uncancel() <= cancelling
                    and type(exc) is cancelled_error
                ):
                    stats.timeouts += 1
                    raise TimeoutError(
                        f"{getattr(fn, '__qualname__', 'call')} took longer than "
                        f"{timeout_ns} ns ({self.name})"
                    ) from exc
                stats.failures += 1
                raise
            if queue.remove(handle):
                # Expired, but the call swallowed the cancellation and returned: like
                # asyncio.timeout, undo our cancel request and let the result through.
                task.uncancel()
            stats.successes += 1
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        stats = self._stats
        return {
            "calls": stats.successes + stats.failures + stats.timeouts,
            "successes": stats.successes,
            "failures": stats.failures,
            "timeouts": stats.timeouts,
        }
