"""Tests of haperf.resilience: every policy in virtual time, concurrency, the pipeline."""
