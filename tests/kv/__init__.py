"""Tests of haperf.kv: the store, the command codec, the RESP parser, the server and client."""
