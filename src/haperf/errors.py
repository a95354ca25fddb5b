"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


class RejectedError(HaperfError):
    """A resilience policy refused a call without running it (limit, full bulkhead, ...).

    `policy` names the policy that refused; `retry_after_ns` is a hint (0 when unknown).
    """

    def __init__(self, message: str, *, policy: str = "", retry_after_ns: int = 0) -> None:
        super().__init__(message)
        self.policy = policy
        self.retry_after_ns = retry_after_ns


class RateLimitedError(RejectedError):
    """A rate limiter had no tokens for the call (or its wait would exceed the allowed wait)."""


class BulkheadFullError(RejectedError):
    """A bulkhead had no free slot and its wait queue was full or the queue wait timed out."""


class ConcurrencyLimitError(RejectedError):
    """An adaptive concurrency limiter was at its current limit."""
