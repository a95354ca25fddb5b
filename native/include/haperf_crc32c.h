/* haperf_crc32c.h: CRC32C (Castagnoli, reflected polynomial 0x82F63B78), header-only C.
 *
 * Owns: the lookup tables and folding constants, the run-time choice between four paths, CRC
 * combination, and the minimal instruction-throughput loop that the benchmark uses as its
 * floor. The paths, fastest first (haperf_crc32c_backend_name() says which one was chosen):
 * - "avx512-vpclmulqdq": carry-less multiplication folding on 512-bit registers (AVX-512F/VL/BW
 *   and VPCLMULQDQ), four accumulators of 64 bytes each, for inputs of at least
 *   HAPERF_CRC32C_AVX512_MIN bytes. It is not limited by the `crc32` instruction's one-per-cycle
 *   throughput, so it runs well past the SSE4.2 ceiling of 8 bytes per cycle.
 * - "pclmulqdq": the same folding on 128-bit registers (PCLMULQDQ + SSE4.1/4.2) for x86-64 CPUs
 *   without usable AVX-512, for inputs of at least HAPERF_CRC32C_PCLMUL_MIN bytes. It is about
 *   as fast as the `crc32` instruction on long inputs (one multiplier issue per cycle) and wins
 *   on short ones; the AVX-512 path also uses it below HAPERF_CRC32C_AVX512_MIN bytes.
 * - "sse4.2": three interleaved `crc32` instruction lanes merged by table-driven
 *   multiplication. Every hardware path hands short inputs and short tails to this code.
 * - "slicing-by-8": portable tables, for every other CPU and platform.
 * The folding follows the method of Gopal et al., "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ Instruction" (Intel, 2009); the constants are derived at init time from the
 * GF(2) helpers below (see haperf_crc32c_fold_pair), not copied from anywhere.
 *
 * Invariants:
 * - Every public function takes and returns a *finished* CRC (pre- and post-inverted, the
 *   convention of zlib.crc32 and of the crc32c/google-crc32c packages), so
 *   extend(extend(0, a), b) == extend(0, a || b).
 * - haperf_crc32c_init() must run before the first extend/combine. It is idempotent and is
 *   called from each module's import (under the GIL, so there is no race); the nogil paths
 *   never initialise anything.
 * - All paths return identical results for every input, alignment and initial CRC (tested),
 *   and none of them reads a byte outside [data, data + n), not even within the same page.
 *
 * Every module that includes this gets its own copy of the tables (20 KiB: 8 KiB of
 * slicing-by-8 and three 4 KiB lane-merge tables, plus 256 bytes of folding constants); that
 * keeps modules independent of each other's import order at the cost of a few KiB.
 */
#ifndef HAPERF_CRC32C_H
#define HAPERF_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "haperf_config.h"

#define HAPERF_CRC32C_POLY 0x82F63B78u

/* Lane lengths of the three-way interleaved `crc32` loop. The instruction has a latency of 3
 * cycles and a throughput of one per cycle on current x86 cores, so three independent streams
 * keep the unit busy; the streams are then merged with a table-driven multiplication by
 * x^(8 * lane) mod P. Long lanes amortise the merge over 24 KiB, short lanes let inputs from
 * 768 bytes up use the interleaving too, and tiny lanes (192-byte blocks) mop up what the short
 * lanes leave, so that no more than 191 bytes ever run as a single latency-bound stream (a
 * 4 KiB input used to end in a 256-byte single stream that cost a quarter of its time). */
#define HAPERF_CRC32C_LANE_LONG 8192u
#define HAPERF_CRC32C_LANE_SHORT 256u
#define HAPERF_CRC32C_LANE_TINY 64u

/* Smallest inputs handed to each folding path. Below 64 bytes the single `crc32` stream needs
 * no set-up and wins; from 64 bytes the 128-bit folding beats it (5.5 against 6.7 ns at 64
 * bytes on an AVX-512 Xeon), and from 256 bytes the 512-bit folding beats the 128-bit one (8.6
 * against 10.3 ns at 256 bytes; 9.7 against 9.5 ns at 224). From AVX512_ALIGN_MIN bytes on the
 * 512-bit path aligns its loads rather than avoiding a tail (4 KiB at an odd address: 39.8
 * against 42.4 ns; 64 KiB: 552 against 747 ns). All measured with bench_crc.c; they may be
 * overridden with -D for tuning, but never below 64: the folding code loads 64 bytes first. */
