/* haperf_crc32c.h: CRC32C (Castagnoli, reflected polynomial 0x82F63B78), header-only C.
 *
 * Owns: the lookup tables, the run-time choice between the SSE4.2 `crc32` instruction and the
 * portable slicing-by-8 code, CRC combination, and the minimal instruction-throughput loop that
 * the benchmark uses as its floor.
 *
 * Invariants:
 * - Every public function takes and returns a *finished* CRC (pre- and post-inverted, the
 *   convention of zlib.crc32 and of the crc32c/google-crc32c packages), so
 *   extend(extend(0, a), b) == extend(0, a || b).
 * - haperf_crc32c_init() must run before the first extend/combine. It is idempotent and is
 *   called from each module's import (under the GIL, so there is no race); the nogil paths
 *   never initialise anything.
 * - The hardware and portable paths return identical results for every input (tested).
 *
 * Every module that includes this gets its own copy of the tables (10 KiB); that keeps
 * modules independent of each other's import order at the cost of a few KiB.
 */
#ifndef HAPERF_CRC32C_H
#define HAPERF_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "haperf_config.h"

#define HAPERF_CRC32C_POLY 0x82F63B78u

/* Lane lengths of the three-way interleaved hardware loop. The `crc32` instruction has a
 * latency of 3 cycles and a throughput of one per cycle on current x86 cores, so three
 * independent streams keep the unit busy; the streams are then merged with a table-driven
 * multiplication by x^(8 * lane) mod P. Long lanes amortise the merge over 24 KiB, short lanes
 * let inputs from 768 bytes up use the interleaving too. */
#define HAPERF_CRC32C_LANE_LONG 8192u
#define HAPERF_CRC32C_LANE_SHORT 256u

#if defined(__x86_64__) || defined(_M_X64)
#define HAPERF_CRC32C_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#include <nmmintrin.h>
#define HAPERF_TARGET_SSE42
#else
#include <nmmintrin.h>
#define HAPERF_TARGET_SSE42 __attribute__((target("sse4.2")))
#endif
#else
#define HAPERF_CRC32C_X86 0
#endif

typedef uint32_t (*haperf_crc32c_run_fn)(uint32_t reg, const unsigned char *p, size_t n);

static uint32_t haperf_crc32c_t8[8][256];
static uint32_t haperf_crc32c_shift_long[4][256];
static uint32_t haperf_crc32c_shift_short[4][256];
/* haperf_crc32c_x2k[k] = x^(8 * 2^k) mod P, for combining CRCs of any length. */
static uint32_t haperf_crc32c_x2k[64];
static haperf_crc32c_run_fn haperf_crc32c_run = NULL;
static int haperf_crc32c_hw = 0;

/* ---- GF(2) arithmetic modulo P, in the reflected representation (bit 31 = x^0) ---- */

static inline uint32_t haperf_crc32c_times_x(uint32_t a) {
    /* Multiplying by x moves every coefficient one bit to the right; x^31 (bit 0) becomes x^32,
     * which is reduced by adding P. */
    return (a >> 1) ^ (HAPERF_CRC32C_POLY & (0u - (a & 1u)));
}

static inline uint32_t haperf_crc32c_mulmod(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    int bit;
    /* Walk a's coefficients from x^0 (bit 31) upwards while b is multiplied by x in step. */
    for (bit = 31; bit >= 0; bit--) {
        if ((a >> bit) & 1u) {
            product ^= b;
        }
        b = haperf_crc32c_times_x(b);
    }
    return product;
}

/* x^(8 * n_bytes) mod P, by the binary expansion of n_bytes over the precomputed powers. */
static inline uint32_t haperf_crc32c_xpow8(uint64_t n_bytes) {
    uint32_t result = 0x80000000u; /* the polynomial 1 */
    int k = 0;
    while (n_bytes != 0) {
        if (n_bytes & 1u) {
            result = haperf_crc32c_mulmod(result, haperf_crc32c_x2k[k]);
        }
        n_bytes >>= 1;
        k++;
    }
    return result;
}

