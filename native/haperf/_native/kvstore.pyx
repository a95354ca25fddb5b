"""haperf._native.kvstore: KVCore.apply, the per-write hot path of the replicated kv store.

Owns the byte-level apply of SET / DEL / CAS / INCRBY (layouts in haperf.kv.commands), the
replicated clock (the largest now_ns applied), lazy expiry of keys a write touches, and the
bounded expiry sweep (KV_EXPIRE_SWEEP_MAX heap entries per applied write). Reads, queries and
snapshots are Python, in haperf.kv.store.KVStore (a subclass).

Invariants (see kvstore.pxd): deterministic; nothing changes before the whole command checked
out; bad input is returned as an error instance, never raised.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

import heapq

from haperf.errors import KVCommandError, KVSnapshotError, KVValueError

_heappush = heapq.heappush
_heappop = heapq.heappop
_heapify = heapq.heapify

EXPIRE_SWEEP_MAX = KV_EXPIRE_SWEEP_MAX
EXPIRE_HEAP_SLACK = KV_EXPIRE_HEAP_SLACK
EXPIRE_HEAP_MIN_REBUILD = KV_EXPIRE_HEAP_MIN_REBUILD


cdef inline uint64_t _u64(const unsigned char* p) noexcept:
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16)
            | (<uint64_t>p[3] << 24) | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40)
            | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))


cdef inline uint32_t _u32(const unsigned char* p) noexcept:
    return (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef inline void _put_u32(unsigned char* p, uint32_t v) noexcept:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline void _put_u64(unsigned char* p, uint64_t v) noexcept:
    _put_u32(p, <uint32_t>(v & 0xFFFFFFFF))
    _put_u32(p + 4, <uint32_t>(v >> 32))


def parse_records(bytes buf, Py_ssize_t pos, Py_ssize_t count, Py_ssize_t first_record,
                  Py_ssize_t key_bytes_max, Py_ssize_t value_bytes_max, dict data,
                  dict expires):
    """Decode up to `count` snapshot records (u32 key_len, u32 value_len, u64 expire_at_ns, key,
    value) from buf[pos:] into `data`/`expires`; stop before an incomplete record.

    Returns (position after the last whole record, records decoded). KVSnapshotError for a
    length above the limits or a key seen twice (record numbers start at first_record).
    """
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t done = 0, klen, vlen
    cdef uint64_t exp
    cdef bytes key
    while done < count and n - pos >= 16:
        klen = _u32(p + pos)
        vlen = _u32(p + pos + 4)
        exp = _u64(p + pos + 8)
        if klen > key_bytes_max or vlen > value_bytes_max:
            raise KVSnapshotError(
                f"kv snapshot record {first_record + done} has key {klen} B / value {vlen} B, "
                "above this store's limits: corrupted or a store with other limits"
            )
        if n - pos - 16 < klen + vlen:
            break
        key = PyBytes_FromStringAndSize(<const char*>p + pos + 16, klen)
        if key in data:
            raise KVSnapshotError(f"kv snapshot names key {key!r} twice: corrupted")
        data[key] = PyBytes_FromStringAndSize(<const char*>p + pos + 16 + klen, vlen)
        if exp:
            expires[key] = exp
        pos += 16 + klen + vlen
        done += 1
    return pos, done


cdef object _bad(str message):
    return KVCommandError(message)


cdef bint _redis_integer(bytes value) noexcept:
    """Redis's string2ll grammar: "0" or -?[1-9][0-9]{0,18} (range checked by the caller)."""
    cdef const char* s = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    cdef Py_ssize_t i = 0
    if n == 1 and s[0] == c'0':
        return True
    if n > 0 and s[0] == c'-':
        i = 1
    if i >= n or n - i > 19 or s[i] < c'1' or s[i] > c'9':
        return False
    while i < n:
        if s[i] < c'0' or s[i] > c'9':
            return False
        i += 1
    return True


