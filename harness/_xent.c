/* The reference's compiled kernels, called through ctypes by harness/kernel.py.
 *
 * NumPy's float64 exp is a scalar libm call on CPUs without AVX-512 (about 10 ns an element on
 * an AVX2 EPYC), and a row of softmax cross-entropy in NumPy takes five passes over memory. Here
 * exp is vectorised (exp_nonpos below, within 1.5 ulps) and a row takes two passes over the
 * logits and three over its gradient row, all but the first still in cache. Every row is computed by the same
 * operations, alone, so the bits do not depend on how rows are split into chunks or threads.
 *
 * The arithmetic follows harness/reference.py's formula: R = sum_{j != argmax} exp(x_j - m),
 * loss = log1p(R) - (x_y - m), gradient e_j / ((1 + R) N), the label's entry (e_y / (1 + R) - 1) / N
 * and the argmax's ((1 - q_a) - q_a R) / ((1 + R) N). R is summed with Kahan's compensation (all
 * its terms are >= 0), so it is within about an ulp of its exact value whatever K is.
 */

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* one build runs the AVX2/FMA code where the CPU has it, the baseline code elsewhere */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

static const double INV_LN2 = 1.4426950408889634074;
static const double LN2_HI = 6.93147180369123816490e-01; /* fdlibm's split of ln 2: k * LN2_HI */
static const double LN2_LO = 1.90821492927058770002e-10; /* is exact for |k| < 2^11 */
static const double SHIFT = 6755399441055744.0;          /* 1.5 * 2^52: adding it rounds to an integer */

/* exp(z) for z <= 0 (-inf gives 0, NaN gives NaN), branch-free so that loops over it vectorise.
 * z = k ln2 + r with |r| <= ln2 / 2; exp(r) by its Taylor series to r^13 (truncation < 1e-17
 * relative); 2^k from the bits of k + SHIFT, in two steps below 2^-1000 (subnormal results). */
static inline double exp_nonpos(double z) {
    z = z < -746.0 ? -746.0 : z; /* exp(-746) rounds to 0 */
    double t = z * INV_LN2 + SHIFT;
    double kf = t - SHIFT;
    double r = (z - kf * LN2_HI) - kf * LN2_LO;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int low = kf < -1000.0;
    double post = low ? 0x1p-600 : 1.0;
    double tb = low ? t + 600.0 : t;
    uint64_t bits, shift_bits, scale_bits;
    memcpy(&bits, &tb, 8);
    memcpy(&shift_bits, &SHIFT, 8);
    scale_bits = (bits - shift_bits + 1023) << 52; /* the biased exponent of 2^k */
    double scale;
    memcpy(&scale, &scale_bits, 8);
    return p * scale * post;
}

CLONES void xc_exp_nonpos(const double *restrict z, double *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = exp_nonpos(z[i]);
}

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

/* the row's maximum, NaN where it holds a NaN (as NumPy's argmax finds the first NaN) */
static inline float row_max(const float *xr, int64_t k) {
    const float ninf = -INFINITY;
    v8f mx = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
    v8i nan = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        v8f v;
        memcpy(&v, xr + j, 32);
        v8i gt = v > mx;
        mx = (v8f)(((v8i)v & gt) | ((v8i)mx & ~gt));
        nan |= v != v;
    }
    float m = ninf;
    int any_nan = 0;
    for (int l = 0; l < 8; l++) {
        m = mx[l] > m ? mx[l] : m;
        any_nan |= nan[l];
    }
    for (; j < k; j++) {
        m = xr[j] > m ? xr[j] : m;
        any_nan |= xr[j] != xr[j];
    }
    return any_nan ? NAN : m;
}

/* sum of g[0:k], all >= 0: four lanes of Kahan-compensated sums */
static inline double kahan_sum(const double *g, int64_t k) {
    v4d s = {0, 0, 0, 0}, c = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= k; j += 4) {
        v4d v, y, t;
        memcpy(&v, g + j, 32);
        y = v - c;
        t = s + y;
        c = (t - s) - y;
        s = t;
    }
    double sum = 0.0, comp = 0.0;
    for (int l = 0; l < 4; l++) { /* the lanes, then the tail, into one compensated sum */
        double y = s[l] - (c[l] + comp), t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    for (; j < k; j++) {
        double y = g[j] - comp, t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    return sum;
}

/* Rows of softmax cross-entropy against class indices: float32 logits x (n x k, rows contiguous),
 * labels in [0, k), float64 gradient (n x k) and row losses (n), the gradient divided by `divisor`
 * (the mean's N; 1 otherwise). A row with a NaN or +inf logit, or none finite, gets NaN throughout. */
CLONES void xc_index_rows_f32(const float *restrict x, const int64_t *restrict labels, int64_t n, int64_t k,
                              double divisor, double *restrict grad, double *restrict loss) {
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * k;
        double *restrict g = grad + i * k;
        float m = row_max(xr, k);
        if (!isfinite(m)) {
            for (int64_t j = 0; j < k; j++) g[j] = NAN;
            loss[i] = NAN;
            continue;
        }
        int64_t a = 0;
        while (xr[a] != m) a++; /* the first maximum, as argmax */
        double md = m;
        for (int64_t j = 0; j < k; j++) g[j] = exp_nonpos((double)xr[j] - md);
        g[a] = 0.0;
        double r = kahan_sum(g, k);
        double s = 1.0 + r, d = s * divisor;
        int64_t y = labels[i];
        double e_y = g[y];
        for (int64_t j = 0; j < k; j++) g[j] = g[j] / d;
        g[y] = (e_y / s - 1.0) / divisor;
        double q_a = a == y ? 1.0 : 0.0;
        g[a] = ((1.0 - q_a) - q_a * r) / d;
        loss[i] = log1p(r) - ((double)xr[y] - md);
    }
}

/* A module object only so that the build tools treat this file as an extension; its functions are
 * reached through ctypes, which calls them without the GIL (threads run chunks side by side). */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_xent", "C kernels of xentcheck's reference (see harness/kernel.py).", -1, NULL};

PyMODINIT_FUNC PyInit__xent(void) { return PyModule_Create(&module); }
