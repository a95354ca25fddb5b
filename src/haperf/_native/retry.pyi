"""Stub for haperf._native.retry: the retry budget core and the first attempt of a retry."""

import enum
from collections.abc import Callable
from typing import Any, Final

class RetryCounter(enum.IntEnum):
    COUNT_SUCCESS = 0
    COUNT_FAILURE = 1
    COUNT_RETRY = 2
    COUNT_BUDGET_REJECTION = 3
    COUNT_EXHAUSTED = 4
    COUNT_DEADLINE = 5

class RetryBudgetCore:
    balance_milli: Final[int]
    tokens_max_milli: Final[int]
    deposit_milli: Final[int]
    reserve_milli: Final[int]
    reserve_max_milli: Final[int]
    reserve_per_s: Final[int]
    reserve_at_ns: Final[int]
    deposits: Final[int]
    withdrawals: Final[int]
    denials: Final[int]
    def __init__(
        self, tokens_max_milli: int, deposit_milli: int, reserve_per_s: int, now_ns: int
    ) -> None: ...
    def deposit(self) -> None: ...
    def try_withdraw(self, now_ns: int) -> bool: ...
    @property
    def tokens(self) -> float: ...

class RetryBase:
    calls: Final[int]
    successes: Final[int]
    failures: Final[int]
    retries: Final[int]
    retry_budget_rejections: Final[int]
    exhausted: Final[int]
    deadline_exceeded: Final[int]
    def _count(self, counter: int) -> None: ...
    def _setup_native(
        self,
        clock: Callable[[], int],
        retry_if_result: Callable[[Any], bool] | None,
        budget: RetryBudgetCore | None,
        timed: bool,
    ) -> None: ...
    def _guard(self, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]: ...

GuardedCall: type
"""The awaitable an AsyncRetryGuard call returns (a collections.abc.Coroutine; haperf_await.h)."""

class SyncRetryGuard:
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class AsyncRetryGuard:
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
