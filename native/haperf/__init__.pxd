"""Marks native/haperf as a Cython package, so `from haperf._native cimport x` resolves."""
