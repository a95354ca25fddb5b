"""Marks haperf._native as a Cython package, so `from haperf._native cimport x` resolves."""