cdef class KVCore:
    def __init__(self, Py_ssize_t key_bytes_max, Py_ssize_t value_bytes_max):
        self._data = {}
        self._expires = {}
        self._heap = []
        self.clock_ns = 0
        self.applied_index = 0
        self.key_bytes_max = key_bytes_max
        self.value_bytes_max = value_bytes_max

    def snapshot_records(self, Py_ssize_t chunk_bytes):
        """Every key as a snapshot record (see parse_records), in chunks of at least
        chunk_bytes (the last may be shorter); the records section of KVStore's snapshot."""
        cdef list out = []
        cdef Py_ssize_t cap = chunk_bytes + 4096, pos = 0, klen, vlen, need
        cdef unsigned char* buf
        cdef unsigned char* grown
        cdef object key, value, exp
        cdef dict expires = self._expires
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        buf = <unsigned char*>malloc(<size_t>cap)
        if buf == NULL:
            raise MemoryError("kv snapshot: out of memory")
        try:
            for key, value in self._data.items():
                klen = PyBytes_GET_SIZE(key)
                vlen = PyBytes_GET_SIZE(value)
                need = 16 + klen + vlen
                if pos + need > cap:
                    cap = pos + need + chunk_bytes
                    grown = <unsigned char*>realloc(buf, <size_t>cap)
                    if grown == NULL:
                        raise MemoryError("kv snapshot: out of memory")
                    buf = grown
                exp = expires.get(key) if expires else None
                _put_u32(buf + pos, <uint32_t>klen)
                _put_u32(buf + pos + 4, <uint32_t>vlen)
                _put_u64(buf + pos + 8, 0 if exp is None else <uint64_t>exp)
                memcpy(buf + pos + 16, PyBytes_AS_STRING(key), <size_t>klen)
                memcpy(buf + pos + 16 + klen, PyBytes_AS_STRING(value), <size_t>vlen)
                pos += need
                if pos >= chunk_bytes:
                    out.append(PyBytes_FromStringAndSize(<const char*>buf, pos))
                    pos = 0
            if pos:
                out.append(PyBytes_FromStringAndSize(<const char*>buf, pos))
        finally:
            free(buf)
        return out

    def prefix_scan(self, bytes prefix, uint64_t clock_ns):
        """Every live key (expire_at_ns > clock_ns or no TTL) that starts with `prefix`, in
        dict order: the O(n) part of KVStore.keys, in C."""
        cdef list out = []
        cdef const char* pre = PyBytes_AS_STRING(prefix)
        cdef Py_ssize_t plen = PyBytes_GET_SIZE(prefix)
        cdef dict expires = self._expires
        cdef object key, exp
        for key in self._data:
            if PyBytes_GET_SIZE(key) < plen or memcmp(PyBytes_AS_STRING(key), pre, <size_t>plen):
                continue
            if expires:
                exp = expires.get(key)
                if exp is not None and <uint64_t>exp <= clock_ns:
                    continue
            out.append(key)
        return out

    def apply(self, index, data):
        """Apply one encoded command; return its result (errors are returned, not raised).

        SET -> True/False (written or not: NX/XX), or the old value (bytes | None) with GET;
        DEL -> how many keys existed; CAS -> True/False; INCRBY -> the new int, or KVValueError;
        anything malformed or above the size limits -> KVCommandError.
        """
        cdef const unsigned char* p
        cdef Py_ssize_t n
        self.applied_index = index
        if type(data) is not bytes:
            data = bytes(data)
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        if n == 0:
            return _bad("empty kv command")
        if p[0] == KV_OP_SET:
            return self._set(p, n)
        if p[0] == KV_OP_INCRBY:
            return self._incrby(p, n)
        if p[0] == KV_OP_DEL:
            return self._delete(p, n)
        if p[0] == KV_OP_CAS:
            return self._cas(p, n)
        return _bad(f"unknown kv write opcode {p[0]}; this build knows 1-4")

    cdef object _live(self, bytes key):
        cdef object value = self._data.get(key)
        cdef object exp
        if value is not None and self._expires:
            exp = self._expires.get(key)
            if exp is not None and <uint64_t>exp <= self.clock_ns:
                return None
        return value

    cdef int _set_ttl(self, bytes key, uint64_t exp, bint keep, bint was_live) except -1:
        cdef list heap
        if exp:
            self._expires[key] = exp
            _heappush(self._heap, (exp, key))
            if len(self._heap) > (KV_EXPIRE_HEAP_SLACK * len(self._expires)
                                  + KV_EXPIRE_HEAP_MIN_REBUILD):
                heap = [(t, k) for k, t in self._expires.items()]
                _heapify(heap)
                self._heap = heap
        elif not (keep and was_live) and self._expires:
            self._expires.pop(key, None)
        return 0

    cdef int _after_write(self) except -1:
        """Remove up to KV_EXPIRE_SWEEP_MAX expired keys (stale heap entries are skipped)."""
        cdef list heap = self._heap
        cdef int i
        cdef object exp, key
        for i in range(KV_EXPIRE_SWEEP_MAX):
            if not heap or <uint64_t>heap[0][0] > self.clock_ns:
                return 0
            exp, key = _heappop(heap)
            if self._expires.get(key) == exp:
                del self._expires[key]
                del self._data[key]
        return 0

    cdef object _set(self, const unsigned char* p, Py_ssize_t n):
        cdef int flags
        cdef uint64_t now, exp
        cdef Py_ssize_t klen, end
        cdef bytes key, value
        cdef object old
        cdef bint written
        if n < KV_SET_HEAD:
            return _bad(f"SET command truncated: {n} bytes, the header needs {KV_SET_HEAD}")
        flags = p[1]
        now = _u64(p + 2)
        exp = _u64(p + 10)
        klen = _u32(p + 18)
        if klen > n - KV_SET_HEAD or flags & ~15 or (flags & 3) == 3:
            return _bad(f"SET command malformed (flags {flags:#x}, key_len {klen}, {n} B)")
        end = KV_SET_HEAD + klen
        if klen > self.key_bytes_max or n - end > self.value_bytes_max:
            return _bad(
                f"SET key {klen} B / value {n - end} B above the limits "
                f"({self.key_bytes_max} / {self.value_bytes_max})"
            )
        key = PyBytes_FromStringAndSize(<const char*>p + KV_SET_HEAD, klen)
        value = PyBytes_FromStringAndSize(<const char*>p + end, n - end)
        if now > self.clock_ns:
            self.clock_ns = now
        if flags == 0 and exp == 0:
            self._data[key] = value
            if self._expires:
                self._expires.pop(key, None)
                self._after_write()
            return True
        old = self._live(key)
        if (flags & KV_FLAG_NX and old is not None) or (flags & KV_FLAG_XX and old is None):
            written = False
        else:
            self._data[key] = value
            self._set_ttl(key, exp, flags & KV_FLAG_KEEPTTL, old is not None)
            written = True
        self._after_write()
        if flags & KV_FLAG_GET:
            return old
        return written

    cdef object _delete(self, const unsigned char* p, Py_ssize_t n):
        cdef uint64_t now
        cdef uint32_t count, i
        cdef Py_ssize_t off = KV_DEL_HEAD
        cdef Py_ssize_t klen
        cdef list keys = []
        cdef bytes key
        cdef long removed = 0
        if n < KV_DEL_HEAD:
            return _bad("DEL command truncated")
        now = _u64(p + 1)
        count = _u32(p + 9)
        if count < 1 or count > KV_KEYS_PER_COMMAND_MAX:
            return _bad(f"DEL names {count} keys, outside 1..{KV_KEYS_PER_COMMAND_MAX}")
        for i in range(count):
            if off + 4 > n:
                return _bad(f"command truncated: key length at offset {off} is cut off")
            klen = _u32(p + off)
            off += 4
            if klen > n - off:
                return _bad(
                    f"command truncated: a key of {klen} bytes at offset {off} runs past the "
                    f"end ({n} bytes)"
                )
            keys.append(PyBytes_FromStringAndSize(<const char*>p + off, klen))
            off += klen
        if off != n:
            return _bad(f"command has {n - off} trailing bytes after {count} keys")
        if now > self.clock_ns:
            self.clock_ns = now
        for key in keys:
            if key in self._data:
                if self._live(key) is not None:
                    removed += 1
                del self._data[key]
                if self._expires:
                    self._expires.pop(key, None)
        self._after_write()
        return removed

    cdef object _cas(self, const unsigned char* p, Py_ssize_t n):
        cdef int flags
        cdef uint64_t now, exp
        cdef Py_ssize_t klen, elen, start = KV_CAS_HEAD
        cdef bytes key
        cdef object current
        cdef bint match
        if n < KV_CAS_HEAD:
            return _bad("CAS command truncated")
        flags = p[1]
        now = _u64(p + 2)
        exp = _u64(p + 10)
        klen = _u32(p + 18)
        elen = _u32(p + 22)
        if (klen > n - start or elen > n - start - klen or flags & ~9
                or (flags & KV_FLAG_EXPECT_ABSENT and elen)):
            return _bad(f"CAS command malformed (flags {flags:#x}, key_len {klen})")
        if (klen > self.key_bytes_max or elen > self.value_bytes_max
                or n - start - klen - elen > self.value_bytes_max):
            return _bad("CAS key or value above the store's size limits")
        key = PyBytes_FromStringAndSize(<const char*>p + start, klen)
        if now > self.clock_ns:
            self.clock_ns = now
        current = self._live(key)
        if flags & KV_FLAG_EXPECT_ABSENT:
            match = current is None
        else:
            match = current is not None and current == PyBytes_FromStringAndSize(
                <const char*>p + start + klen, elen)
        if match:
            self._data[key] = PyBytes_FromStringAndSize(
                <const char*>p + start + klen + elen, n - start - klen - elen)
            self._set_ttl(key, exp, flags & KV_FLAG_KEEPTTL, current is not None)
        self._after_write()
        return match

    cdef object _incrby(self, const unsigned char* p, Py_ssize_t n):
        cdef uint64_t now
        cdef int64_t delta
        cdef Py_ssize_t klen
        cdef bytes key
        cdef object current, value
        cdef bint was_live
        if n < KV_INCR_HEAD:
            return _bad("INCRBY command truncated")
        now = _u64(p + 1)
        delta = <int64_t>_u64(p + 9)
        klen = _u32(p + 17)
        if klen != n - KV_INCR_HEAD or klen > self.key_bytes_max:
            return _bad(f"INCRBY key length {klen} does not fit the command ({n} B) or limits")
        key = PyBytes_FromStringAndSize(<const char*>p + KV_INCR_HEAD, klen)
        if now > self.clock_ns:
            self.clock_ns = now
        current = self._live(key)
        if current is None:
            value = delta
            was_live = False
        else:
            if not _redis_integer(current):
                return KVValueError("ERR value is not an integer or out of range")
            value = int(current)
            if not -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
                return KVValueError("ERR value is not an integer or out of range")
            value = value + delta
            if not -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
                return KVValueError("ERR increment or decrement would overflow")
            was_live = True
        self._data[key] = b"%d" % value
        # INCR keeps a live key's TTL (as Redis does); a missing or expired key starts without.
        self._set_ttl(key, 0, True, was_live)
        self._after_write()
        return value
