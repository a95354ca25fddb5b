"""Tests of haperf.wal: framing, the WAL API, recovery, crashes, faults and group commit."""