#ifndef HAPERF_CRC32C_PCLMUL_MIN
#define HAPERF_CRC32C_PCLMUL_MIN 64u
#endif
#ifndef HAPERF_CRC32C_AVX512_MIN
#define HAPERF_CRC32C_AVX512_MIN 256u
#endif
#ifndef HAPERF_CRC32C_AVX512_ALIGN_MIN
#define HAPERF_CRC32C_AVX512_ALIGN_MIN 4096u
#endif
#if HAPERF_CRC32C_PCLMUL_MIN < 64 || HAPERF_CRC32C_AVX512_MIN < 64 || \
    HAPERF_CRC32C_AVX512_ALIGN_MIN < 64
#error "haperf_crc32c.h: the folding thresholds must be at least 64 bytes"
#endif

/* Path ids for haperf_crc32c_extend_path() and haperf_crc32c_path_available(). */
#define HAPERF_CRC32C_PATH_AUTO 0
#define HAPERF_CRC32C_PATH_PORTABLE 1
#define HAPERF_CRC32C_PATH_SSE42 2
#define HAPERF_CRC32C_PATH_PCLMUL 3
#define HAPERF_CRC32C_PATH_AVX512 4
#define HAPERF_CRC32C_PATH_COUNT 5

#if defined(__x86_64__) || defined(_M_X64)
#define HAPERF_CRC32C_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
/* MSVC exposes every intrinsic without per-function target attributes; the dispatch below
 * still guarantees that a function only runs on a CPU (and OS) that supports it. */
#include <intrin.h>
#include <immintrin.h>
#define HAPERF_TARGET_SSE42
#define HAPERF_TARGET_PCLMUL
#define HAPERF_TARGET_AVX512
#else
#include <cpuid.h>
#include <immintrin.h>
#define HAPERF_TARGET_SSE42 __attribute__((target("sse4.2")))
#define HAPERF_TARGET_PCLMUL __attribute__((target("sse4.2,pclmul")))
#define HAPERF_TARGET_AVX512 \
    __attribute__((target("sse4.2,pclmul,avx512f,avx512vl,avx512bw,vpclmulqdq")))
#endif
#else
#define HAPERF_CRC32C_X86 0
#endif

typedef uint32_t (*haperf_crc32c_run_fn)(uint32_t reg, const unsigned char *p, size_t n);

static uint32_t haperf_crc32c_t8[8][256];
static uint32_t haperf_crc32c_shift_long[4][256];
static uint32_t haperf_crc32c_shift_short[4][256];
static uint32_t haperf_crc32c_shift_tiny[4][256];
/* haperf_crc32c_x2k[k] = x^(8 * 2^k) mod P, for combining CRCs of any length. */
static uint32_t haperf_crc32c_x2k[64];
static haperf_crc32c_run_fn haperf_crc32c_run = NULL;
static int haperf_crc32c_hw = 0;
/* The chosen path id and, by id, whether this CPU and OS can run each path. */
static int haperf_crc32c_path = HAPERF_CRC32C_PATH_PORTABLE;
static int haperf_crc32c_avail[HAPERF_CRC32C_PATH_COUNT];

/* Folding constants, one pair per fold distance; see haperf_crc32c_fold_pair for what each
 * number is. k16[d - 1] moves a 128-bit block by 16 * d bytes and k64[d - 1] by 64 * d bytes
 * (d = 1..6); klanes collapses a 512-bit accumulator into its top 128 bits: lanes 0, 1 and 2
 * move by 48, 32 and 16 bytes and lane 3, whose pair is zero, stays. */
static uint64_t haperf_crc32c_k16[6][2];
static uint64_t haperf_crc32c_k64[6][2];
static uint64_t haperf_crc32c_klanes[4][2];

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

/* x^e mod P for any bit count e: whole bytes through xpow8, the last e mod 8 bits one by one. */
static inline uint32_t haperf_crc32c_xpow_bits(uint64_t e) {
    uint32_t result = haperf_crc32c_xpow8(e >> 3);
    unsigned i;
    for (i = 0; i < (unsigned)(e & 7u); i++) {
        result = haperf_crc32c_times_x(result);
    }
    return result;
}

