"""Tests of haperf.sim: the deterministic simulator, its parts, its checkers and its CLI."""
