/* The reference's compiled kernels, called through ctypes by harness/kernel.py.
 *
 * NumPy's float64 exp is a scalar libm call on CPUs without AVX-512 (about 10 ns an element on
 * an AVX2 EPYC), and a row of softmax cross-entropy in NumPy takes five passes over memory. Here
 * exp is vectorised (expv below, within 0.7 ulps) and a row takes three passes: one over its
 * logits (maximum, argmax, minimum), one computing the exps into a scratch row that stays in
 * cache, and one writing the gradient from it with streaming stores. Every row is computed by the
 * same operations, alone, so the bits do not depend on how rows are split into chunks or threads.
 *
 * The code uses GCC's vector extensions, four doubles at a time: the x86-64-v3 clone runs them as
 * AVX2/FMA instructions, the baseline clone as pairs of SSE2 ones.
 *
 * The arithmetic follows harness/reference.py's formula: R = sum_{j != argmax} exp(x_j - m),
 * loss = log1p(R) - (x_y - m), gradient e_j / ((1 + R) N), the label's entry (e_y / (1 + R) - 1) / N
 * and the argmax's ((1 - q_a) - q_a R) / ((1 + R) N). R is summed with a compensated sum (sum4:
 * TwoSum's errors summed apart; all its terms are >= 0), within a few ulps of its exact value
 * whatever K is; the gradient's e_j / ((1 + R) N) is formed as e_j times the reciprocal, within
 * an ulp of the quotient.
 */

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h> /* streaming stores: x86-64's baseline has them */
#endif

/* one build runs the AVX2/FMA code where the CPU has it, the baseline code elsewhere */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8f __attribute__((vector_size(32)));

#define SPLAT(x) {x, x, x, x}
static const double INV_LN2 = 1.4426950408889634;
static const double LN2_HI = 0x1.62e42feep-1;         /* fdlibm's split of ln 2: kf * LN2_HI is exact */
static const double LN2_LO = 0x1.a39ef35793c76p-33;   /* for |kf| < 2^21 */
static const double SHIFT = 6755399441055744.0;        /* 1.5 * 2^52: adding it rounds to an integer */

/* exp(z) for z <= 0 of `nv` (1 to 4) vectors of four, statement by statement across the vectors:
 * one exp is a chain of some 60 cycles of dependent operations, and side by side the vectors'
 * chains keep the FMA units busy.
 * exp(z) = 2^kf exp(r): kf = round(z / ln 2), r + rl = z - kf ln 2 (|r| <= ln2 / 2; rl the rounding
 * error of r, from an FMA), exp(r) = 1 + q with q = r + (r^2 P(r) + rl), P of degree 10
 * interpolating (exp(r) - 1 - r) / r^2 at Chebyshev points of |r| <= 0.3466 (mpmath.chebyfit;
 * 1.4e-18 relative), and 2^kf by an integer add to the exponent field. Within 0.65 ulps of long
 * double's exp on 4.6 M points. No table: the previous version's lookup of 2^(j/4) by vpermd, with
 * a polynomial two degrees shorter, was slower in the same loop on a Zen 3 (1.13 against 0.93 ns
 * an element, in a micro-benchmark).
 * `full` takes any z <= 0, -inf and NaN, and scales subnormal results in two steps; without it z
 * must lie in [-700, 0]. For a normal result both give the same bits (scaling by a power of two is
 * exact there). */
