/* haperf_phi.h: exact sliding-window moments and the phi formulas of the phi-accrual detector.
 *
 * Owns the arithmetic shared by haperf._native.phi's single detector and its DetectorBank, so
 * both compute bit-identical results from the same inputs:
 *   - an unsigned 128-bit integer (two 64-bit words, portable; the compiler's __int128 when it
 *     has one) for the window's sum of squared intervals;
 *   - haperf_phi_window_push: put one interval (int64 ns, 0..HAPERF_PHI_INTERVAL_NS_MAX) into a
 *     ring buffer and update the integer sum and sum of squares exactly (add the new, subtract
 *     the evicted), so the sums never drift however many heartbeats pass;
 *   - haperf_phi_moments: mean and standard deviation recomputed from the exact integer sums
 *     (variance numerator n*sum_sq - sum^2 is formed exactly in 128 bits, one rounding at the end);
 *   - haperf_phi_eval: phi for the normal (Akka's logistic approximation), exponential (Cassandra)
 *     and hybrid (normal body mixed with an exponential pause tail) models.
 * Invariants: intervals in a window are in [0, HAPERF_PHI_INTERVAL_NS_MAX] and the window holds at
 * most HAPERF_PHI_WINDOW_MAX of them, so sum < 2^57 and n^2 * max^2 < 2^112: no overflow anywhere.
 * haperf_phi_eval never returns NaN, is >= 0, finite, and non-decreasing in dt_ns for fixed
 * moments (proved per branch in docs/failure-detection.md).
 */
#ifndef HAPERF_PHI_H
#define HAPERF_PHI_H

#include <math.h>
#include <stdint.h>

#define HAPERF_PHI_INTERVAL_NS_MAX ((int64_t)1 << 40) /* about 18.3 minutes */
#define HAPERF_PHI_WINDOW_MAX 65536
#define HAPERF_PHI_LOG10E 0.43429448190325182765

#define HAPERF_PHI_NORMAL 0
#define HAPERF_PHI_EXPONENTIAL 1
#define HAPERF_PHI_HYBRID 2

/* Hint that *p will be written soon (a no-op where the compiler has no prefetch builtin). */
#if defined(__GNUC__) || defined(__clang__)
#define haperf_phi_prefetch_write(p) __builtin_prefetch((p), 1, 1)
#else
#define haperf_phi_prefetch_write(p) ((void)(p))
#endif

typedef struct {
    uint64_t lo;
    uint64_t hi;
} haperf_u128;

static inline haperf_u128 haperf_u128_mul64(uint64_t a, uint64_t b) {
    haperf_u128 r;
#if defined(__SIZEOF_INT128__)
    unsigned __int128 p = (unsigned __int128)a * b;
    r.lo = (uint64_t)p;
    r.hi = (uint64_t)(p >> 64);
#else
    uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    r.lo = (mid << 32) | (p00 & 0xFFFFFFFFu);
    r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
    return r;
}

static inline haperf_u128 haperf_u128_add(haperf_u128 a, haperf_u128 b) {
    haperf_u128 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo);
    return r;
}

static inline haperf_u128 haperf_u128_sub(haperf_u128 a, haperf_u128 b) {
    haperf_u128 r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo);
    return r;
}

/* a * b for a < 2^112 and b <= 2^16 (the callers' bounds), so the product fits in 128 bits. */
static inline haperf_u128 haperf_u128_mul_small(haperf_u128 a, uint64_t b) {
    haperf_u128 r = haperf_u128_mul64(a.lo, b);
    r.hi += a.hi * b;
    return r;
}

static inline double haperf_u128_to_double(haperf_u128 a) {
    return (double)a.hi * 18446744073709551616.0 + (double)a.lo;
}

/* Push `interval` into the ring; evict the oldest when full. Exact integer bookkeeping. */
static inline void haperf_phi_window_push(int64_t *ring, int32_t window, int32_t *head,
                                          int32_t *count, int64_t *sum, haperf_u128 *sum_sq,
                                          int64_t interval) {
    int32_t h = *head;
    if (*count == window) {
        int64_t old = ring[h];
        *sum -= old;
        *sum_sq = haperf_u128_sub(*sum_sq, haperf_u128_mul64((uint64_t)old, (uint64_t)old));
    } else {
        *count += 1;
    }
    ring[h] = interval;
    *sum += interval;
    *sum_sq = haperf_u128_add(*sum_sq, haperf_u128_mul64((uint64_t)interval, (uint64_t)interval));
    h += 1;
    *head = (h == window) ? 0 : h;
}

