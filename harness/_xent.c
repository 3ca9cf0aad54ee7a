/* The reference's compiled kernels, called through ctypes by harness/kernel.py.
 *
 * NumPy's float64 exp is a scalar libm call on CPUs without AVX-512 (about 10 ns an element on
 * an AVX2 EPYC), and a row of softmax cross-entropy in NumPy takes five passes over memory. Here
 * exp is vectorised (exp4 below, within 1.5 ulps) and a row takes three passes: one over its
 * logits (maximum, argmax, minimum), one computing the exps into a scratch row that stays in
 * cache, and one writing the gradient from it with streaming stores. Every row is computed by the
 * same operations, alone, so the bits do not depend on how rows are split into chunks or threads.
 *
 * The code uses GCC's vector extensions, four doubles at a time: the x86-64-v3 clone runs them as
 * AVX2/FMA instructions, the baseline clone as pairs of SSE2 ones.
 *
 * The arithmetic follows harness/reference.py's formula: R = sum_{j != argmax} exp(x_j - m),
 * loss = log1p(R) - (x_y - m), gradient e_j / ((1 + R) N), the label's entry (e_y / (1 + R) - 1) / N
 * and the argmax's ((1 - q_a) - q_a R) / ((1 + R) N). R is summed with Kahan's compensation (all
 * its terms are >= 0), so it is within a few ulps of its exact value whatever K is; the gradient's
 * e_j / ((1 + R) N) is formed as e_j times the reciprocal, within an ulp of the quotient.
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
static const double FOUR_INV_LN2 = 5.7707801635558535; /* 4 / ln 2 */
static const double LN2_4_HI = 0x1.62e42feep-3;       /* fdlibm's split of ln 2, over 4: kf * LN2_4_HI */
static const double LN2_4_LO = 0x1.a39ef35793c76p-35; /* is exact for |kf| < 2^21 */
static const double SHIFT = 6755399441055744.0;        /* 1.5 * 2^52: adding it rounds to an integer */
/* 2^(j/4) = TAB_HI[j] + TAB_LO[j] to about 2^-107 (mpmath) */
static const v4d TAB_HI = {1.0, 0x1.306fe0a31b715p+0, 0x1.6a09e667f3bcdp+0, 0x1.ae89f995ad3adp+0};
static const v4d TAB_LO = {0.0, 0x1.6f46ad23182e4p-55, -0x1.bdd3413b26456p-54, 0x1.7a1cd345dcc81p-54};

/* TAB_HI[j] and TAB_LO[j] for j = kf mod 4, the low bits of t (those of SHIFT are 0) */
static inline void table(v4d t, v4d *hi, v4d *lo) {
#if defined(__GNUC__) && !defined(__clang__)
    /* GCC: a vpermd of each table's words by the int32 pairs (2j, 2j + 1) */
    v8i idx = (__builtin_shuffle((v8i)t, (v8i){0, 0, 2, 2, 4, 4, 6, 6}) << 1) + (v8i){0, 1, 0, 1, 0, 1, 0, 1};
    *hi = (v4d)__builtin_shuffle((v8i)TAB_HI, idx);
    *lo = (v4d)__builtin_shuffle((v8i)TAB_LO, idx);
#else
    v4l j = (v4l)t & 3;
    for (int l = 0; l < 4; l++) {
        (*hi)[l] = TAB_HI[j[l]];
        (*lo)[l] = TAB_LO[j[l]];
    }
#endif
}

/* exp(z) = 2^e * 2^(j/4) * exp(r) for z <= 0, four at a time: kf = 4e + j = round(4 z / ln 2),
 * r = z - kf ln2 / 4 (|r| <= ln2 / 8), exp(r) = 1 + q with q = r + r^2 P(r), P of degree 6
 * interpolating (exp(r) - 1 - r) / r^2 at Chebyshev points of |r| <= 0.0867 (mpmath.chebyfit;
 * 1.3e-17 relative with these double coefficients), and 2^(j/4) (1 + q) = T_hi + (T_hi q + T_lo).
 * The table is looked up by a vpermd per word, not a gather (slow on AMD's cores).
 * `full` takes any z <= 0, -inf and NaN, and scales subnormal results in two steps; without it z
 * must lie in [-700, 0]. For a normal result both give the same bits (scaling by a power of two is
 * exact there). */
