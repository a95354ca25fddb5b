"""haperf.resilience: resilience policies that cost close to a bare call.

Part B of the package (this branch): rate limiting (RateLimiter, KeyedRateLimiter,
AdaptiveLimiter with AIMD or Gradient), Bulkhead, Timeout (and TimeoutScope), Hedge, Fallback,
LatencyBudget and ErrorBudget. Every policy has `name`, `__call__(fn)` (a decorator for sync or
async functions, async only for Timeout and Hedge) and `metrics()`; each takes an injectable
clock (int ns) where it reads time. See docs/resilience_limits.md.
"""

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
from haperf.resilience.ratelimit import KeyedRateLimiter, RateLimiter
from haperf.resilience.timeout import Timeout, TimeoutScope, loop_now_ns, timeout_scope

__all__ = [
    "AIMD",
    "SRE_WORKBOOK_ALERTS",
    "AdaptiveLimiter",
    "AlertEvent",
    "Bulkhead",
    "BurnRateAlert",
    "ErrorBudget",
    "Fallback",
    "Gradient",
    "Hedge",
    "KeyedRateLimiter",
    "LatencyBudget",
    "LatencyEvent",
    "LatencyThreshold",
    "RateLimiter",
    "Timeout",
    "TimeoutScope",
    "loop_now_ns",
    "timeout_scope",
]
