"""Contract of haperf._native.crc32c, and its cimport-able inline API.

Other native modules (the WAL, the wire codec) checksum bytes with:

    from haperf._native cimport crc32c as _crc
    _crc.crc32c_init()                       # once, at module import (under the GIL)
    crc = _crc.crc32c_extend(crc, ptr, n)    # nogil, noexcept; finished-CRC convention

Invariants: crc32c_init() runs before the first extend or combine (it is idempotent); the
functions below never raise, never allocate and never touch the GIL. crc32c_extend runs the path
chosen at init (AVX-512 VPCLMULQDQ, PCLMULQDQ, SSE4.2 or slicing-by-8; see haperf_crc32c.h);
haperf_crc32c_extend_path forces one by its HAPERF_CRC32C_PATH_* id, for tests and benchmarks.
"""

from libc.stdint cimport uint32_t, uint64_t


cdef extern from "haperf_crc32c.h" nogil:
    void haperf_crc32c_init() noexcept
    int haperf_crc32c_hardware() noexcept
    uint32_t haperf_crc32c_extend(uint32_t crc, const void* data, size_t n) noexcept
    uint32_t haperf_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) noexcept
    uint64_t haperf_crc32c_limit(const unsigned char* p, size_t n, int streams) noexcept
    int haperf_crc32c_path_available(int path) noexcept
    const char* haperf_crc32c_backend_name() noexcept
    uint32_t haperf_crc32c_extend_path(int path, uint32_t crc, const void* data, size_t n) noexcept
    enum:
        HAPERF_CRC32C_PATH_AUTO
        HAPERF_CRC32C_PATH_PORTABLE
        HAPERF_CRC32C_PATH_SSE42
        HAPERF_CRC32C_PATH_PCLMUL
        HAPERF_CRC32C_PATH_AVX512


cdef inline void crc32c_init() noexcept nogil:
    haperf_crc32c_init()


cdef inline uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) noexcept nogil:
    """CRC32C of `n` bytes at `data`, continuing from the finished CRC `crc` (0 to start)."""
    return haperf_crc32c_extend(crc, data, n)


cdef inline uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) noexcept nogil:
    """CRC32C of A || B, given crc32c(A), crc32c(B) and len(B)."""
    return haperf_crc32c_combine(crc_a, crc_b, len_b)
