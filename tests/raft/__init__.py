"""Tests of the Raft message types, codec, core, host and simulator."""
