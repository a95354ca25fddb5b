"""Bulkhead: at most `max_concurrent` calls at once, a bounded FIFO wait queue with a timeout.

Owns Bulkhead, for coroutines and threads alike (one instance may serve both). Slot accounting
is native (haperf._native.concurrency.Slots), so each transition is one C call and atomic under
the GIL. Invariants:
- inflight <= max_concurrent, always; at most `queue_max` callers wait; the rest are rejected at
  once (BulkheadFullError), and so is a waiter whose `queue_timeout_ns` runs out.
- No barging: while anyone waits, newcomers queue behind them. A released slot is handed to the
  oldest waiter directly (it is never free in between), under `_lock`, the one lock, taken only
  on the slow path (queueing and handover), never on an uncontended enter or exit.
- A waiter cancelled after it was handed a slot gives the slot back (to the next waiter).
- Async queue waits run on the loop's clock (virtual time in tests); thread waits on the OS.
"""

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, NoReturn, overload

from haperf._native.concurrency import DONE, Slots
from haperf.errors import BulkheadFullError
from haperf.resilience._limits_common import P, R, check_int_range, check_name, is_async

CONCURRENT_MAX_LIMIT = 1 << 20
QUEUE_MAX_LIMIT = 1 << 20


class _AsyncWaiter:
    __slots__ = ("fut", "granted", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()
        self.thread = threading.get_ident()
        self.granted = False


class _ThreadWaiter:
    __slots__ = ("granted", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.granted = False


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Bulkhead:
    """Limit concurrency to `max_concurrent`, queue up to `queue_max` callers.

    `async with bulkhead:` / `with bulkhead:` hold a slot for the block (the `as` target is
    None for the async form, the bulkhead for the sync one); as a decorator it holds
    one for each call. `queue_timeout_ns=None` waits as long as it takes; 0 never waits.
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        queue_max: int = 0,
        queue_timeout_ns: int | None = None,
        name: str = "bulkhead",
    ) -> None:
        check_int_range("max_concurrent", max_concurrent, 1, CONCURRENT_MAX_LIMIT)
        check_int_range("queue_max", queue_max, 0, QUEUE_MAX_LIMIT)
        if queue_timeout_ns is not None:
            check_int_range("queue_timeout_ns", queue_timeout_ns, 0, 1 << 62)
        self.name = check_name(name)
        self._slots = Slots(max_concurrent, queue_max)
        self._queue_timeout_s = None if queue_timeout_ns is None else queue_timeout_ns / 1e9
        self._waiters: deque[_AsyncWaiter | _ThreadWaiter] = deque()
        self._lock = threading.Lock()
        self._try_enter = self._slots.try_enter_fast
        self._exit = self._slots.exit

    @property
    def max_concurrent(self) -> int:
        return int(self._slots.limit)

    @property
    def inflight(self) -> int:
        return int(self._slots.inflight)

    @property
    def queued(self) -> int:
        return int(self._slots.queued)

    # -- slot transitions ---------------------------------------------------------------------

    def _full(self, why: str) -> NoReturn:
        raise BulkheadFullError(
            f"bulkhead {self.name!r} is full ({self._slots.limit} running, "
            f"{self._slots.queued} queued): {why}; shed the call or raise max_concurrent/queue_max",
            policy=self.name,
        )

    def _release(self, outcome: int) -> None:
        if self._exit(outcome):
            self._handover()

    def _handover(self) -> None:
        """The slot we held now belongs to the oldest waiter: mark it granted and wake it."""
        with self._lock:
            if not self._waiters:
                # The waiter exit() saw left (timed out, cancelled) before we got the lock.
                self._slots.free()
                return
            waiter = self._waiters.popleft()
            self._slots.handover()
            waiter.granted = True
        if isinstance(waiter, _ThreadWaiter):
            waiter.lock.release()
        elif waiter.thread == threading.get_ident():
            _wake(waiter.fut)
        else:
            waiter.loop.call_soon_threadsafe(_wake, waiter.fut)

    async def _enter_slow(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._slots.enter_or_queue()
            if state == 1:
                return
            if state == -1:
                self._full("the wait queue is full")
            waiter = _AsyncWaiter(loop)
            self._waiters.append(waiter)
        timeout = self._queue_timeout_s
        timer = None if timeout is None else loop.call_later(timeout, self._expire, waiter)
        try:
            await waiter.fut
        except asyncio.CancelledError:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
                    self._slots.leave_queue(False)
            if granted:
                self._release(-1)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not waiter.granted:
            self._full(f"waited the queue timeout of {timeout} s")

    def _expire(self, waiter: _AsyncWaiter) -> None:
        with self._lock:
            if waiter.granted or waiter.fut.done():
                return
            self._waiters.remove(waiter)
            self._slots.leave_queue(True)
        waiter.fut.set_result(None)

    def _enter_thread(self) -> None:
        if self._try_enter():
            return
        with self._lock:
            state = self._slots.enter_or_queue()
            if state == 1:
                return
            if state == -1:
                self._full("the wait queue is full")
            waiter = _ThreadWaiter()
            self._waiters.append(waiter)
        timeout = self._queue_timeout_s
        waiter.lock.acquire(timeout=-1 if timeout is None else timeout)
        with self._lock:
            if waiter.granted:
                return
            self._waiters.remove(waiter)
            self._slots.leave_queue(True)
        self._full(f"waited the queue timeout of {timeout} s")

    # -- context managers ---------------------------------------------------------------------

    def __aenter__(self) -> Awaitable[None]:
        """`async with bulkhead:` takes a slot (the target is None). Uncontended, this is one C
        call and an already-complete awaitable: no coroutine is created."""
        if self._try_enter():
            return DONE
        return self._enter_slow()

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        if self._exit(1 if exc_type is None else 0):
            self._handover()
        return DONE

    def __enter__(self) -> "Bulkhead":
        self._enter_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._exit(1 if exc_type is None else 0):
            self._handover()

    # -- decorator ----------------------------------------------------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        try_enter = self._try_enter
        exit_ = self._exit

        if is_async(fn):
            enter_slow = self._enter_slow

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not try_enter():
                    await enter_slow()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    if exit_(0):
                        self._handover()
                    raise
                if exit_(1):
                    self._handover()
                return result

            return async_wrapper

        enter_thread = self._enter_thread

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            enter_thread()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                if exit_(0):
                    self._handover()
                raise
            if exit_(1):
                self._handover()
            return result

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        s = self._slots
        return {
            "calls": s.admitted + s.rejected,
            "admitted": s.admitted,
            "successes": s.successes,
            "failures": s.failures,
            "rejections": s.rejected,
            "queue_timeouts": s.queue_timeouts,
            "handovers": s.handovers,
            "inflight": s.inflight,
            "inflight_peak": s.inflight_peak,
            "queued": s.queued,
            "max_concurrent": s.limit,
            "queue_max": s.queue_max,
        }
