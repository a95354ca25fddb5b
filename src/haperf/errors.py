"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


class CallNotPermittedError(HaperfError):
    """A circuit breaker rejected a call (it is OPEN, FORCED_OPEN, or HALF_OPEN with every probe
    permit taken). Raised fresh for every rejection and built cheaply: the message is formatted
    only when the error is printed.

    args are (breaker name, state name, remaining open time in ns, 0 when unknown).
    """

    @property
    def breaker(self) -> str:
        return str(self.args[0])

    @property
    def state(self) -> str:
        return str(self.args[1])

    @property
    def retry_after_ns(self) -> int:
        """How long the breaker stays open from the rejection (0 when not known)."""
        return int(self.args[2])

    def __str__(self) -> str:
        name, state, remaining_ns = self.args
        wait = f" for another {remaining_ns / 1e9:.3f} s" if remaining_ns else ""
        return (
            f"circuit breaker {name!r} is {state}{wait} and does not permit calls; "
            "retry later or give the call a fallback"
        )
