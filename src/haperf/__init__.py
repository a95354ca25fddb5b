"""haperf: high-availability building blocks for Python services.

Owns the top-level namespace: the version and nothing else. Each capability is its own
subpackage (haperf.checksum today; raft, wal, detect, resilience, ... as they land), imported
explicitly so that `import haperf` stays cheap.
"""

from haperf._version import __version__

__all__ = ["__version__"]
