"""The high-precision reference for softmax cross-entropy loss and gradient.

For logits o (N x K) and label weights q (one-hot for index labels) the per-row loss is
    l = sum_j q_j (lse(o) - o_j),   lse(o) = m + log1p(R),  R = sum_{j != argmax} exp(o_j - m)
and its gradient is  g_j = p_j * sum(q) - q_j  with  p_j = exp(o_j - m) / (1 + R).

Written this way every loss term is >= 0 (no cancellation), log1p keeps lse - max exact for a
dominant logit, and the argmax entry of the gradient is formed as ((Q - q_a) - q_a R) / (1 + R),
so p_a - 1 ~ -R keeps full relative accuracy. 0 * inf is taken as 0: a class with no label
weight contributes nothing, even where its logit is -inf (the mathematical limit).

Working precision: float64 for 16- and 32-bit cases; for float64 cases, np.longdouble where it
is wider than float64 (x86-64: 64-bit significand), else mpmath at 40 digits.

In float64, exp is the C kernel's (harness/core/_xent.c: vectorised, within an ulp) where it is
built, and class-index rows are computed there whole; elsewhere NumPy computes the same formula
(XENTCHECK_REFERENCE_KERNEL=numpy forces it, to cross-check the two).

Every step is row-wise, so the rows are processed in chunks of about CHUNK_ELEMENTS elements:
the results are the same bits whatever the chunk size or the number of threads, and the memory
beyond the float64 gradient stays bounded (a few chunk-sized temporaries, hot in cache) whatever
N is. In NumPy they are also the bits of the whole-array formula (softmax_xent, then reduce),
except a class-index mean over an N that is not a power of two: there the gradient is divided
once by (1 + R) N instead of by (1 + R), then N, each way within an ulp of the exact value. The
kernel sums R with a compensated sum (TwoSum) where NumPy sums pairwise: within (log2 K + 12) ulps of
each other at the row's scale (tests/helpers/bits.py).

LLM-training options (cases.py's "s", "cap", "z", "ct"; derived in docs/llm-options.md), in this
order of operations, per row n, with r the effective label weights (effective_labels) and
L = sum_j r_j (lse(o') - o'_j) the cross-entropy of the final logits o':
    scale      y = s x                                  (s = case.logit_scale, else 1)
    softcap    o' = c tanh(y / c)                       (c = case.softcap, else o' = y)
    z-loss     l_n = L_n + z lse(o'_n)^2                (z = case.zloss; rows with an ignored target: 0)
    reduction  mean: sum_n L_n / D + z sum_n lse_n^2 / D_z; sum: sum_n l_n; none: l_n
and the gradient of v . loss (v the cotangent: Inputs.cotangent, a scalar for mean/sum, one per
row for none, else 1), with p' = softmax(o') and G = p' sum(r) - r:
    dl_n/do'  = G + 2 z lse(o') p'
    dl_n/dx   = s sech^2(y / c) dl_n/do'                sech^2 = 1 - tanh^2, formed as 4a / (1 + a)^2,
                                                        a = exp(-2 |y / c|): no cancellation near |tanh| = 1
    grad      = v (dL/dx / D + z-part / D_z)  (mean),  v dl/dx (sum),  v_n dl_n/dx (none).
D is the semantics' mean denominator (torch: sum of the kept targets' weights); D_z counts the rows
the z-loss applies to (torch and keras: the kept targets; plain and probability targets: N), so it
equals D without class weights (Liger-Kernel divides its z-loss by the non-ignored count). With a
softcap every logit, +-inf included, maps into [-c, c]: a row is undefined (NaN) only where it holds
a NaN; without one, as for the plain loss (undefined_rows), after the scale.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from xentcheck.core import kernel
from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs
from xentcheck.core.dtypes import LONGDOUBLE_IS_WIDER, working_precision  # noqa: F401 (the kinds' references read them here)
from xentcheck.core.spare import SPARE
from xentcheck.problems.ce.probs import CLIPPED, clipped_reference

# elements per row chunk: a 2 MiB float64 temporary per thread (L2, else L3); smaller chunks spend
# more of their time in NumPy's per-call overhead, under the GIL, and two threads stop scaling
CHUNK_ELEMENTS = 1 << 18
# the C kernel needs no temporaries but a row, and each call costs some Python: larger chunks
KERNEL_CHUNK_ELEMENTS = 1 << 21
# threads for the chunks of a large case (the cores this process may use, at most 8), and what is large
THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
THREAD_MIN_ELEMENTS = 1 << 22


@dataclass
class Reference:
    loss: np.ndarray  # () for mean/sum, (M,) for none: M = N x d1 x ... rows
    grad: np.ndarray  # (M, K): gradient of sum(loss) w.r.t. the logits
    precision: str  # working precision used, e.g. "float64"
    row_loss: np.ndarray  # (M,) unreduced per-row losses, float64
    label_sum: np.ndarray  # (M,) sum of each row's label weights, float64
    case: Case | None = None  # with `inputs`: where the float64 logits and labels come from, on demand
    inputs: Inputs | None = None
    weights: np.ndarray | None = None  # an options case's effective label weights r (else built from the labels)
    lse: np.ndarray | None = None  # (M,) LLM options only: each row's lse of its final logits o', float64
    # LLM options only: the mean's denominators of the cross-entropy (D) and of the z-loss (D_z)
    denom: float | None = None
    denom_z: float | None = None
    # what comparisons derive from the reference alone (xentcheck.core.metrics: the error model's bounds),
    # kept for the other backends' comparisons of the case
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    # float64 (N, K) copies for the error model, built only when asked for: holding them always
    # would triple the reference's memory on large cases
    @cached_property  # shared by every backend's comparison of the case
    def logits(self) -> np.ndarray | None:
        return None if self.inputs is None else self.inputs.logits.astype(np.float64)

    @cached_property
    def q(self) -> np.ndarray | None:
        if self.weights is not None:
            return self.weights
        if self.inputs is None:
            return None
        assert self.case is not None  # given together with `inputs`
        return label_matrix(self.case, self.inputs, np.float64)


def label_matrix(case: Case, inputs: Inputs, wp: type) -> np.ndarray:
    """Labels as an N x K weight matrix in working precision (one-hot for index labels)."""
    if case.labels == "index":
        q: np.ndarray = np.zeros((case.rows, case.k), dtype=wp)
        q[np.arange(case.rows), inputs.labels] = 1
        return q
    return inputs.labels.astype(wp)


def softmax_xent(x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row loss (N,), gradient (N, K) and label sums (N,) of unreduced softmax cross-entropy,
    in x's precision.

    Works for float64, longdouble and object arrays of mpmath numbers alike.
    """
    rows, a, z, e, r, s = _shifted_exps(x)
    with np.errstate(invalid="ignore", over="ignore"):
        d = _log1p(r)[:, None] - z  # lse - o_j >= 0
        terms = np.where(q != 0, q * d, 0)
        loss = terms.sum(axis=1)
        big_q = q.sum(axis=1)
        grad = e / s[:, None] * big_q[:, None] - q
        q_a = q[rows, a]
        grad[rows, a] = ((big_q - q_a) - q_a * r) / s
    return loss, grad, big_q


