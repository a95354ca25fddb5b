"""Tests of haperf.runtime: the event loop choice, the clocks and the TCP transport."""
