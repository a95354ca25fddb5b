"""Jepsen-style testing: a fault-injecting proxy, a nemesis, concurrent clients, histories and
a linearizability checker. Import the submodules (haperf.chaos.proxy, .nemesis, .workload,
.runner, .history, .lincheck) directly; this package module imports nothing heavy.
"""