static inline uint32_t haperf_crc32c_shift(uint32_t table[4][256], uint32_t reg) {
    return table[0][reg & 0xffu] ^ table[1][(reg >> 8) & 0xffu] ^
           table[2][(reg >> 16) & 0xffu] ^ table[3][reg >> 24];
}

static inline void haperf_crc32c_fill_shift(uint32_t table[4][256], uint32_t xpow) {
    /* Multiplication by a fixed polynomial is linear, so the product of a 32-bit register is the
     * XOR of the products of its four bytes, each looked up in its own table. */
    int k, b;
    for (k = 0; k < 4; k++) {
        for (b = 0; b < 256; b++) {
            table[k][b] = haperf_crc32c_mulmod((uint32_t)b << (8 * k), xpow);
        }
    }
}

/* ---- unaligned little-endian loads ---- */

static inline uint32_t haperf_crc32c_le32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t haperf_crc32c_le64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* ---- portable path: slicing-by-8 ---- */

static uint32_t haperf_crc32c_run_portable(uint32_t reg, const unsigned char *p, size_t n) {
    while (n != 0 && ((uintptr_t)p & 7u) != 0) {
        reg = (reg >> 8) ^ haperf_crc32c_t8[0][(reg ^ *p++) & 0xffu];
        n--;
    }
    while (n >= 8) {
        uint32_t lo = reg ^ haperf_crc32c_le32(p);
        uint32_t hi = haperf_crc32c_le32(p + 4);
        reg = haperf_crc32c_t8[7][lo & 0xffu] ^ haperf_crc32c_t8[6][(lo >> 8) & 0xffu] ^
              haperf_crc32c_t8[5][(lo >> 16) & 0xffu] ^ haperf_crc32c_t8[4][lo >> 24] ^
              haperf_crc32c_t8[3][hi & 0xffu] ^ haperf_crc32c_t8[2][(hi >> 8) & 0xffu] ^
              haperf_crc32c_t8[1][(hi >> 16) & 0xffu] ^ haperf_crc32c_t8[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n != 0) {
        reg = (reg >> 8) ^ haperf_crc32c_t8[0][(reg ^ *p++) & 0xffu];
        n--;
    }
    return reg;
}

/* ---- hardware path: SSE4.2 crc32, three interleaved lanes ---- */

#if HAPERF_CRC32C_X86

HAPERF_TARGET_SSE42 static inline uint32_t haperf_crc32c_lanes3(
    uint32_t reg, const unsigned char **pp, size_t *np, size_t lane, uint32_t table[4][256]) {
    const unsigned char *p = *pp;
    size_t n = *np;
    while (n >= 3 * lane) {
        uint64_t c0 = reg, c1 = 0, c2 = 0;
        const unsigned char *end = p + lane;
        do {
            c0 = _mm_crc32_u64(c0, haperf_crc32c_le64(p));
            c1 = _mm_crc32_u64(c1, haperf_crc32c_le64(p + lane));
            c2 = _mm_crc32_u64(c2, haperf_crc32c_le64(p + 2 * lane));
            p += 8;
        } while (p < end);
        /* Lane 0 ran from the incoming register, lanes 1 and 2 from zero: shifting each partial
         * result past the lane that follows it and adding gives the register of the whole
         * block (the CRC register update is linear in register and data). */
        reg = haperf_crc32c_shift(table, (uint32_t)c0) ^ (uint32_t)c1;
        reg = haperf_crc32c_shift(table, reg) ^ (uint32_t)c2;
        p += 2 * lane;
        n -= 3 * lane;
    }
    *pp = p;
    *np = n;
    return reg;
}

HAPERF_TARGET_SSE42 static uint32_t haperf_crc32c_run_sse42(
    uint32_t reg, const unsigned char *p, size_t n) {
    uint64_t c;
    while (n != 0 && ((uintptr_t)p & 7u) != 0) {
        reg = _mm_crc32_u8(reg, *p++);
        n--;
    }
    if (n >= 3 * HAPERF_CRC32C_LANE_SHORT) {
        reg = haperf_crc32c_lanes3(reg, &p, &n, HAPERF_CRC32C_LANE_LONG, haperf_crc32c_shift_long);
        reg = haperf_crc32c_lanes3(reg, &p, &n, HAPERF_CRC32C_LANE_SHORT,
                                   haperf_crc32c_shift_short);
    }
    c = reg;
    while (n >= 8) {
        c = _mm_crc32_u64(c, haperf_crc32c_le64(p));
        p += 8;
        n -= 8;
    }
    reg = (uint32_t)c;
    while (n != 0) {
        reg = _mm_crc32_u8(reg, *p++);
        n--;
    }
    return reg;
}

/* The throughput floor: K independent streams of back-to-back `crc32` instructions over the
 * buffer, with no alignment prologue, no tail and no merge. It is not a CRC of anything; it is
 * the fastest this core can feed the instruction from memory, which bounds any CRC32C built
 * on it. Returns the XOR of the streams so the compiler cannot drop the work. */
#define HAPERF_CRC32C_LIMIT_FN(K)                                                              \
    HAPERF_TARGET_SSE42 static uint64_t haperf_crc32c_limit##K(const unsigned char *p,         \
                                                              size_t n) {                      \
        uint64_t c[K] = {0};                                                                   \
        size_t lane = (n / (K * 8u)) * 8u, i;                                                  \
        int j;                                                                                 \
        for (i = 0; i < lane; i += 8) {                                                        \
            for (j = 0; j < K; j++) {                                                          \
                c[j] = _mm_crc32_u64(c[j], haperf_crc32c_le64(p + (size_t)j * lane + i));      \
            }                                                                                  \
        }                                                                                      \
        for (j = 1; j < K; j++) {                                                              \
            c[0] ^= c[j];                                                                      \
        }                                                                                      \
        return c[0];                                                                           \
    }