static inline __attribute__((always_inline)) v4d exp4(v4d z, int full) {
    if (full) { /* exp(-746) rounds to 0; NaN stays NaN */
        v4l lt = z < -746.0;
        z = (v4d)(((v4l)z & ~lt) | ((v4l)(v4d)SPLAT(-746.0) & lt));
    }
    v4d t = z * FOUR_INV_LN2 + SHIFT;
    v4d kf = t - SHIFT;
    v4d r = (z - kf * LN2_4_HI) - kf * LN2_4_LO;
    v4d p = r * 0x1.a02993afbe7fdp-16 + 0x1.a02d7845d07c4p-13;
    p = p * r + 0x1.6c16c130297bbp-10;
    p = p * r + 0x1.111110c6281f1p-7;
    p = p * r + 0x1.5555555555c8ap-5;
    p = p * r + 0x1.555555555675ap-3;
    p = p * r + 0.5;
    v4d q = (r * r) * p + r;
    v4d th, tl;
    table(t, &th, &tl);
    v4d mant = th + (th * q + tl);
    /* the bits of t are SHIFT's plus kf = 4e + j (SHIFT's low 14 bits are 0): e << 52 is them, less j, << 50 */
    v4l e52 = ((v4l)t & ~3LL) << 50;
    if (!full) return (v4d)((v4l)mant + e52); /* z >= -700: mant 2^e is normal, its exponent field adds */
    v4l low = (v4l)(kf < -4000.0); /* e < -1000: scale by 2^(e + 600), then 2^-600 */
    v4d scale = (v4d)(e52 + (((low & 600) + 1023) << 52));
    v4d post = (v4d)(((v4l)(v4d)SPLAT(0x1p-600) & low) | ((v4l)(v4d)SPLAT(1.0) & ~low));
    return mant * scale * post;
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

/* four lanes of Kahan-compensated sums: s + (-c) is the running total of each */
typedef struct { v4d s, c; } kahan4;

static inline void kahan_add(kahan4 *k, v4d v) {
    v4d y = v - k->c, t = k->s + y;
    k->c = (t - k->s) - y;
    k->s = t;
}

/* exp(x_j - m) into g_j for j in [lo, hi), added into the compensated lanes `sum` a pair of
 * vectors at a time (the pair's sum first: its rounding is within u/2 of the terms, all >= 0);
 * `full` as for exp4. The same columns of the `next` row's logits are fetched into cache
 * meanwhile, so that the maximum pass over that row reads cache rather than memory. */
static inline __attribute__((always_inline)) void exp_range(const float *restrict xr, double *restrict g, int64_t lo,
                                                            int64_t hi, v4d m, int full, kahan4 *sum, const float *next) {
    kahan4 k = *sum; /* a local, so that it stays in registers */
    int64_t j = lo;
    for (; j + 8 <= hi; j += 8) {
        if (next && (j & 15) == 0) __builtin_prefetch(next + j);
        v4d e0 = exp4(load4_f32(xr + j, 4, m), full), e1 = exp4(load4_f32(xr + j + 4, 4, m), full);
        store4(g + j, 4, e0);
        store4(g + j + 4, 4, e1);
        kahan_add(&k, e0 + e1);
    }
    for (; j < hi; j += 4) { /* the last 1 to 7: the lanes past hi hold exp(0) and are dropped */
        int64_t left = hi - j < 4 ? hi - j : 4;
        v4d e = exp4(load4_f32(xr + j, left, m), full);
        store4(g + j, left, e);
        kahan_add(&k, (v4d)((v4l)e & ((v4l){0, 1, 2, 3} < left)));
    }
    *sum = k;
}

/* the lanes in one compensated sum */
static inline double kahan_total(const kahan4 *k) {
    double sum = 0.0, comp = 0.0;
    for (int l = 0; l < 4; l++) {
        double y = k->s[l] - (k->c[l] + comp), t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    return sum;
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
        kahan4 sum = {{0, 0, 0, 0}, {0, 0, 0, 0}};
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
        double r = kahan_total(&sum);
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