static inline __attribute__((always_inline)) void expv(const v4d *zin, v4d *out, int nv, int full) {
    v4d z[4], t[4], kf[4], r[4], rl[4], p[4]; /* nv <= 4 */
    for (int i = 0; i < nv; i++) {
        z[i] = zin[i];
        if (full) { /* exp(-746) rounds to 0; NaN stays NaN */
            v4l lt = z[i] < -746.0;
            z[i] = (v4d)(((v4l)z[i] & ~lt) | ((v4l)(v4d)SPLAT(-746.0) & lt));
        }
    }
    for (int i = 0; i < nv; i++) t[i] = z[i] * INV_LN2 + SHIFT;
    for (int i = 0; i < nv; i++) kf[i] = t[i] - SHIFT;
    for (int i = 0; i < nv; i++) z[i] = z[i] - kf[i] * LN2_HI; /* exact */
    for (int i = 0; i < nv; i++) r[i] = z[i] - kf[i] * LN2_LO;
    for (int i = 0; i < nv; i++) rl[i] = (z[i] - r[i]) - kf[i] * LN2_LO;
    for (int i = 0; i < nv; i++) p[i] = r[i] * 0x1.1f72fc730b4ffp-29 + 0x1.af4ddd84882fep-26;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.27e4db67b4303p-22;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.71de02375656cp-19;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.a01a01a6d7808p-16;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.a01a01abe62ddp-13;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.6c16c16c162d6p-10;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.11111111100dfp-7;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.5555555555556p-5;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0x1.5555555555557p-3;
    for (int i = 0; i < nv; i++) p[i] = p[i] * r[i] + 0.5;
    for (int i = 0; i < nv; i++) {
        /* 1 + q with q = r + (r^2 P + rl): h = 1 + r and its exact rounding error (Fast2Sum, |r| < 1)
         * go in apart, so that only the last add rounds at the result's scale (0.84 ulps -> 0.65) */
        v4d h = 1.0 + r[i];
        v4d mant = h + (((r[i] * r[i]) * p[i] + rl[i]) + ((1.0 - h) + r[i]));
        /* the bits of t are SHIFT's plus kf (SHIFT's low 51 bits are 0): kf << 52 is them << 52 */
        v4l e52 = (v4l)t[i] << 52;
        if (!full) { /* z >= -700: mant 2^kf is normal, its exponent field adds */
            out[i] = (v4d)((v4l)mant + e52);
            continue;
        }
        v4l low = (v4l)(kf[i] < -1000.0); /* scale by 2^(kf + 600), then 2^-600 */
        v4d scale = (v4d)(e52 + (((low & 600) + 1023) << 52));
        v4d post = (v4d)(((v4l)(v4d)SPLAT(0x1p-600) & low) | ((v4l)(v4d)SPLAT(1.0) & ~low));
        out[i] = mant * scale * post;
    }
}

static inline __attribute__((always_inline)) v4d exp4(v4d z, int full) {
    v4d e;
    expv(&z, &e, 1, full);
    return e;
}

/* x[0:n] - m as doubles, four at a time; for n < 4 the lanes past n hold 0 (x = m) */
static inline v4d load4_f32(const float *x, int64_t n, v4d m) {
    v4d v;
    for (int l = 0; l < 4; l++) v[l] = l < n ? x[l] : m[0];
    return v - m;
}

static inline v4d load4_f64(const double *x, int64_t n) {
    v4d v = {0, 0, 0, 0};
    if (n >= 4) memcpy(&v, x, 32);
    else for (int64_t l = 0; l < n; l++) v[l] = x[l];
    return v;
}

static inline void store4(double *g, int64_t n, v4d v) {
    if (n >= 4) memcpy(g, &v, 32);
    else for (int64_t l = 0; l < n; l++) g[l] = v[l];
}

/* exp(z) for z <= 0 (NaN and -inf too), four at a time: the shorter exp4 where all four lie within
 * [-700, 0], with the same bits */
CLONES void xc_exp_nonpos(const double *restrict z, double *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i += 4) {
        v4d v = load4_f64(z + i, n - i);
        v4l in = v >= -700.0;
        store4(out + i, n - i, (in[0] & in[1] & in[2] & in[3]) ? exp4(v, 0) : exp4(v, 1));
    }
}

/* four lanes of compensated sums (Ogita, Rump and Oishi's Sum2): s + c is the running total of
 * each, c the sum of TwoSum's exact rounding errors. Unlike Kahan's, whose correction feeds the
 * next add (a loop-carried chain of four adds), the errors are summed apart: the chain is one add. */
