"""Tests of haperf.chaos: histories, the linearizability checker, the fault proxy and chaos runs."""
