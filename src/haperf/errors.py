"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


class DetectorInputError(HaperfError, ValueError):
    """A failure detector was given input it cannot use (NaN phi, arrays of unequal length)."""


class UnknownNodeError(HaperfError, KeyError):
    """A node id is not (or no longer) watched by this detector bank."""