/* The folding constants for moving a 128-bit accumulator forward by d bytes.
 *
 * A 128-bit little-endian load holds 16 message bytes; in the reflected order its bit i is the
 * coefficient of x^(127 - i), counted from the end of those 16 bytes. Its low quadword H holds
 * the first 8 bytes and its high quadword L the last 8, so the block is H * x^64 + L. Moving it
 * d bytes later in the message multiplies it by x^(8d), and modulo P it is enough to have
 *     H * x^(8d + 64) + L * x^(8d)
 * with each power replaced by its 32-bit remainder: the two products have at most 96 bits and
 * fit the 128-bit result of one carry-less multiplication each, so they can be added to the
 * block that sits d bytes further on.
 *
 * A 32-bit reflected remainder r placed in the low half of a quadword stands for r * x^32 (its
 * bit i is the coefficient of x^(63 - i)), and PCLMULQDQ of two reflected quadwords yields the
 * reflected product times x (the product's x^0 lands in bit 126, one short of bit 127). So a
 * constant stored that way contributes x^33 on top of its own value, and the two constants are
 *     pair[0] = x^(8d + 64 - 33) mod P = x^(8d + 31) mod P, reflected, multiplies H,
 *     pair[1] = x^(8d - 33) mod P, reflected, multiplies L,
 * for example d = 64 (one 512-bit register) uses x^543 and x^479. */
static inline void haperf_crc32c_fold_pair(uint64_t pair[2], unsigned d) {
    pair[0] = haperf_crc32c_xpow_bits(8u * (uint64_t)d + 31u);
    pair[1] = haperf_crc32c_xpow_bits(8u * (uint64_t)d - 33u);
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

static inline uint16_t haperf_crc32c_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
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

/* A single latency-bound stream for short inputs and tails: 8 bytes per instruction, then at
 * most one 4-, 2- and 1-byte step, so a tail never costs more than three extra instructions.
 * x86 loads need no alignment, and the one-per-3-cycles dependency chain leaves the load ports
 * idle anyway, so there is no alignment prologue. */
HAPERF_TARGET_SSE42 static inline uint32_t haperf_crc32c_stream1(
    uint32_t reg, const unsigned char *p, size_t n) {
    uint64_t c = reg;
    while (n >= 8) {
        c = _mm_crc32_u64(c, haperf_crc32c_le64(p));
        p += 8;
        n -= 8;
    }
    reg = (uint32_t)c;
    if (n & 4u) {
        reg = _mm_crc32_u32(reg, haperf_crc32c_le32(p));
        p += 4;
    }
    if (n & 2u) {
        reg = _mm_crc32_u16(reg, haperf_crc32c_le16(p));
        p += 2;
    }
    if (n & 1u) {
        reg = _mm_crc32_u8(reg, *p);
    }
    return reg;
}

HAPERF_TARGET_SSE42 static uint32_t haperf_crc32c_run_sse42(
    uint32_t reg, const unsigned char *p, size_t n) {
    if (n >= 3 * HAPERF_CRC32C_LANE_TINY) {
        /* The interleaved loop issues one load per instruction; keeping them 8-byte aligned
         * avoids cache-line splits in the throughput-bound part. */
        while (n != 0 && ((uintptr_t)p & 7u) != 0) {
            reg = _mm_crc32_u8(reg, *p++);
            n--;
        }
        reg = haperf_crc32c_lanes3(reg, &p, &n, HAPERF_CRC32C_LANE_LONG, haperf_crc32c_shift_long);
        reg = haperf_crc32c_lanes3(reg, &p, &n, HAPERF_CRC32C_LANE_SHORT,
                                   haperf_crc32c_shift_short);
        reg = haperf_crc32c_lanes3(reg, &p, &n, HAPERF_CRC32C_LANE_TINY,
                                   haperf_crc32c_shift_tiny);
    }
    return haperf_crc32c_stream1(reg, p, n);
}

/* ---- hardware path: PCLMULQDQ folding on 128-bit registers ---- */

/* Moves the 128-bit accumulator x forward by the distance that k was made for (see
 * haperf_crc32c_fold_pair) and adds the 16 message bytes found there. */
HAPERF_TARGET_PCLMUL static inline __m128i haperf_crc32c_fold128(__m128i x, __m128i k,
                                                                 __m128i data) {
    __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
    __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), data);
}

