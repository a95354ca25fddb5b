"""Tests of haperf.chaos: the fault proxy, the nemesis, the workload and the runner."""
