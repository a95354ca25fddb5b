"""Tests of haperf.raft.durable.DiskStorage: contract against MemoryStorage, restarts, crashes."""