HAPERF_TARGET_PCLMUL static inline __m128i haperf_crc32c_load128(const unsigned char *p) {
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* x moved forward by d 16-byte blocks (1 <= d <= 6), with nothing added. */
HAPERF_TARGET_PCLMUL static inline __m128i haperf_crc32c_fold128_by(__m128i x, unsigned d) {
    __m128i k = _mm_loadu_si128((const __m128i *)(const void *)haperf_crc32c_k16[d - 1]);
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* acc + last, where last is the 16-byte block just before p, moved on past the j (0..3)
 * blocks at p, plus those blocks each moved to the position of the final one. Every fold is
 * independent of the others, so this costs one multiplier latency whatever j is. */
HAPERF_TARGET_PCLMUL static inline __m128i haperf_crc32c_last_blocks128(
    __m128i acc, __m128i last, const unsigned char *p, unsigned j) {
    unsigned i;
    if (j == 0) {
        return _mm_xor_si128(acc, last);
    }
    acc = _mm_xor_si128(acc, haperf_crc32c_fold128_by(last, j));
    for (i = 1; i < j; i++) {
        acc = _mm_xor_si128(acc, haperf_crc32c_fold128_by(haperf_crc32c_load128(p), j - i));
        p += 16;
    }
    return _mm_xor_si128(acc, haperf_crc32c_load128(p));
}

/* The register of 16 bytes whose polynomial is x, starting from a zero register: feeding the
 * accumulator to the `crc32` instruction as if it were data performs the final reduction
 * modulo P (H * x^96 + L * x^32 = (H * x^64 + L) * x^32), with no Barrett constants. */
HAPERF_TARGET_PCLMUL static inline uint32_t haperf_crc32c_reduce128(__m128i x) {
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    return (uint32_t)_mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
}

HAPERF_TARGET_PCLMUL static uint32_t haperf_crc32c_run_pclmul(
    uint32_t reg, const unsigned char *p, size_t n) {
    __m128i x0, x1, x2, x3, k;
    unsigned j;
    /* Below one 64-byte round the single `crc32` stream needs no set-up and wins. */
    if (n < HAPERF_CRC32C_PCLMUL_MIN) {
        return haperf_crc32c_stream1(reg, p, n);
    }
    /* The incoming register is added to the first four message bytes: both are multiplied by
     * the same x^(8n - 32) on the way to the end of the message. */
    x0 = _mm_xor_si128(haperf_crc32c_load128(p), _mm_cvtsi32_si128((int)reg));
    x1 = haperf_crc32c_load128(p + 16);
    x2 = haperf_crc32c_load128(p + 32);
    x3 = haperf_crc32c_load128(p + 48);
    p += 64;
    n -= 64;
    /* Four independent accumulators hide the multiplier latency (several cycles against one
     * issue per cycle): each iteration moves all four 64 bytes on. */
    k = _mm_loadu_si128((const __m128i *)(const void *)haperf_crc32c_k64[0]);
    while (n >= 64) {
        x0 = haperf_crc32c_fold128(x0, k, haperf_crc32c_load128(p));
        x1 = haperf_crc32c_fold128(x1, k, haperf_crc32c_load128(p + 16));
        x2 = haperf_crc32c_fold128(x2, k, haperf_crc32c_load128(p + 32));
        x3 = haperf_crc32c_fold128(x3, k, haperf_crc32c_load128(p + 48));
        p += 64;
        n -= 64;
    }
    /* Collapse the four accumulators and the up to three whole 16-byte blocks left, each moved
     * straight to the position of the last block; a tail of under 16 bytes goes to `crc32`. */
    j = (unsigned)(n >> 4);
    x0 = _mm_xor_si128(_mm_xor_si128(haperf_crc32c_fold128_by(x0, 3 + j),
                                     haperf_crc32c_fold128_by(x1, 2 + j)),
                       haperf_crc32c_fold128_by(x2, 1 + j));
    x0 = haperf_crc32c_last_blocks128(x0, x3, p, j);
    p += (size_t)j * 16u;
    n -= (size_t)j * 16u;
    return haperf_crc32c_stream1(haperf_crc32c_reduce128(x0), p, n);
}

/* ---- hardware path: VPCLMULQDQ folding on 512-bit registers ---- */

/* Four 128-bit folds at once: every 128-bit lane of x moves forward by the distance k was made
 * for (k holds one constant pair per lane) and the 64 bytes found there are added in. */
HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_fold512(__m512i x, __m512i k,
                                                                 __m512i data) {
    __m512i lo = _mm512_clmulepi64_epi128(x, k, 0x00);
    __m512i hi = _mm512_clmulepi64_epi128(x, k, 0x11);
    return _mm512_ternarylogic_epi64(lo, hi, data, 0x96); /* lo ^ hi ^ data */
}

/* The pair that moves a 128-bit block by 64 * (index + 1) bytes, in all four lanes. */
HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_kbcast(unsigned index) {
    return _mm512_broadcast_i32x4(
        _mm_loadu_si128((const __m128i *)(const void *)haperf_crc32c_k64[index]));
}

HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_load512(const unsigned char *p) {
    return _mm512_loadu_si512((const void *)p);
}

/* x moved forward by d whole 64-byte blocks (1 <= d <= 6), with nothing added. */
HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_fold512_by(__m512i x, unsigned d) {
    __m512i k = haperf_crc32c_kbcast(d - 1);
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00),
                            _mm512_clmulepi64_epi128(x, k, 0x11));
}