HAPERF_CRC32C_LIMIT_FN(1)
HAPERF_CRC32C_LIMIT_FN(3)
HAPERF_CRC32C_LIMIT_FN(4)

static int haperf_crc32c_cpu_has_sse42(void) {
#if defined(_MSC_VER) && !defined(__clang__)
    int info[4];
    __cpuid(info, 1);
    return (info[2] >> 20) & 1;
#else
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

#endif /* HAPERF_CRC32C_X86 */

/* Runs the instruction-throughput floor with 1, 3 or 4 streams; returns 0 for other counts or
 * when the CPU has no crc32 instruction (callers check haperf_crc32c_hardware() first). */
static inline uint64_t haperf_crc32c_limit(const unsigned char *p, size_t n, int streams) {
#if HAPERF_CRC32C_X86
    if (haperf_crc32c_hw) {
        switch (streams) {
        case 1: return haperf_crc32c_limit1(p, n);
        case 3: return haperf_crc32c_limit3(p, n);
        case 4: return haperf_crc32c_limit4(p, n);
        default: break;
        }
    }
#else
    (void)p;
    (void)n;
    (void)streams;
#endif
    return 0;
}

/* ---- initialisation and the public entry points ---- */

static inline void haperf_crc32c_init(void) {
    int i, k;
    uint32_t xk;
    if (haperf_crc32c_run != NULL) {
        return;
    }
    for (i = 0; i < 256; i++) {
        uint32_t c = (uint32_t)i;
        for (k = 0; k < 8; k++) {
            c = haperf_crc32c_times_x(c);
        }
        haperf_crc32c_t8[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        for (k = 1; k < 8; k++) {
            uint32_t prev = haperf_crc32c_t8[k - 1][i];
            haperf_crc32c_t8[k][i] = (prev >> 8) ^ haperf_crc32c_t8[0][prev & 0xffu];
        }
    }
    xk = 0x00800000u; /* x^8 */
    for (k = 0; k < 64; k++) {
        haperf_crc32c_x2k[k] = xk;
        xk = haperf_crc32c_mulmod(xk, xk);
    }
    haperf_crc32c_fill_shift(haperf_crc32c_shift_long, haperf_crc32c_xpow8(HAPERF_CRC32C_LANE_LONG));
    haperf_crc32c_fill_shift(haperf_crc32c_shift_short,
                             haperf_crc32c_xpow8(HAPERF_CRC32C_LANE_SHORT));
#if HAPERF_CRC32C_X86
    haperf_crc32c_hw = haperf_crc32c_cpu_has_sse42();
    haperf_crc32c_run = haperf_crc32c_hw ? haperf_crc32c_run_sse42 : haperf_crc32c_run_portable;
#else
    haperf_crc32c_run = haperf_crc32c_run_portable;
#endif
}

/* 1 when the run-time dispatch chose the crc32 instruction. */
static inline int haperf_crc32c_hardware(void) {
    return haperf_crc32c_hw;
}

static inline uint32_t haperf_crc32c_extend(uint32_t crc, const void *data, size_t n) {
    return ~haperf_crc32c_run(~crc, (const unsigned char *)data, n);
}

static inline uint32_t haperf_crc32c_extend_portable(uint32_t crc, const void *data, size_t n) {
    return ~haperf_crc32c_run_portable(~crc, (const unsigned char *)data, n);
}

#if HAPERF_CRC32C_X86
static inline uint32_t haperf_crc32c_extend_sse42(uint32_t crc, const void *data, size_t n) {
    return ~haperf_crc32c_run_sse42(~crc, (const unsigned char *)data, n);
}
#else
static inline uint32_t haperf_crc32c_extend_sse42(uint32_t crc, const void *data, size_t n) {
    /* Unreachable: callers check haperf_crc32c_hardware(), which is 0 off x86. */
    return haperf_crc32c_extend_portable(crc, data, n);
}
#endif

/* Path ids for forcing one implementation (tests and benchmarks). */
#define HAPERF_CRC32C_PATH_AUTO 0
#define HAPERF_CRC32C_PATH_PORTABLE 1
#define HAPERF_CRC32C_PATH_SSE42 2
#define HAPERF_CRC32C_PATH_PCLMUL 3
#define HAPERF_CRC32C_PATH_VPCLMUL 4

static inline int haperf_crc32c_path_available(int path) {
    switch (path) {
    case HAPERF_CRC32C_PATH_AUTO:
    case HAPERF_CRC32C_PATH_PORTABLE: return 1;
    case HAPERF_CRC32C_PATH_SSE42: return haperf_crc32c_hw;
    default: return 0;
    }
}

static inline const char *haperf_crc32c_backend_name(void) {
    return haperf_crc32c_hw ? "sse4.2" : "slicing-by-8";
}

/* Runs the given path; callers check haperf_crc32c_path_available() first. */
static inline uint32_t haperf_crc32c_extend_path(int path, uint32_t crc, const void *data,
                                                 size_t n) {
    switch (path) {
    case HAPERF_CRC32C_PATH_PORTABLE: return haperf_crc32c_extend_portable(crc, data, n);
    case HAPERF_CRC32C_PATH_SSE42: return haperf_crc32c_extend_sse42(crc, data, n);
    default: return haperf_crc32c_extend(crc, data, n);
    }
}

/* CRC of A || B from crc(A), crc(B) and len(B). The pre/post inversions cancel out, so the
 * finished values combine like raw registers. */
static inline uint32_t haperf_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return haperf_crc32c_mulmod(crc_a, haperf_crc32c_xpow8(len_b)) ^ crc_b;
}

#endif /* HAPERF_CRC32C_H */
