"""The haperf version, single source for the package metadata (read by scikit-build-core)."""

__version__ = "0.1.0"