def _shifted_exps(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """(rows, a, z, e, R, 1 + R) of the rows of x: a the argmax, z = x - x_a, e = exp(z) with
    e_a = 0, R the sum of e."""
    rows = np.arange(x.shape[0])
    a = np.argmax(x, axis=1)
    m = x[rows, a]
    with np.errstate(invalid="ignore", over="ignore"):
        z = x - m[:, None]
        e = _exp(z)
        e[rows, a] = 0
        r = e.sum(axis=1)
    return rows, a, z, e, r, 1 + r


def softmax_lse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise p = softmax(x) (N, K) and lse(x) (N,) in x's precision: p_j = exp(x_j - m) / (1 + R),
    p_a = 1 / (1 + R), lse = m + log1p(R) (as in softmax_xent: every p_j to full relative accuracy)."""
    rows, a, z, e, r, s = _shifted_exps(x)
    with np.errstate(invalid="ignore", over="ignore"):
        p = e / s[:, None]
        p[rows, a] = 1 / s
        lse = x[rows, a] + _log1p(r)
    return p, lse


def _tanh(u: np.ndarray) -> np.ndarray:
    if u.dtype == object:
        import mpmath
        return np.frompyfunc(mpmath.tanh, 1, 1)(u)
    return np.tanh(u)


def _sech2(u: np.ndarray) -> np.ndarray:
    """1 - tanh(u)^2 = 4a / (1 + a)^2 with a = exp(-2|u|): relative accuracy for every u (1 - t^2
    cancels as |t| -> 1), and 0, not NaN, at u = +-inf."""
    if u.dtype == object:
        import mpmath
        return np.frompyfunc(lambda v: mpmath.sech(v) ** 2, 1, 1)(u)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        a = np.exp(-2 * np.abs(u))
        return 4 * a / ((1 + a) * (1 + a))


def _exp(z: np.ndarray) -> np.ndarray:
    """exp of z = x - max(x) <= 0 (or NaN): the C kernel's vectorised exp in float64 where it is
    built (the chunked path's exp, so both paths share its bits), else NumPy's or mpmath's."""
    if z.dtype == object:
        import mpmath
        return np.frompyfunc(mpmath.exp, 1, 1)(z)
    e = kernel.exp_nonpos(z)
    return np.exp(z) if e is None else e


def _log1p(r: np.ndarray) -> np.ndarray:
    if r.dtype == object:
        import mpmath
        return np.frompyfunc(lambda v: mpmath.log(1 + v), 1, 1)(r)
    return np.log1p(r)


SEMANTICS: tuple[str, ...] = ("plain", "torch", "keras")


def semantics_matter(case: Case) -> bool:
    """Whether the APIs' documented semantics can give `case` different references: options (class
    weights, ignored targets, smoothing) and the mean of an empty batch (NaN, or Keras's 0)."""
    return bool(case.options) or case.rows == 0


def reference_key(case: Case, semantics: str) -> str:
    """The semantics `case`'s reference depends on, for a cache of references: a clipped
    probability composition (xentcheck.problems.ce.probs) always, the options' readings where they
    matter, else "plain"."""
    return semantics if semantics in CLIPPED or semantics_matter(case) else "plain"


def ignored_rows(case: Case, inputs: Inputs) -> np.ndarray:
    """(N,) bool: the rows whose class index is ignore_index. Their loss and gradient are 0 by the
    APIs' documentation, whatever their logits (a NaN or +inf logit included: torch masks the row
    before it reads it), so the reference sets them so rather than computing 0 x (inf - inf)."""
    if case.labels != "index" or not case.option_set & {"ign", "allign"}:
        return np.zeros(case.rows, dtype=bool)
    return np.asarray(inputs.labels).reshape(-1) == IGNORE_INDEX


def undefined_rows(logits: np.ndarray, rows: np.ndarray, grad: np.ndarray, ignored: np.ndarray | None = None) -> None:
    """A row with a NaN or +inf logit, or no finite logit at all, has no defined loss: the
    reference expects NaN in its loss and gradient (IEEE propagation), so an API that returns
    finite numbers there, in silence, is reported. Rows of an ignored target (`ignored`) are 0."""
    x = logits.astype(np.float64)
    bad = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1) | np.isneginf(x).all(axis=1)
    if ignored is not None and ignored.any():
        rows[ignored], grad[ignored] = 0, 0
        bad &= ~ignored
    if bad.any():
        rows[bad] = np.nan
        grad[bad] = np.nan


def effective_labels(case: Case, inputs: Inputs, semantics: str, wp: type) -> tuple[np.ndarray, float]:
    """The N x K label weights r and the mean's denominator, as the API documents its options.

    With r, every API computes loss_n = sum_c r_nc (lse - x_c) and gradient p * sum(r) - r:
    - torch (F.cross_entropy): index targets r = (1-e) w_y onehot(y) + (e/K) w, mean over
      sum of w_y; probability targets r = w * ((1-e) q + e/K), mean over N; ignored rows 0.
    - keras: SparseCategoricalCrossentropy masks ignore_class rows out of sum and mean;
      CategoricalCrossentropy smooths y(1-e) + e/K; mean over N (sum_over_batch_size).
    - plain (tf.nn, optax, NumPy): q, smoothed (1-e) q + e/K where the API is given smoothed labels.
    Without options all three are the canonical q and N.
    """
    n, k, e = case.rows, case.k, inputs.smoothing
    w: np.ndarray | None = None if inputs.weights is None else inputs.weights.astype(wp)
    if case.labels == "index":
        t = inputs.labels
        valid = (t >= 0) & (t < k)  # ignored (and out-of-range) targets carry no weight
        onehot: np.ndarray = np.zeros((n, k), dtype=wp)
        onehot[np.flatnonzero(valid), t[valid]] = 1
        if semantics == "torch":
            w_y: np.ndarray = np.zeros(n, dtype=wp)
            w_y[valid] = w[t[valid]] if w is not None else 1
            smooth = (w[None, :] if w is not None else np.ones((1, k), dtype=wp)) * valid[:, None]
            r = (1 - wp(e)) * w_y[:, None] * onehot + wp(e) / k * smooth
            return r, w_y.sum()
        r = (1 - wp(e)) * onehot + wp(e) / k * valid[:, None]
        return r, (valid.sum() if semantics == "keras" else n)
    q: np.ndarray = inputs.labels.astype(wp)
    r = (1 - wp(e)) * q + wp(e) / k if e else q
    if semantics == "torch" and w is not None:
        r = r * w[None, :]
    return r, n


def reduce(case: Case, loss_rows: np.ndarray, grad: np.ndarray, denom: float | None = None,
           empty_mean: str = "nan") -> tuple[np.ndarray, np.ndarray]:
    """Apply the reduction; a mean over zero weight (every target ignored) is NaN with a zero
    gradient (torch) or 0 (keras), as documented."""
    if case.reduction == "mean":
        denom = case.rows if denom is None else denom
        if denom == 0:
            zero = loss_rows.sum() * 0
            return (zero if empty_mean == "zero" else zero + np.nan), grad * 0
        # in place: a second N x K copy would double the peak memory
        return loss_rows.sum() / denom, np.divide(grad, denom, out=grad)
    if case.reduction == "sum":
        return loss_rows.sum(), grad
    return loss_rows, grad


def reference(case: Case, inputs: Inputs, semantics: str = "plain", wide: bool = False) -> Reference:
    """Loss and gradient of `case` on `inputs`, in a precision well above the case's dtype, with
    the case's options (class weights, ignored targets, smoothing) read as `semantics` documents
    them. Cases without options take the chunked path (bounded memory on vocabulary-sized K).
    The loss and gradient are in the working precision (longdouble for float64 cases), but with
    the LLM options, which round them to float64 unless `wide` (the linear-CE reference chains
    the gradient on, and needs its extra digits). A `semantics` of
    xentcheck.problems.ce.probs.CLIPPED is a probability API's clipped composition."""
    prec = working_precision(case.dtype)
    if semantics in CLIPPED:
        return clipped_reference(case, inputs, semantics, prec)
    if case.llm:
        return _llm(case, inputs, semantics, prec, wide)
    if semantics_matter(case) or prec == "mpmath":
        return _general(case, inputs, semantics, prec)
    wp = np.longdouble if prec == "longdouble" else np.float64
    divisor = case.rows if case.reduction == "mean" else None
    rows, grad, big_q = chunked_softmax_xent(case, inputs, wp, divisor)  # undefined rows included
    loss = rows if case.reduction == "none" else rows.sum() / (case.rows if case.reduction == "mean" else 1)
    return Reference(np.asarray(loss), grad, prec, rows.astype(np.float64), big_q.astype(np.float64), case, inputs)


def _general(case: Case, inputs: Inputs, semantics: str, prec: str) -> Reference:
    """The whole-array path: options cases (small) and the mpmath fallback."""
    empty = "zero" if semantics == "keras" else "nan"
    if prec == "mpmath":
        import mpmath
        with mpmath.workdps(40):
            to_mp = np.frompyfunc(lambda v: mpmath.mpf(float(v)), 1, 1)
            r, denom = effective_labels(case, inputs, semantics, np.float64)
            rows, grad, big_q = softmax_xent(to_mp(inputs.logits.astype(np.float64)), to_mp(r))
            undefined_rows(inputs.logits, rows, grad, ignored_rows(case, inputs))
            loss, grad = reduce(case, rows, grad, denom, empty)
            f64 = lambda a: np.asarray(a, dtype=object).astype(np.float64)
            return Reference(f64(loss), f64(grad), prec, f64(rows), f64(big_q), case, inputs, r)
    wp = np.longdouble if prec == "longdouble" else np.float64
    r, denom = effective_labels(case, inputs, semantics, wp)
    rows, grad, big_q = softmax_xent(inputs.logits.astype(wp), r)
    undefined_rows(inputs.logits, rows, grad, ignored_rows(case, inputs))
    loss, grad = reduce(case, rows, grad, denom, empty)
    return Reference(np.asarray(loss), grad, prec, rows.astype(np.float64), big_q.astype(np.float64), case, inputs,
                     r.astype(np.float64))


def llm_rows(x: np.ndarray, r: np.ndarray, scale: float | None, softcap: float | None, zloss: float | None,
             counted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unreduced rows with the LLM options, in x's precision (float64, longdouble or mpmath objects):
    (cross-entropy rows L (N,), z-loss rows (N,), dL/dx (N, K), d(z-loss)/dx (N, K), lse(o') (N,),
    sum(r) (N,)), for the order of operations in this module's docstring. `counted` (N,) bool:
    the rows the z-loss applies to."""
    const = _mp if x.dtype == object else x.dtype.type  # the parameters, exact in x's precision
    with np.errstate(invalid="ignore", over="ignore"):
        y = x if scale is None else x * const(scale)
        o, chain = y, None
        if softcap is not None:
            u = y / const(softcap)
            o = const(softcap) * _tanh(u)
            chain = _sech2(u)  # d o' / d y
        ce, grad, big_q = softmax_xent(o, r)
        p, lse = softmax_lse(o)
        z_rows, z_grad = lse * 0, p * 0
        if zloss is not None:
            z = const(zloss)
            z_rows = np.where(counted, z * lse * lse, z_rows)
            z_grad = np.where(counted[:, None], (2 * z * lse)[:, None] * p, z_grad)
        if chain is not None:
            grad, z_grad = grad * chain, z_grad * chain
        if scale is not None:
            grad, z_grad = grad * const(scale), z_grad * const(scale)
    return ce, z_rows, grad, z_grad, lse, big_q


def _mp(v: float):
    import mpmath
    return mpmath.mpf(float(v))


def _to(a: np.ndarray, wp: type) -> np.ndarray:
    """An array (any dtype, 0-d included) in working precision `wp`; object: mpmath numbers."""
    if wp is object:
        return np.frompyfunc(_mp, 1, 1)(np.asarray(a).astype(np.float64))
    return np.asarray(a).astype(wp)


def _llm(case: Case, inputs: Inputs, semantics: str, prec: str, wide: bool = False) -> Reference:
    """The reference with LLM-training options (the module docstring's formulas), whole-array."""
    if prec == "mpmath":
        import mpmath
        with mpmath.workdps(40):
            return _llm_in(case, inputs, semantics, prec, object)
    return _llm_in(case, inputs, semantics, prec, np.longdouble if prec == "longdouble" else np.float64, wide)


def _llm_in(case: Case, inputs: Inputs, semantics: str, prec: str, wp: type, wide: bool = False) -> Reference:
    n, k = case.rows, case.k
    r, denom = effective_labels(case, inputs, semantics, np.float64 if wp is object else wp)
    r = _to(r, wp)
    counted = (inputs.labels >= 0) & (inputs.labels < k) if case.labels == "index" else np.ones(n, dtype=bool)
    denom_z = int(counted.sum()) if case.labels == "index" and semantics in ("torch", "keras") else n
    ce, z_rows, grad, z_grad, lse, big_q = llm_rows(_to(inputs.logits, wp), r, case.logit_scale, case.softcap,
                                                    case.zloss, counted)
    ignored = ignored_rows(case, inputs)
    ce[ignored], z_rows[ignored], grad[ignored], z_grad[ignored] = 0, 0, 0, 0  # whatever their logits
    rows = ce + z_rows
    if case.reduction == "mean":
        empty = "zero" if semantics == "keras" else "nan"
        loss, grad = reduce(case, ce, grad, denom, empty)
        if case.zloss is not None:
            loss_z, z_grad = reduce(case, z_rows, z_grad, denom_z, empty)
            loss, grad = loss + loss_z, grad + z_grad
    else:
        grad = grad + z_grad
        loss = rows.sum() if case.reduction == "sum" else rows
    if inputs.cotangent is not None:
        v = _to(inputs.cotangent, wp)
        grad = grad * (v[:, None] if np.ndim(v) == 1 else v)

    def f64(a) -> np.ndarray:
        with np.errstate(over="ignore"):  # lse(s x) may pass float64's range where the loss does not
            return np.asarray(a, dtype=object if wp is object else None).astype(np.float64)

    if not wide or wp is object:
        loss, grad = f64(loss), f64(grad)
    rows = f64(rows)
    # undefined rows: a NaN logit; without a softcap also a +inf one (after the scale s > 0) or no finite one
    x = inputs.logits.astype(np.float64)
    bad = np.isnan(x).any(axis=1)
    if case.softcap is None:
        bad |= np.isposinf(x).any(axis=1) | np.isneginf(x).all(axis=1)
    bad &= ~ignored
    if bad.any():
        rows[bad], grad[bad] = np.nan, np.nan
        loss = np.where(bad, np.nan, loss) if case.reduction == "none" else np.asarray(np.nan)
    return Reference(loss, grad, prec, rows, f64(big_q), case, inputs, f64(r), f64(lse), float(denom), float(denom_z))


def chunked_softmax_xent(case: Case, inputs: Inputs, wp: type, divisor: int | None = None,
                         threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """softmax_xent in working precision `wp`, a chunk of rows at a time, into preallocated outputs;
    the gradient divided by `divisor` (the mean's N) while each chunk is still in cache, and the
    undefined rows (see undefined_rows) set to NaN.

    Large cases spread their chunks over `threads` threads (default: THREADS, one for cases under
    THREAD_MIN_ELEMENTS): NumPy releases the GIL in each pass, every row is computed by the same
    operations whichever thread takes it, and each chunk writes only its own rows, so the result
    is bit-identical to one thread's."""
    n, k = case.rows, case.k
    loss: np.ndarray = np.empty(n, dtype=wp)
    big_q: np.ndarray = np.empty(n, dtype=wp)
    grad = SPARE.empty((n, k), wp)  # the last large gradient's pages where they are free (harness/core/spare.py)
    step = max(1, (KERNEL_CHUNK_ELEMENTS if kernel_rows(case, wp) else CHUNK_ELEMENTS) // k)
    starts = range(0, n, step)
    if threads is None:
        threads = THREADS if n * k >= THREAD_MIN_ELEMENTS else 1
    local = threading.local()

    def buffer(rows: int) -> np.ndarray:
        """A temporary of `rows` rows per thread, reused: z, then exp(z) in NumPy; a row of exps in
        the kernel."""
        if getattr(local, "buf", None) is None or len(local.buf) < rows:
            local.buf = np.empty((rows, k), dtype=wp)
        return local.buf[:rows]

    def run(lo: int) -> None:
        _chunk(case, inputs, wp, divisor, lo, min(n, lo + step), buffer, loss, grad, big_q)

    if threads <= 1 or len(starts) < 2:
        for lo in starts:
            run(lo)
    else:
        # chunks handed out one at a time: a thread slowed by other load takes fewer of them
        with ThreadPoolExecutor(min(threads, len(starts)), thread_name_prefix="xentcheck-reference") as pool:
            for _ in pool.map(run, starts):
                pass
    return loss, grad, big_q


def kernel_rows(case: Case, wp: type) -> bool:
    """Whether the C kernel computes `case`'s rows in working precision `wp`: class-index labels,
    float64, the kernel built and not switched off."""
    return case.labels == "index" and wp is np.float64 and kernel.library() is not None


def _chunk(case: Case, inputs: Inputs, wp: type, divisor: int | None, lo: int, hi: int,
           buffer: Callable[[int], np.ndarray], loss: np.ndarray, grad: np.ndarray, big_q: np.ndarray) -> None:
    """Rows lo:hi of chunked_softmax_xent's outputs."""
    k = case.k
    if case.labels == "index":
        x, labels = inputs.logits[lo:hi], inputs.labels[lo:hi]
        # the C kernel where it can take the rows, else NumPy (kernel.index_rows declines bad labels)
        rows = kernel.index_rows(x, labels, divisor, grad[lo:hi], buffer(1)[0]) if kernel_rows(case, wp) else None
        loss[lo:hi] = _index_rows(x, labels, buffer(hi - lo), grad[lo:hi], divisor) if rows is None else rows
        big_q[lo:hi] = 1
        return
    part = Inputs(inputs.logits[lo:hi], inputs.labels[lo:hi], inputs.target[lo:hi])
    sub = Case(case.family, case.dtype, hi - lo, k, case.labels, case.reduction)
    loss[lo:hi], grad[lo:hi], big_q[lo:hi] = softmax_xent(part.logits.astype(wp), label_matrix(sub, part, wp))
    if divisor is not None:
        np.divide(grad[lo:hi], divisor, out=grad[lo:hi])
    undefined_rows(part.logits, loss[lo:hi], grad[lo:hi])


def _index_rows(x: np.ndarray, labels: np.ndarray, buf: np.ndarray, grad: np.ndarray, divisor: int | None) -> np.ndarray:
    """softmax_xent for one-hot labels without the N x K label matrix, in the chunk buffer, the
    gradient written to `grad` in the same pass that divides by the row's 1 + R and the mean's N
    (e / ((1 + R) N): one pass over the chunk fewer than e / (1 + R), then / N; each within an ulp
    of the exact value, bit-equal where N is a power of two). Returns the rows' losses."""
    rows = np.arange(x.shape[0])
    native = x.dtype.kind == "f" and x.dtype.itemsize <= buf.dtype.itemsize  # not ml_dtypes' bfloat16
    # the argmax of the logits is that of their exact float64 / longdouble values
    a = np.argmax(x if native else x.astype(buf.dtype), axis=1)
    m = x[rows, a].astype(buf.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        if native:  # converts exactly, then subtracts: one pass instead of two
            z = np.subtract(x, m[:, None], out=buf, dtype=buf.dtype)
        else:
            buf[...] = x
            z = np.subtract(buf, m[:, None], out=buf)
        z_label = z[rows, labels]
        e = np.exp(z, out=buf)
        e[rows, a] = 0
        r = e.sum(axis=1)
        s = 1 + r
        d = s if divisor is None else s * divisor
        np.divide(e, d[:, None], out=grad)  # p_j * sum(q) / N, with sum(q) = 1
        # the label's and the argmax's entries, from the row's own values (p_a - 1 ~ -R stays accurate)
        p_label_minus_1 = e[rows, labels] / s - 1
        grad[rows, labels] = p_label_minus_1 if divisor is None else p_label_minus_1 / divisor
        q_a = (a == labels).astype(buf.dtype)
        grad[rows, a] = ((1 - q_a) - q_a * r) / d
        loss = _log1p(r) - z_label
    # undefined_rows without another pass: a row's maximum is NaN where it holds a NaN (argmax
    # stops at the first), +inf where it holds +inf, -inf where every logit is -inf
    bad = ~np.isfinite(m)
    if bad.any():
        loss[bad] = np.nan
        grad[bad] = np.nan
    return loss
