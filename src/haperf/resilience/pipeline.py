"""Pipeline: resilience policies composed in one fixed, documented order, as one decorator.

Owns the order. From the outside in:

    fallback -> hedge -> rate_limiter -> bulkhead -> breaker -> retry -> timeout -> call

- the fallback sees every failure, including rejections by the policies inside it;
- hedging races whole protected attempts, each one admitted by the limiter and bulkhead;
- the rate limiter sheds load before it takes a bulkhead slot, and a call the bulkhead refuses
  never reaches the breaker, so the breaker's failure rate only judges the downstream;
- the breaker is outside the retry, so one logical call is one breaker outcome, and an open
  breaker stops retries before they start (retries of a rejection would only add load);
- the timeout is inside the retry, so it bounds each attempt, not the whole retried call (give
  Retry a deadline_ns for that).

Any role may be None (skipped). Every policy is a haperf.resilience.Policy (structural: name,
__call__, metrics), so the pipeline composes every policy in this package and test doubles alike.
Invariant: for a sync fn every layer is sync, for a coroutine function every layer is async;
the signature and name of `fn` are kept.
"""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from haperf.errors import ConfigError
from haperf.resilience.policy import Policy, is_async_callable

P = ParamSpec("P")
R = TypeVar("R")

ORDER: tuple[str, ...] = (
    "fallback",
    "hedge",
    "rate_limiter",
    "bulkhead",
    "breaker",
    "retry",
    "timeout",
)
"""The roles, outermost first."""


class Pipeline:
    """Policies by role, applied in ORDER (outermost first) as one decorator."""

    def __init__(
        self,
        name: str = "pipeline",
        *,
        rate_limiter: Policy | None = None,
        bulkhead: Policy | None = None,
        breaker: Policy | None = None,
        retry: Policy | None = None,
        timeout: Policy | None = None,
        hedge: Policy | None = None,
        fallback: Policy | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        given = {
            "fallback": fallback,
            "hedge": hedge,
            "rate_limiter": rate_limiter,
            "bulkhead": bulkhead,
            "breaker": breaker,
            "retry": retry,
            "timeout": timeout,
        }
        seen: dict[int, str] = {}
        for role, policy in given.items():
            if policy is None:
                continue
            if not isinstance(policy, Policy):
                raise ConfigError(
                    f"{role} must implement the Policy contract (name, __call__(fn), "
                    f"metrics()), got {policy!r}"
                )
            if id(policy) in seen:
                raise ConfigError(
                    f"the same policy object is given as {seen[id(policy)]} and {role}"
                )
            seen[id(policy)] = role
        self.name = name
        self.roles: tuple[tuple[str, Policy], ...] = tuple(
            (role, p) for role in ORDER if (p := given[role]) is not None
        )

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies, outermost first (what an exporter should read)."""
        return tuple(p for _, p in self.roles)

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Wrap `fn` in every policy, innermost (timeout) first."""
        if not callable(fn):
            raise ConfigError(f"a pipeline decorates a callable, got {fn!r}")
        is_async = is_async_callable(fn)
        wrapped = fn
        for role, policy in reversed(self.roles):
            wrapped = policy(wrapped)
            if is_async_callable(wrapped) != is_async:
                raise ConfigError(
                    f"the {role} policy {policy.name!r} turned a "
                    f"{'coroutine' if is_async else 'sync'} function into the other kind"
                )
        return wrapped

    def metrics(self) -> dict[str, int | float]:
        """The pipeline keeps no counters of its own (each policy does): the policy count."""
        return {"policies": len(self.roles)}

    def __repr__(self) -> str:
        inner = ", ".join(f"{role}={p.name!r}" for role, p in self.roles)
        return f"Pipeline({self.name!r}, {inner})"