/* acc + last, where last is the block just before p, moved on past the j (0..3) whole blocks
 * at p, plus those blocks each moved to the position of the final one. */
HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_last_blocks512(
    __m512i acc, __m512i last, const unsigned char *p, unsigned j) {
    unsigned i;
    if (j == 0) {
        return _mm512_xor_si512(acc, last);
    }
    acc = _mm512_xor_si512(acc, haperf_crc32c_fold512_by(last, j));
    for (i = 1; i < j; i++) {
        acc = _mm512_xor_si512(acc, haperf_crc32c_fold512_by(haperf_crc32c_load512(p), j - i));
        p += 64;
    }
    return _mm512_xor_si512(acc, haperf_crc32c_load512(p));
}

/* Loads the first h (4 <= h <= 63) message bytes into the top h bytes of a 512-bit register
 * with zeros below, and adds the incoming register to the first four of them. Leading zero
 * bytes do not change a raw (uninverted) polynomial, so a partial first block needs nothing
 * else. The load is a byte-masked load from the 64-byte line that ends at p + h: the masked-off
 * bytes before p are architecturally not read (AVX-512 suppresses faults on masked-off
 * elements), so nothing outside [p, p + n) is touched. The address is formed through uintptr_t
 * because pointer arithmetic before the start of an object is undefined in C. */
HAPERF_TARGET_AVX512 static inline __m512i haperf_crc32c_head512(uint32_t reg,
                                                                 const unsigned char *p,
                                                                 unsigned h) {
    unsigned o = 64u - h;                  /* byte offset of the first message byte, <= 60 */
    unsigned q = o >> 3, s = (o & 7u) * 8u; /* its quadword and bit position */
    __m512i data = _mm512_maskz_loadu_epi8((__mmask64)(~0ull << o),
                                           (const void *)((uintptr_t)p - o));
    __m512i c = _mm512_maskz_set1_epi64((__mmask8)(1u << q), (long long)((uint64_t)reg << s));
    if (s > 32u) {
        /* The register straddles two quadwords; q <= 6 here because o <= 60. */
        c = _mm512_mask_set1_epi64(c, (__mmask8)(2u << q), (long long)((uint64_t)reg >> (64u - s)));
    }
    return _mm512_xor_si512(data, c);
}

