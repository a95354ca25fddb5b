"""Contract of haperf._native.kvstore: KVCore, the write path of haperf.kv.KVStore.

KVCore owns the store's data (bytes -> bytes), the TTL table, the expiry heap, the replicated
clock and the applied index, and implements apply() for the encoded commands of
haperf.kv.commands (the layout is documented there and in docs/kv.md). haperf.kv.store.KVStore
subclasses it and adds reads, queries and snapshots in Python.

Invariants: apply reads no clock and no randomness; it parses and checks a whole command before
its first change and returns (never raises) a KVCommandError or KVValueError instance for bad
input, leaving the state unchanged; every multi-byte field is read little-endian byte by byte
(no alignment or host byte-order assumption).
"""

from libc.stdint cimport uint64_t


cdef enum:
    KV_OP_SET = 1
    KV_OP_DEL = 2
    KV_OP_CAS = 3
    KV_OP_INCRBY = 4
    KV_FLAG_NX = 1
    KV_FLAG_XX = 2
    KV_FLAG_GET = 4
    KV_FLAG_KEEPTTL = 8
    KV_FLAG_EXPECT_ABSENT = 1
    KV_SET_HEAD = 22
    KV_DEL_HEAD = 13
    KV_CAS_HEAD = 26
    KV_INCR_HEAD = 21
    KV_KEYS_PER_COMMAND_MAX = 65536
    # Most expired keys one applied write removes (bounded work per apply).
    KV_EXPIRE_SWEEP_MAX = 16
    # The expiry heap is rebuilt when stale entries make it this much larger than the TTL table.
    KV_EXPIRE_HEAP_SLACK = 2
    KV_EXPIRE_HEAP_MIN_REBUILD = 1024


cdef class KVCore:
    """The store's state and its deterministic apply (see kvstore.pyx)."""
    cdef public dict _data
    cdef public dict _expires
    cdef public list _heap
    cdef public uint64_t clock_ns
    cdef public object applied_index
    cdef public Py_ssize_t key_bytes_max
    cdef public Py_ssize_t value_bytes_max

    cdef object _live(self, bytes key)
    cdef int _set_ttl(self, bytes key, uint64_t exp, bint keep, bint was_live) except -1
    cdef int _after_write(self) except -1
    cdef object _set(self, const unsigned char* p, Py_ssize_t n)
    cdef object _delete(self, const unsigned char* p, Py_ssize_t n)
    cdef object _cas(self, const unsigned char* p, Py_ssize_t n)
    cdef object _incrby(self, const unsigned char* p, Py_ssize_t n)
