"""haperf.kv: the replicated key-value state machine and its Redis-protocol (RESP2) front end.

Owns the public names: KVStore (the StateMachine: get/set/delete/cas/incr/keys/TTL/snapshots),
the command encoding (haperf.kv.commands), RespServer (redis-cli, redis-benchmark and redis-py
speak to it unchanged) and KVClient (async, follows leader redirects). See docs/kv.md.
"""

from haperf.kv.client import KVClient
from haperf.kv.server import RespServer
from haperf.kv.store import KVStore

__all__ = ["KVClient", "KVStore", "RespServer"]