/* Mean and population standard deviation of the window, from its exact sums (count >= 1). */
static inline void haperf_phi_moments(int32_t count, int64_t sum, haperf_u128 sum_sq,
                                      double *mean, double *sd) {
    double n = (double)count;
    haperf_u128 n_sq = haperf_u128_mul_small(sum_sq, (uint64_t)count);
    haperf_u128 s2 = haperf_u128_mul64((uint64_t)sum, (uint64_t)sum);
    /* n * sum_sq >= sum^2 (Cauchy-Schwarz), so the difference is exact and non-negative. */
    double num = haperf_u128_to_double(haperf_u128_sub(n_sq, s2));
    *mean = (double)sum / n;
    *sd = sqrt(num / (n * n));
}

/* log10(1 + e^z), without overflow for large z. Beyond |z| > 37, e^-|z| < 2^-53, so
 * 1 + e^-|z| rounds to exactly 1 and its log to exactly 0: the early returns give bit-identical
 * results to the full formula and skip both transcendental calls (the common case in a bank).
 * For z < 0 the absolute error is below 1.2e-16 (1 + e^z is rounded before the log), which is
 * far below any meaningful phi. */
static inline double haperf_phi_softplus10(double z) {
    if (z > 37.0) {
        return z * HAPERF_PHI_LOG10E;
    }
    if (z < -37.0) {
        return 0.0;
    }
    if (z > 0.0) {
        return (z + log(1.0 + exp(-z))) * HAPERF_PHI_LOG10E;
    }
    return log(1.0 + exp(z)) * HAPERF_PHI_LOG10E;
}

/* Parameters shared by every node of a detector or bank (all in ns). */
typedef struct {
    int distribution;
    double acceptable_pause_ns;
    double min_sd_ns;
    double ln_tail_weight;      /* hybrid: ln(w) */
    double ln_body_weight;      /* hybrid: ln(1 - w) */
} haperf_phi_params;

/* phi after dt_ns (>= 0) without a heartbeat, given the window's mean and sd (raw, in ns). */
static inline double haperf_phi_eval(const haperf_phi_params *p, double dt_ns, double mean,
                                     double sd) {
    double mu = mean + p->acceptable_pause_ns;
    if (p->distribution == HAPERF_PHI_EXPONENTIAL) {
        /* Cassandra: P(no heartbeat for dt) = exp(-dt/mean), phi = dt / (mean ln 10). */
        double late = dt_ns - p->acceptable_pause_ns;
        double m = mean < 1.0 ? 1.0 : mean;
        return late > 0.0 ? late / m * HAPERF_PHI_LOG10E : 0.0;
    }
    double s = sd < p->min_sd_ns ? p->min_sd_ns : sd;
    double y = (dt_ns - mu) / s;
    /* Akka: F(y) ~ 1 / (1 + e^-z), z = y (1.5976 + 0.070566 y^2); phi = -log10(1 - F). */
    double z = y * (1.5976 + 0.070566 * y * y);
    if (p->distribution == HAPERF_PHI_NORMAL) {
        return haperf_phi_softplus10(z);
    }
    /* Hybrid: survival S = (1 - w) S_normal + w exp(-max(0, dt - mu) / mean), in logs. */
    double m = mean < 1.0 ? 1.0 : mean;
    double late = dt_ns - mu;
    double a = p->ln_body_weight - haperf_phi_softplus10(z) / HAPERF_PHI_LOG10E;
    double b = p->ln_tail_weight - (late > 0.0 ? late / m : 0.0);
    double hi = a > b ? a : b;
    double lo = a > b ? b : a;
    double ln_s = hi + log1p(exp(lo - hi));
    return ln_s < 0.0 ? -ln_s * HAPERF_PHI_LOG10E : 0.0;
}

#endif /* HAPERF_PHI_H */
