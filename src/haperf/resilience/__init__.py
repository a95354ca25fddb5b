"""haperf.resilience: circuit breaker, retry with a retry budget, pipeline, Prometheus export.

Owns the public names of the resilience policies. Every policy implements the Policy contract
(haperf.resilience.policy): a `name`, `policy(fn)` to decorate a sync or async function with
its signature kept, and `metrics()` read on scrape. Clocks (integer ns) and sleeps are
injectable, so every policy runs in virtual time in tests.

    from haperf.resilience import CircuitBreaker, Retry, RetryBudget, Pipeline

    breaker = CircuitBreaker("db", failure_rate_threshold=50, window_size=50, calls_min=20)
    retry = Retry("db", attempts_max=3, budget=RetryBudget(ratio=0.1))

    @Pipeline(breaker=breaker, retry=retry)
    def query(sql: str) -> list[Row]: ...
"""

from haperf.errors import CallNotPermittedError
from haperf.resilience.breaker import BreakerState, CircuitBreaker, StateTransition
from haperf.resilience.metrics import CONTENT_TYPE, PrometheusExporter
from haperf.resilience.pipeline import ORDER, Pipeline
from haperf.resilience.policy import Policy
from haperf.resilience.retry import Retry, RetryBudget

__all__ = [
    "CONTENT_TYPE",
    "ORDER",
    "BreakerState",
    "CallNotPermittedError",
    "CircuitBreaker",
    "Pipeline",
    "Policy",
    "PrometheusExporter",
    "Retry",
    "RetryBudget",
    "StateTransition",
]
