"""haperf.kv: the replicated key-value service (store, RESP server and client, admin, CLI glue).

Owns the package. The kv engineer's __init__ (KVStore, RespServer, KVClient exports) replaces
this placeholder when the branches merge.
"""
