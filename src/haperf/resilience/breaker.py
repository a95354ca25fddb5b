"""CircuitBreaker: the public facade over haperf._native.breaker (resilience4j semantics).

Owns configuration validation (bad values raise ConfigError at construction), the state enum,
transition listeners, the context-manager protocol and metrics(). The state machine, the
sliding windows, the explicit API (allow / on_success / on_failure) and the decorator wrappers
are native (BreakerBase, SyncGuard, AsyncGuard), so a closed call costs a C field read and a
counter increment around the wrapped call.

Invariants: no lock is held across a protected call (threads and tasks run the protected calls
concurrently); the clock is read only when the state machine needs a time; a rejection is a
fresh CallNotPermittedError; listeners run after the state has changed and an error in one is
logged, never propagated into the call that caused the transition.
"""

import contextvars
import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, TypeVar, cast

from haperf._native import breaker as _native
from haperf.errors import CallNotPermittedError, ConfigError
from haperf.resilience.policy import Clock, copy_function_attributes, is_async_callable

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("haperf.resilience")

WINDOW_SIZE_MAX = _native.WINDOW_SIZE_LIMIT
WINDOW_BUCKETS_MAX = _native.WINDOW_BUCKETS_LIMIT
HALF_OPEN_PERMITS_MAX = _native.HALF_OPEN_PERMITS_LIMIT
SECOND_NS = 1_000_000_000


