"""Pipeline: the fixed order of the roles, shown with the real breaker and retry between
test-local policies that record when they are entered; sync and async; configuration errors.
"""

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from haperf.errors import CallNotPermittedError, ConfigError
from haperf.resilience import ORDER, CircuitBreaker, Pipeline, Policy, Retry
from tests.resilience.virtual_time_breaker import FakeClock


class Recorder:
    """A test policy: logs its name on entry; as a fallback it turns errors into a value."""

    def __init__(self, name: str, log: list[str], *, fallback: bool = False) -> None:
        self.name = name
        self.log = log
        self.fallback = fallback
        self.calls = 0
        self.caught: list[type[BaseException]] = []

    def __call__(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                self.log.append(self.name)
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    if not self.fallback:
                        raise
                    self.caught.append(type(exc))
                    return "fallback"

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.log.append(self.name)
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not self.fallback:
                    raise
                self.caught.append(type(exc))
                return "fallback"

        return wrapper

    def metrics(self) -> dict[str, int | float]:
        return {"calls": self.calls}


def build(log: list[str], clock: FakeClock) -> tuple[Pipeline, dict[str, Any]]:
    policies: dict[str, Any] = {
        "fallback": Recorder("fallback", log, fallback=True),
        "hedge": Recorder("hedge", log),
        "rate_limiter": Recorder("rate_limiter", log),
        "bulkhead": Recorder("bulkhead", log),
        "breaker": CircuitBreaker(
            "breaker", window_size=2, calls_min=2, failure_rate_threshold=100, clock=clock
        ),
        "retry": Retry(
            "retry",
            attempts_max=3,
            initial_delay_ns=0,
            clock=clock,
            sleep_ns=clock.sleep_ns,
            async_sleep_ns=clock.async_sleep_ns,
        ),
        "timeout": Recorder("timeout", log),
    }
    return Pipeline("p", **policies), policies


def test_roles_are_applied_in_the_documented_order() -> None:
    assert ORDER == (
        "fallback",
        "hedge",
        "rate_limiter",
        "bulkhead",
        "breaker",
        "retry",
        "timeout",
    )
    log: list[str] = []
    pipeline, p = build(log, FakeClock())
    assert [name for name, _ in pipeline.roles] == list(ORDER)
    assert pipeline.policies == tuple(p[role] for role in ORDER)

    @pipeline
    def call(x: int) -> int:
        log.append("call")
        return x

    assert call(3) == 3
    assert log == ["fallback", "hedge", "rate_limiter", "bulkhead", "timeout", "call"]
    assert p["breaker"].metrics()["successes"] == 1
    assert p["retry"].metrics()["successes"] == 1


def test_breaker_is_outside_retry_and_timeout_inside() -> None:
    log: list[str] = []
    clock = FakeClock()
    pipeline, p = build(log, clock)

    @pipeline
    def down() -> None:
        log.append("call")
        raise OSError("down")

    assert down() == "fallback"
    # One logical call: the bulkhead and breaker once, the timeout and the call per attempt.
    assert log == [
        "fallback",
        "hedge",
        "rate_limiter",
        "bulkhead",
        "timeout",
        "call",
        "timeout",
        "call",
        "timeout",
        "call",
    ]
    assert p["breaker"].metrics()["failures"] == 1
    assert p["retry"].metrics()["retries"] == 2
    assert down() == "fallback"  # the second failure opens the breaker (2 of 2)
    log.clear()
    assert down() == "fallback"
    # Open: rejected inside the bulkhead, before the retry; the fallback sees the rejection.
    assert log == ["fallback", "hedge", "rate_limiter", "bulkhead"]
    assert p["fallback"].caught == [OSError, OSError, CallNotPermittedError]
    assert p["retry"].metrics()["calls"] == 2


def test_async_pipeline_keeps_the_order_and_kind() -> None:
    log: list[str] = []
    pipeline, p = build(log, FakeClock())

    @pipeline
    async def call(x: int) -> int:
        log.append("call")
        await asyncio.sleep(0)
        return x

    assert inspect.iscoroutinefunction(call)
    assert asyncio.run(call(5)) == 5
    assert log == ["fallback", "hedge", "rate_limiter", "bulkhead", "timeout", "call"]
    assert p["breaker"].metrics()["successes"] == 1


def test_pipeline_keeps_the_signature_and_skips_missing_roles() -> None:
    clock = FakeClock()
    pipeline = Pipeline(breaker=CircuitBreaker(clock=clock), retry=Retry(clock=clock))

    def f(a: int, *, b: str = "") -> str:
        return b * a

    wrapped = pipeline(f)
    assert inspect.signature(wrapped) == inspect.signature(f)
    assert wrapped(2, b="x") == "xx"
    assert [name for name, _ in pipeline.roles] == ["breaker", "retry"]
    assert Pipeline()(f) is f


def test_policies_satisfy_the_contract() -> None:
    clock = FakeClock()
    for policy in (CircuitBreaker(clock=clock), Retry(clock=clock), Pipeline()):
        assert isinstance(policy, Policy)
        assert isinstance(policy.name, str)
        assert all(isinstance(v, int | float) for v in policy.metrics().values())


def test_bad_pipeline_configuration() -> None:
    breaker = CircuitBreaker()
    with pytest.raises(ConfigError, match="Policy contract"):
        Pipeline(bulkhead=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="same policy"):
        Pipeline(breaker=breaker, bulkhead=breaker)
    with pytest.raises(ConfigError, match="name"):
        Pipeline("")
    with pytest.raises(ConfigError, match="callable"):
        Pipeline()(3)  # type: ignore[arg-type, misc]


def test_a_policy_that_changes_the_kind_of_function_is_refused() -> None:
    class Syncifier(Recorder):
        def __call__(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
            return lambda *a, **k: None

    pipeline = Pipeline(timeout=Syncifier("timeout", []))

    async def f() -> None:
        return None

    with pytest.raises(ConfigError, match="timeout"):
        pipeline(f)
