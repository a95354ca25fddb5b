"""Test package (lets pytest import tests by package name)."""