HAPERF_TARGET_AVX512 static uint32_t haperf_crc32c_run_avx512(
    uint32_t reg, const unsigned char *p, size_t n) {
    __m512i x0, k;
    __m128i y;
    unsigned h, j;
    /* Short inputs go to the 128-bit code: its 16-byte granularity leaves less for the
     * masked head or the `crc32` tail, and its collapse is cheaper than the 512-bit one. */
    if (n < HAPERF_CRC32C_AVX512_MIN) {
        return haperf_crc32c_run_pclmul(reg, p, n);
    }
    /* The first block may be partial (h bytes). Short inputs take h = n mod 64, so that the
     * blocks end exactly at the end of the input and no tail is left; long inputs take the h
     * that makes every later load 64-byte aligned (a load that splits a cache line costs a
     * second load-port slot, about 25% of the throughput here), and fold their short tail
     * below. A head of 1-3 bytes is not worth the masked load: the `crc32` instruction eats
     * it in at most two steps. */
    h = n >= HAPERF_CRC32C_AVX512_ALIGN_MIN ? (unsigned)(0u - (uintptr_t)p) & 63u
                                            : (unsigned)n & 63u;
    if (h < 4u) {
        if (h != 0) {
            reg = haperf_crc32c_stream1(reg, p, h);
            p += h;
            n -= h;
        }
        x0 = _mm512_xor_si512(haperf_crc32c_load512(p),
                              _mm512_inserti32x4(_mm512_setzero_si512(),
                                                 _mm_cvtsi32_si128((int)reg), 0));
        p += 64;
        n -= 64;
    } else {
        x0 = haperf_crc32c_head512(reg, p, h);
        p += h;
        n -= h;
    }
    if (n >= 192) {
        /* Four independent 64-byte accumulators, 256 bytes per iteration: the multiplier's
         * latency (several cycles) is covered by the other three chains. */
        __m512i x1 = haperf_crc32c_load512(p);
        __m512i x2 = haperf_crc32c_load512(p + 64);
        __m512i x3 = haperf_crc32c_load512(p + 128);
        p += 192;
        n -= 192;
        k = haperf_crc32c_kbcast(3);
        while (n >= 256) {
            x0 = haperf_crc32c_fold512(x0, k, haperf_crc32c_load512(p));
            x1 = haperf_crc32c_fold512(x1, k, haperf_crc32c_load512(p + 64));
            x2 = haperf_crc32c_fold512(x2, k, haperf_crc32c_load512(p + 128));
            x3 = haperf_crc32c_fold512(x3, k, haperf_crc32c_load512(p + 192));
            p += 256;
            n -= 256;
        }
        /* Up to three whole blocks are left. Every accumulator and every leftover block moves
         * straight to the position of the last block, so all the folds are independent and
         * the whole collapse costs one multiplier latency. */
        j = (unsigned)(n >> 6);
        x0 = _mm512_ternarylogic_epi64(haperf_crc32c_fold512_by(x0, 3 + j),
                                       haperf_crc32c_fold512_by(x1, 2 + j),
                                       haperf_crc32c_fold512_by(x2, 1 + j), 0x96);
        x0 = haperf_crc32c_last_blocks512(x0, x3, p, j);
    } else {
        /* At most two whole blocks follow the first; the same independent collapse. */
        j = (unsigned)(n >> 6);
        x0 = haperf_crc32c_last_blocks512(_mm512_setzero_si512(), x0, p, j);
    }
    p += (size_t)j * 64u;
    n -= (size_t)j * 64u;
    /* Collapse the four lanes into lane 3: lanes 0-2 move by 48, 32 and 16 bytes in one pair of
     * multiplications (lane 3's constants are zero), and lane 3 itself is added unchanged. */
    x0 = haperf_crc32c_fold512(
        x0, _mm512_loadu_si512((const void *)haperf_crc32c_klanes),
        _mm512_maskz_mov_epi64(0xC0, x0));
    y = _mm_xor_si128(_mm_xor_si128(_mm512_castsi512_si128(x0), _mm512_extracti32x4_epi32(x0, 1)),
                      _mm_xor_si128(_mm512_extracti32x4_epi32(x0, 2),
                                    _mm512_extracti32x4_epi32(x0, 3)));
    /* Only the aligned mode has a tail: whole 16-byte blocks as in the 128-bit path, then
     * `crc32` for the last few bytes. */
    j = (unsigned)(n >> 4);
    y = haperf_crc32c_last_blocks128(_mm_setzero_si128(), y, p, j);
    p += (size_t)j * 16u;
    n -= (size_t)j * 16u;
    return haperf_crc32c_stream1(haperf_crc32c_reduce128(y), p, n);
}

