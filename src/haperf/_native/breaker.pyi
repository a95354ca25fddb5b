"""Stub for haperf._native.breaker: the circuit breaker core, explicit API and call guards."""

import enum
from collections.abc import Callable
from typing import Any, Final

class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    DISABLED = 3
    FORCED_OPEN = 4
    METRICS_ONLY = 5

class WindowKind(enum.IntEnum):
    WINDOW_COUNT = 0
    WINDOW_TIME = 1

STATE_NAMES: Final[dict[int, str]]
WINDOW_SIZE_LIMIT: Final[int]
WINDOW_BUCKETS_LIMIT: Final[int]
HALF_OPEN_PERMITS_LIMIT: Final[int]

class BreakerCore:
    state: Final[int]
    window_kind: Final[int]
    window_size: Final[int]
    window_ns: Final[int]
    window_buckets: Final[int]
    calls_min: Final[int]
    failure_rate_threshold: Final[float]
    slow_call_rate_threshold: Final[float]
    slow_call_ns: Final[int]
    open_duration_ns: Final[int]
    open_backoff_multiplier: Final[float]
    open_duration_max_ns: Final[int]
    half_open_permits: Final[int]
    half_open_max_ns: Final[int]
    window_calls: Final[int]
    window_failures: Final[int]
    window_slow: Final[int]
    half_open_used: Final[int]
    half_open_calls: Final[int]
    half_open_failures: Final[int]
    half_open_slow: Final[int]
    half_open_since_ns: Final[int]
    open_until_ns: Final[int]
    open_attempts: Final[int]
    epoch: Final[int]
    calls: Final[int]
    successes: Final[int]
    failures: Final[int]
    ignored: Final[int]
    rejections: Final[int]
    slow_calls: Final[int]
    transitions: Final[int]
    transition_hook: Callable[[int, int, int], object] | None
    def __init__(
        self,
        window_kind: int,
        window_size: int,
        window_ns: int,
        window_buckets: int,
        calls_min: int,
        failure_rate_threshold: float,
        slow_call_rate_threshold: float,
        slow_call_ns: int,
        open_duration_ns: int,
        open_backoff_multiplier: float,
        open_duration_max_ns: int,
        half_open_permits: int,
        half_open_max_ns: int,
    ) -> None: ...
    def allow(self, now_ns: int) -> bool: ...
    def on_success(self, duration_ns: int, now_ns: int) -> None: ...
    def on_failure(self, duration_ns: int, now_ns: int) -> None: ...
    def on_ignored(self) -> None: ...
    def on_outcome(self, failure: bool, duration_ns: int, now_ns: int, call_epoch: int) -> None: ...
    def on_release(self, call_epoch: int) -> None: ...
    def transition_to(self, to_state: int, now_ns: int) -> None: ...
    def remaining_open_ns(self, now_ns: int) -> int: ...
    def expire(self, now_ns: int) -> None: ...
    @property
    def failure_rate(self) -> float: ...
    @property
    def slow_call_rate(self) -> float: ...

class BreakerBase:
    core: Final[BreakerCore]
    breaker_name: Final[str]
    def _setup(
        self,
        core: BreakerCore,
        clock: Callable[[], int],
        record_types: tuple[type[BaseException], ...],
        ignore_types: tuple[type[BaseException], ...],
        record_exception: Callable[[BaseException], bool] | None,
        record_result: Callable[[Any], bool] | None,
        reject_type: type[BaseException],
        name: str,
    ) -> None: ...
    def _judge_exception(self, exc: BaseException) -> int: ...
    def allow(self) -> bool: ...
    def try_acquire(self) -> bool: ...
    def allow_at(self, now_ns: int) -> bool: ...
    def on_success(self, duration_ns: int = 0) -> None: ...
    def on_failure(self, duration_ns: int = 0) -> None: ...
    def on_ignored(self) -> None: ...
    @property
    def state_code(self) -> int: ...
    def is_call_permitted(self) -> bool: ...
    def _guard(self, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]: ...

GuardedCall: type
"""The awaitable an AsyncGuard call returns (a collections.abc.Coroutine; haperf_await.h)."""

class SyncGuard:
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class AsyncGuard:
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
