"""The cluster benchmark's small library: processes, clients, load drivers, systems, report.

Owns everything `benchmarks/cluster/run.py` needs to start a 3-member cluster of haperf, etcd or
PySyncObj on 127.0.0.1, drive it and report. Invariants: it only starts and kills processes it
spawned itself (each in its own process group, all killed at exit), only uses loopback ports it
picked free, and removes the temporary directories it made. It adds no runtime dependency to
haperf: the stdlib, uvloop when importable, and the peers' own binaries or packages.
"""