/* The throughput floor: K independent streams of back-to-back `crc32` instructions over the
 * buffer, with no alignment prologue, no tail and no merge. It is not a CRC of anything; it is
 * the fastest this core can feed the instruction from memory, which bounds any CRC32C built
 * on it (the folding paths are not built on it, and beat it). Returns the XOR of the streams so
 * the compiler cannot drop the work. */
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

/* Which x86 paths this CPU *and* operating system can run. The folding paths need the OS to
 * save the wider register state on context switches: XCR0 bits 1-2 (SSE, AVX) for any VEX
 * encoding and bits 5-7 (opmask, upper ZMM0-15, ZMM16-31) for AVX-512. GCC's
 * __builtin_cpu_supports already folds XCR0 into "avx512f" and "vpclmulqdq" (libgcc's
 * get_available_features), but other compilers' runtimes have not always done so, hence the
 * explicit XGETBV, which is only legal when CPUID reports OSXSAVE. */
static void haperf_crc32c_cpu_paths(int avail[HAPERF_CRC32C_PATH_COUNT]) {
    int sse42, pclmul, avx512, osxsave;
    uint64_t xcr0 = 0;
#if defined(_MSC_VER) && !defined(__clang__)
    int info1[4], info7[4] = {0, 0, 0, 0};
    __cpuid(info1, 1);
    __cpuid(info7, 0);
    if (info7[0] >= 7) {
        __cpuidex(info7, 7, 0);
    } else {
        info7[0] = info7[1] = info7[2] = info7[3] = 0;
    }
    sse42 = (info1[2] >> 20) & 1;
    /* PCLMULQDQ (bit 1) and SSE4.1 (bit 19) of leaf 1 ECX. */
    pclmul = ((info1[2] >> 1) & 1) && ((info1[2] >> 19) & 1);
    osxsave = (info1[2] >> 27) & 1;
    /* AVX512F (EBX bit 16), AVX512BW (EBX bit 30), AVX512VL (EBX bit 31) and VPCLMULQDQ
     * (ECX bit 10) of leaf 7. */
    avx512 = ((info7[1] >> 16) & 1) && ((info7[1] >> 30) & 1) && ((info7[1] >> 31) & 1) &&
             ((info7[2] >> 10) & 1);
    if (osxsave) {
        xcr0 = (uint64_t)_xgetbv(0);
    }
#else
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    __builtin_cpu_init();
    sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    pclmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("vpclmulqdq");
    osxsave = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && ((ecx >> 27) & 1u);
    if (osxsave) {
        unsigned int lo, hi;
        /* XGETBV with ECX = 0, spelled as bytes so no "xsave" target attribute is needed. */
        __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
#endif
    if (!osxsave || (xcr0 & 0xE6u) != 0xE6u) {
        avx512 = 0;
    }
    avail[HAPERF_CRC32C_PATH_AUTO] = 1;
    avail[HAPERF_CRC32C_PATH_PORTABLE] = 1;
    avail[HAPERF_CRC32C_PATH_SSE42] = sse42;
    /* Both folding paths finish with the `crc32` instruction, so they also need SSE4.2. */
    avail[HAPERF_CRC32C_PATH_PCLMUL] = sse42 && pclmul;
    avail[HAPERF_CRC32C_PATH_AVX512] = sse42 && pclmul && avx512;
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

/* The run function of each path id; NULL where the platform has no such code. */
static inline haperf_crc32c_run_fn haperf_crc32c_path_fn(int path) {
    switch (path) {
    case HAPERF_CRC32C_PATH_PORTABLE: return haperf_crc32c_run_portable;
#if HAPERF_CRC32C_X86
    case HAPERF_CRC32C_PATH_SSE42: return haperf_crc32c_run_sse42;
    case HAPERF_CRC32C_PATH_PCLMUL: return haperf_crc32c_run_pclmul;
    case HAPERF_CRC32C_PATH_AVX512: return haperf_crc32c_run_avx512;
#endif
    default: return NULL;
    }
}

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
    haperf_crc32c_fill_shift(haperf_crc32c_shift_tiny, haperf_crc32c_xpow8(HAPERF_CRC32C_LANE_TINY));
    for (k = 1; k <= 6; k++) {
        haperf_crc32c_fold_pair(haperf_crc32c_k16[k - 1], 16u * (unsigned)k);
        haperf_crc32c_fold_pair(haperf_crc32c_k64[k - 1], 64u * (unsigned)k);
    }
    for (k = 0; k < 3; k++) {
        haperf_crc32c_fold_pair(haperf_crc32c_klanes[k], 48u - 16u * (unsigned)k);
    }
    haperf_crc32c_klanes[3][0] = 0;
    haperf_crc32c_klanes[3][1] = 0;
#if HAPERF_CRC32C_X86
    haperf_crc32c_cpu_paths(haperf_crc32c_avail);
    haperf_crc32c_path = haperf_crc32c_avail[HAPERF_CRC32C_PATH_AVX512]   ? HAPERF_CRC32C_PATH_AVX512
                         : haperf_crc32c_avail[HAPERF_CRC32C_PATH_PCLMUL] ? HAPERF_CRC32C_PATH_PCLMUL
                         : haperf_crc32c_avail[HAPERF_CRC32C_PATH_SSE42]  ? HAPERF_CRC32C_PATH_SSE42
                                                                          : HAPERF_CRC32C_PATH_PORTABLE;
    haperf_crc32c_hw = haperf_crc32c_path != HAPERF_CRC32C_PATH_PORTABLE;
#else
    haperf_crc32c_avail[HAPERF_CRC32C_PATH_AUTO] = 1;
    haperf_crc32c_avail[HAPERF_CRC32C_PATH_PORTABLE] = 1;
    haperf_crc32c_path = HAPERF_CRC32C_PATH_PORTABLE;
#endif
    haperf_crc32c_run = haperf_crc32c_path_fn(haperf_crc32c_path);
}

/* 1 when the run-time dispatch chose any x86 hardware path (all of them use the crc32
 * instruction, so this also means SSE4.2 is present). */
static inline int haperf_crc32c_hardware(void) {
    return haperf_crc32c_hw;
}

/* The path the dispatch chose: "avx512-vpclmulqdq", "pclmulqdq", "sse4.2" or "slicing-by-8". */
static inline const char *haperf_crc32c_backend_name(void) {
    switch (haperf_crc32c_path) {
    case HAPERF_CRC32C_PATH_AVX512: return "avx512-vpclmulqdq";
    case HAPERF_CRC32C_PATH_PCLMUL: return "pclmulqdq";
    case HAPERF_CRC32C_PATH_SSE42: return "sse4.2";
    default: return "slicing-by-8";
    }
}

/* 1 when haperf_crc32c_extend_path(path, ...) really runs that path on this machine: always for
 * 0 (auto) and 1 (portable), per CPU and OS for 2 (sse4.2), 3 (pclmulqdq) and
 * 4 (avx512-vpclmulqdq), and 0 for any other id. Valid after haperf_crc32c_init(). */
static inline int haperf_crc32c_path_available(int path) {
    if (path < 0 || path >= HAPERF_CRC32C_PATH_COUNT) {
        return 0;
    }
    return haperf_crc32c_avail[path];
}

static inline uint32_t haperf_crc32c_extend(uint32_t crc, const void *data, size_t n) {
    return ~haperf_crc32c_run(~crc, (const unsigned char *)data, n);
}

/* extend() forced onto one path, for tests and benchmarks: 0 = auto, 1 = portable
 * slicing-by-8, 2 = sse4.2, 3 = pclmulqdq, 4 = avx512-vpclmulqdq. An id that is unknown or not
 * available here (see haperf_crc32c_path_available) runs the automatic choice instead, so the
 * result is always right and never an illegal instruction. */
static inline uint32_t haperf_crc32c_extend_path(int path, uint32_t crc, const void *data,
                                                 size_t n) {
    haperf_crc32c_run_fn fn = haperf_crc32c_run;
    if (haperf_crc32c_path_available(path) && path != HAPERF_CRC32C_PATH_AUTO) {
        fn = haperf_crc32c_path_fn(path);
    }
    return ~fn(~crc, (const unsigned char *)data, n);
}

/* CRC of A || B from crc(A), crc(B) and len(B). The pre/post inversions cancel out, so the
 * finished values combine like raw registers. */
static inline uint32_t haperf_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return haperf_crc32c_mulmod(crc_a, haperf_crc32c_xpow8(len_b)) ^ crc_b;
}

#endif /* HAPERF_CRC32C_H */