typedef struct { v4d s, c; } sum4;

static inline void sum4_add(sum4 *k, v4d v) {
    v4d t = k->s + v, bp = t - k->s;
    k->c += (k->s - (t - bp)) + (v - bp);
    k->s = t;
}

/* exp(x_j - m) into g_j for j in [lo, hi), added into the compensated lanes `sum` a pair of
 * vectors at a time (the pair's sum first: its rounding is within u/2 of the terms, all >= 0);
 * `full` as for exp4. Sixteen at a time, four vectors' exps side by side (see expv). The same
 * columns of the `next` row's logits are fetched into cache meanwhile, so that the maximum pass
 * over that row reads cache rather than memory. */
static inline __attribute__((always_inline)) void exp_range(const float *restrict xr, double *restrict g, int64_t lo,
                                                            int64_t hi, v4d m, int full, sum4 *sum, const float *next) {
    sum4 k = *sum; /* a local, so that it stays in registers */
    int64_t j = lo;
    for (; j + 16 <= hi; j += 16) {
        if (next) __builtin_prefetch(next + j);
        v4d z[4], e[4];
        for (int i = 0; i < 4; i++) z[i] = load4_f32(xr + j + 4 * i, 4, m);
        expv(z, e, 4, full);
        for (int i = 0; i < 4; i++) store4(g + j + 4 * i, 4, e[i]);
        sum4_add(&k, e[0] + e[1]);
        sum4_add(&k, e[2] + e[3]);
    }
    for (; j + 8 <= hi; j += 8) {
        v4d z[2] = {load4_f32(xr + j, 4, m), load4_f32(xr + j + 4, 4, m)}, e[2];
        expv(z, e, 2, full);
        store4(g + j, 4, e[0]);
        store4(g + j + 4, 4, e[1]);
        sum4_add(&k, e[0] + e[1]);
    }
    for (; j < hi; j += 4) { /* the last 1 to 7: the lanes past hi hold exp(0) and are dropped */
        int64_t left = hi - j < 4 ? hi - j : 4;
        v4d e = exp4(load4_f32(xr + j, left, m), full);
        store4(g + j, left, e);
        sum4_add(&k, (v4d)((v4l)e & ((v4l){0, 1, 2, 3} < left)));
    }
    *sum = k;
}

/* the lanes in one compensated sum */
static inline double sum4_total(const sum4 *k) {
    double sum = 0.0, comp = 0.0;
    for (int l = 0; l < 4; l++) {
        double t = sum + k->s[l], bp = t - sum;
        comp += ((sum - (t - bp)) + (k->s[l] - bp)) + k->c[l];
        sum = t;
    }
    return sum + comp;
}

/* a row's maximum (NaN where it holds a NaN, as NumPy's argmax finds the first NaN), its first
 * argmax and its minimum, eight at a time */
static inline float row_stats(const float *xr, int64_t k, int64_t *argmax, float *minimum) {
    const float ninf = -INFINITY, inf = INFINITY;
    v8f mx = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf}, mn = {inf, inf, inf, inf, inf, inf, inf, inf};
    v8i at = {0, 0, 0, 0, 0, 0, 0, 0}, idx = {0, 1, 2, 3, 4, 5, 6, 7}, nan = at;
    int64_t j = 0;
    for (; j + 8 <= k && j < INT32_MAX - 8; j += 8, idx += 8) {
        v8f v;
        memcpy(&v, xr + j, 32);
        v8i gt = v > mx, lt = v < mn;
        mx = (v8f)(((v8i)v & gt) | ((v8i)mx & ~gt));
        at = (idx & gt) | (at & ~gt);
        mn = (v8f)(((v8i)v & lt) | ((v8i)mn & ~lt));
        nan |= v != v;
    }
    float m = ninf, lo = inf;
    int64_t a = -1;
    int any_nan = 0;
    for (int l = 0; l < 8; l++) { /* the lanes' first maxima: the smallest index among the largest */
        if (mx[l] > m || (mx[l] == m && at[l] < a)) {
            m = mx[l];
            a = at[l];
        }
        lo = mn[l] < lo ? mn[l] : lo;
        any_nan |= nan[l];
    }
    for (; j < k; j++) {
        if (xr[j] > m) {
            m = xr[j];
            a = j;
        }
        lo = xr[j] < lo ? xr[j] : lo;
        any_nan |= xr[j] != xr[j];
    }
    *argmax = a;
    *minimum = lo;
    return any_nan ? NAN : m;
}

