"""haperf.resilience: resilience policies that cost close to a bare call.

Owns the public names of the resilience policies: CircuitBreaker, Retry with a RetryBudget,
RateLimiter, KeyedRateLimiter, AdaptiveLimiter (AIMD or Gradient), Bulkhead, Timeout (and
TimeoutScope), Hedge, Fallback, LatencyBudget, ErrorBudget, the Pipeline that composes them in a
fixed order, and the PrometheusExporter. Every policy implements the Policy contract
(haperf.resilience.policy): a `name`, `policy(fn)` to decorate a sync or async function with its
signature kept, and `metrics()` read on scrape. Clocks (integer ns) and sleeps are injectable,
so every policy runs in virtual time in tests. See docs/resilience.md.

    from haperf.resilience import CircuitBreaker, Pipeline, RateLimiter, Retry, RetryBudget

    limiter = RateLimiter(500.0, burst=50, name="db")
    breaker = CircuitBreaker(name="db", failure_rate_threshold=50, window_size=50, calls_min=20)
    retry = Retry(name="db", attempts_max=3, budget=RetryBudget(ratio=0.1))

    @Pipeline(rate_limiter=limiter, breaker=breaker, retry=retry)
    def query(sql: str) -> list[Row]: ...
"""

from haperf.errors import CallNotPermittedError
from haperf.resilience.breaker import BreakerState, CircuitBreaker, StateTransition
from haperf.resilience.budget import (
    SRE_WORKBOOK_ALERTS,
    AlertEvent,
    BurnRateAlert,
    ErrorBudget,
    LatencyBudget,
    LatencyEvent,
    LatencyThreshold,
)
from haperf.resilience.bulkhead import Bulkhead
from haperf.resilience.concurrency import AIMD, AdaptiveLimiter, Gradient
from haperf.resilience.fallback import Fallback
from haperf.resilience.hedge import Hedge
from haperf.resilience.metrics import CONTENT_TYPE, PrometheusExporter
from haperf.resilience.pipeline import ORDER, Pipeline
from haperf.resilience.policy import Policy
from haperf.resilience.ratelimit import KeyedRateLimiter, RateLimiter
from haperf.resilience.retry import Retry, RetryBudget
from haperf.resilience.timeout import Timeout, TimeoutScope, loop_now_ns, timeout_scope

__all__ = [
    "AIMD",
    "CONTENT_TYPE",
    "ORDER",
    "SRE_WORKBOOK_ALERTS",
    "AdaptiveLimiter",
    "AlertEvent",
    "BreakerState",
    "Bulkhead",
    "BurnRateAlert",
    "CallNotPermittedError",
    "CircuitBreaker",
    "ErrorBudget",
    "Fallback",
    "Gradient",
    "Hedge",
    "KeyedRateLimiter",
    "LatencyBudget",
    "LatencyEvent",
    "LatencyThreshold",
    "Pipeline",
    "Policy",
    "PrometheusExporter",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "StateTransition",
    "Timeout",
    "TimeoutScope",
    "loop_now_ns",
    "timeout_scope",
]
