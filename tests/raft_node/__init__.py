"""Tests of haperf.raft.RaftNode: the node on an event loop over a transport and a storage."""