class BreakerState(enum.IntEnum):
    """Breaker states, numbered as in resilience4j (the value of the `state` gauge)."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    DISABLED = 3
    FORCED_OPEN = 4
    METRICS_ONLY = 5


@dataclass(frozen=True, slots=True)
class StateTransition:
    """What a transition listener receives."""

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    at_ns: int


Listener = Callable[[StateTransition], object]

# The per-context stack of (start_ns, epoch, token) for `with breaker:` blocks, so concurrent
# threads and tasks sharing one breaker each keep their own call state.
_Entered = tuple[int, int, Any]
_entered: contextvars.ContextVar[_Entered | None] = contextvars.ContextVar(
    "haperf_breaker_entered", default=None
)


def _check_ns(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int number of nanoseconds, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum} ns, got {value}")
    return value


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(f"{name} must be a percentage in (0, 100], got {value!r}")
    return float(value)


def _check_count(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an int in {lo}..{hi}, got {value!r}")
    return value


def _check_types(
    name: str, value: Iterable[type[BaseException]]
) -> tuple[type[BaseException], ...]:
    types = tuple(value)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigError(f"{name} must hold exception classes, got {t!r}")
    return types


class CircuitBreaker(_native.BreakerBase):
    """A circuit breaker with resilience4j's semantics, usable four ways.

        breaker = CircuitBreaker("payments", failure_rate_threshold=50, window_size=20)

        @breaker                      # sync or async function; the signature is kept
        def charge(order: Order) -> Receipt: ...

        with breaker:                 # a block (async with for coroutines)
            ...

        if breaker.allow():           # explicit, non-raising, for hot loops
            t0 = clock(); ok = do(); d = clock() - t0
            breaker.on_success(d) if ok else breaker.on_failure(d)

    Window: window="count" judges the last `window_size` calls; window="time" judges the calls
    of the last `window_ns`, kept in `window_buckets` buckets of window_ns // window_buckets ns
    each (resilience4j uses one bucket per second); a whole bucket expires at once. Once
    `calls_min` calls are in the window, the breaker opens when the failure rate
    reaches `failure_rate_threshold` percent, or when the share of calls lasting at least
    `slow_call_ns` reaches `slow_call_rate_threshold` percent (slow calls are off when
    slow_call_ns is None). OPEN rejects calls for `open_duration_ns`, multiplied by
    `open_backoff_multiplier` for each consecutive opening up to `open_duration_max_ns`, then
    HALF_OPEN admits exactly `half_open_permits` probe calls and judges them all: below both
    thresholds closes, otherwise opens again. `half_open_max_ns` (None: wait forever) reopens a
    half-open breaker whose probes have not all answered in time.

    Outcomes: an exception of an `ignore_exceptions` type, or any BaseException that is not an
    Exception (cancellation), neither fails nor succeeds; an exception of a `record_exceptions`
    type for which `record_exception(exc)` is true (when given) is a failure; any other
    exception counts as a success (resilience4j semantics). A result for which
    `record_result(result)` is true is a failure.
    """

    name: str

    def __init__(
        self,
        name: str = "breaker",
        *,
        failure_rate_threshold: float = 50.0,
        slow_call_rate_threshold: float = 100.0,
        slow_call_ns: int | None = None,
        window: Literal["count", "time"] = "count",
        window_size: int = 100,
        window_ns: int = 60 * SECOND_NS,
        window_buckets: int = 10,
        calls_min: int = 100,
        open_duration_ns: int = 60 * SECOND_NS,
        open_backoff_multiplier: float = 1.0,
        open_duration_max_ns: int | None = None,
        half_open_permits: int = 10,
        half_open_max_ns: int | None = None,
        record_exceptions: Iterable[type[BaseException]] = (Exception,),
        ignore_exceptions: Iterable[type[BaseException]] = (),
        record_exception: Callable[[BaseException], bool] | None = None,
        record_result: Callable[[Any], bool] | None = None,
        listeners: Iterable[Listener] = (),
        clock: Clock = time.monotonic_ns,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        if window not in ("count", "time"):
            raise ConfigError(f"window must be 'count' or 'time', got {window!r}")
        _check_rate("failure_rate_threshold", failure_rate_threshold)
        _check_rate("slow_call_rate_threshold", slow_call_rate_threshold)
        if slow_call_ns is not None:
            _check_ns("slow_call_ns", slow_call_ns, 1)
        _check_count("window_size", window_size, 1, WINDOW_SIZE_MAX)
        _check_count("window_buckets", window_buckets, 1, WINDOW_BUCKETS_MAX)
        _check_ns("window_ns", window_ns, 1)
        if window == "time" and window_ns < window_buckets:
            raise ConfigError(
                f"window_ns ({window_ns}) must be at least window_buckets ({window_buckets})"
            )
        _check_count("calls_min", calls_min, 1, 1 << 62)
        _check_ns("open_duration_ns", open_duration_ns)
        if (
            isinstance(open_backoff_multiplier, bool)
            or not isinstance(open_backoff_multiplier, int | float)
            or not 1.0 <= open_backoff_multiplier <= 1000.0
        ):
            raise ConfigError(
                f"open_backoff_multiplier must be a number in [1, 1000], "
                f"got {open_backoff_multiplier!r}"
            )
        if open_duration_max_ns is None:
            open_duration_max_ns = open_duration_ns
            if open_backoff_multiplier != 1.0:
                raise ConfigError(
                    "open_backoff_multiplier needs open_duration_max_ns, the cap of the backoff"
                )
        _check_ns("open_duration_max_ns", open_duration_max_ns, open_duration_ns)
        _check_count("half_open_permits", half_open_permits, 1, HALF_OPEN_PERMITS_MAX)
        if half_open_max_ns is not None:
            _check_ns("half_open_max_ns", half_open_max_ns, 1)
        record = _check_types("record_exceptions", record_exceptions)
        ignore = _check_types("ignore_exceptions", ignore_exceptions)
        predicates = (("record_exception", record_exception), ("record_result", record_result))
        for label, pred in predicates:
            if pred is not None and not callable(pred):
                raise ConfigError(f"{label} must be callable or None, got {pred!r}")
        if not callable(clock):
            raise ConfigError(f"clock must be a callable returning ns, got {clock!r}")
        if window == "count":
            # resilience4j: a count window can never hold more than window_size calls.
            calls_min = min(calls_min, window_size)
        kind = (
            _native.WindowKind.WINDOW_COUNT if window == "count" else _native.WindowKind.WINDOW_TIME
        )
        core = _native.BreakerCore(
            kind,
            window_size,
            window_ns,
            window_buckets,
            calls_min,
            float(failure_rate_threshold),
            float(slow_call_rate_threshold),
            slow_call_ns or 0,
            open_duration_ns,
            float(open_backoff_multiplier),
            open_duration_max_ns,
            half_open_permits,
            half_open_max_ns or 0,
        )
        self.name = name
        self._clock = clock
        self._listeners: list[Listener] = []
        for listener in listeners:
            self.add_listener(listener)
        core.transition_hook = self._on_transition
        self._setup(
            core,
            clock,
            record,
            ignore,
            record_exception,
            record_result,
            CallNotPermittedError,
            name,
        )

    # ---- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Protect `fn` (sync or async). The wrapper keeps its signature and name."""
        if not callable(fn):
            raise ConfigError(f"a circuit breaker decorates a callable, got {fn!r}")
        guard = self._guard(fn, is_async_callable(fn))
        copy_function_attributes(guard, fn)
        return cast(Callable[P, R], guard)

    # ---- context manager ---------------------------------------------------------------

    def __enter__(self) -> Self:
        now = self._clock()
        core = self.core
        if not core.allow(now):
            raise CallNotPermittedError(
                self.name, BreakerState(core.state).name, core.remaining_open_ns(now)
            )
        _entered.set((now, core.epoch, _entered.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entered = _entered.get()
        if entered is None:
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        start, epoch, outer = entered
        _entered.set(outer)
        core = self.core
        if exc is not None:
            verdict = self._judge(exc)
            if verdict is None:
                core.on_release(epoch)
                return
            failure = verdict
        else:
            failure = False
        now = self._clock()
        core.on_outcome(failure, now - start, now, epoch)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _judge(self, exc: BaseException) -> bool | None:
        """True failure, False success, None ignored (the rules of the class docstring)."""
        return {1: True, 0: False, -2: None}[self._judge_exception(exc)]

    # ---- state -------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        return BreakerState(self.core.state)

    def transition_to(self, state: BreakerState) -> None:
        """Force a state (resilience4j's transitionTo*State). CLOSED also resets the window."""
        self.core.transition_to(int(BreakerState(state)), self._clock())

    def force_open(self) -> None:
        """Reject every call until another transition (an operator's kill switch)."""
        self.transition_to(BreakerState.FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through and record nothing until another transition."""
        self.transition_to(BreakerState.DISABLED)

    def metrics_only(self) -> None:
        """Let every call through, record metrics, never change state by itself."""
        self.transition_to(BreakerState.METRICS_ONLY)

    def reset(self) -> None:
        """Back to CLOSED with an empty window."""
        self.transition_to(BreakerState.CLOSED)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(StateTransition)` after every state transition."""
        if not callable(listener):
            raise ConfigError(f"a listener must be callable, got {listener!r}")
        self._listeners.append(listener)

    def _on_transition(self, from_state: int, to_state: int, now_ns: int) -> None:
        if not self._listeners:
            return
        event = StateTransition(self.name, BreakerState(from_state), BreakerState(to_state), now_ns)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - logged with its traceback, see below
                # The transition has happened; a broken listener must not fail the call that
                # caused it. It is reported, not swallowed.
                _log.exception("listener %r of circuit breaker %r failed", listener, self.name)

    # ---- metrics -----------------------------------------------------------------------

    def metrics(self) -> dict[str, int | float]:
        """Counters (calls, successes, failures, ignored, rejections, slow_calls, transitions)
        and gauges (state, failure_rate and slow_call_rate in percent or -1 below calls_min,
        buffered_calls, buffered_failures)."""
        core = self.core
        if core.window_kind == _native.WindowKind.WINDOW_TIME:
            core.expire(self._clock())
        return {
            "calls": core.calls,
            "successes": core.successes,
            "failures": core.failures,
            "ignored": core.ignored,
            "rejections": core.rejections,
            "slow_calls": core.slow_calls,
            "transitions": core.transitions,
            "state": core.state,
            "failure_rate": core.failure_rate,
            "slow_call_rate": core.slow_call_rate,
            "buffered_calls": core.window_calls,
            "buffered_failures": core.window_failures,
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.name})"