/* g[0:k] = e[0:k] * inv, by streaming stores where there are any: they go past the caches (the
 * row is not read again here) and need not first fetch the lines they overwrite, a third less
 * memory traffic for a large gradient */
static inline void scale_out(const double *restrict e, double *restrict g, int64_t k, double inv) {
    int64_t j = 0;
#ifdef __SSE2__
    if (((uintptr_t)g & 15) != 0 && k > 0) {
        g[0] = e[0] * inv;
        j = 1;
    }
    __m128d f = _mm_set1_pd(inv);
    for (; j + 2 <= k; j += 2) _mm_stream_pd(g + j, _mm_mul_pd(_mm_loadu_pd(e + j), f));
    _mm_sfence(); /* the stores are weakly ordered: these before any that follow */
#endif
    for (; j < k; j++) g[j] = e[j] * inv;
}

/* Rows of softmax cross-entropy against class indices: float32 logits x (n x k, rows contiguous),
 * labels in [0, k), float64 gradient (n x k) and row losses (n), the gradient divided by `divisor`
 * (the mean's N; 1 otherwise); `scratch` holds k doubles (a row's exps, in cache until they are
 * scaled out into the gradient). A row with a NaN or +inf logit, or none finite, gets NaN throughout. */
CLONES void xc_index_rows_f32(const float *restrict x, const int64_t *restrict labels, int64_t n, int64_t k,
                              double divisor, double *restrict grad, double *restrict loss, double *restrict scratch) {
    double *restrict e = scratch;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * k;
        double *restrict g = grad + i * k;
        int64_t a;
        float lo;
        float m = row_stats(xr, k, &a, &lo);
        if (!isfinite(m)) {
            for (int64_t j = 0; j < k; j++) g[j] = NAN;
            loss[i] = NAN;
            continue;
        }
        double md = m;
        v4d mv = {md, md, md, md};
        const float *next = i + 1 < n ? xr + k : NULL;
        sum4 sum = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        /* every exp(x_j - m) but the argmax's; rows within 700 of their maximum (all results
         * normal) take the shorter exp, the same bits */
        if ((double)lo - md >= -700.0) {
            exp_range(xr, e, 0, a, mv, 0, &sum, next);
            exp_range(xr, e, a + 1, k, mv, 0, &sum, next);
        } else {
            exp_range(xr, e, 0, a, mv, 1, &sum, next);
            exp_range(xr, e, a + 1, k, mv, 1, &sum, next);
        }
        e[a] = 0.0;
        double r = sum4_total(&sum);
        double s = 1.0 + r, d = s * divisor;
        int64_t y = labels[i];
        scale_out(e, g, k, 1.0 / d);
        g[y] = (e[y] / s - 1.0) / divisor;
        double q_a = a == y ? 1.0 : 0.0;
        g[a] = ((1.0 - q_a) - q_a * r) / d;
        loss[i] = log1p(r) - ((double)xr[y] - md);
    }
}

/* A module object only so that the build tools treat this file as an extension; its functions are
 * reached through ctypes, which calls them without the GIL (threads run chunks side by side). */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_xent", "C kernels of xentcheck's reference (see harness/kernel.py).", -1, NULL};

PyMODINIT_FUNC PyInit__xent(void) { return PyModule_Create(&module); }
