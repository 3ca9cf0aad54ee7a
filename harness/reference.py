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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.cases import Case, Inputs

LONGDOUBLE_IS_WIDER = np.finfo(np.longdouble).eps < 1e-18


@dataclass
class Reference:
    loss: np.ndarray  # () for mean/sum, (N,) for none
    grad: np.ndarray  # (N, K): gradient of sum(loss) w.r.t. the logits
    precision: str  # working precision used, e.g. "float64"
    row_loss: np.ndarray  # (N,) unreduced per-row losses, float64
    label_sum: np.ndarray  # (N,) sum of each row's label weights, float64
    logits: np.ndarray | None = None  # (N, K) the case's logits in float64 (for the error model)
    q: np.ndarray | None = None  # (N, K) label weights in float64 (one-hot for index labels)


def label_matrix(case: Case, inputs: Inputs, wp: type) -> np.ndarray:
    """Labels as an N x K weight matrix in working precision (one-hot for index labels)."""
    if case.labels == "index":
        q = np.zeros((case.n, case.k), dtype=wp)
        q[np.arange(case.n), inputs.labels] = 1
        return q
    return inputs.labels.astype(wp)


def working_precision(dtype: str) -> str:
    if dtype != "float64":
        return "float64"
    return "longdouble" if LONGDOUBLE_IS_WIDER else "mpmath"


def softmax_xent(x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row loss (N,), gradient (N, K) and label sums (N,) of unreduced softmax cross-entropy,
    in x's precision.

    Works for float64, longdouble and object arrays of mpmath numbers alike.
    """
    n = x.shape[0]
    rows = np.arange(n)
    a = np.argmax(x, axis=1)
    m = x[rows, a]
    with np.errstate(invalid="ignore", over="ignore"):
        z = x - m[:, None]
        e = _exp(z)
        e[rows, a] = 0
        r = e.sum(axis=1)
        s = 1 + r
        d = _log1p(r)[:, None] - z  # lse - o_j >= 0
        terms = np.where(q != 0, q * d, 0)
        loss = terms.sum(axis=1)
        big_q = q.sum(axis=1)
        grad = e / s[:, None] * big_q[:, None] - q
        q_a = q[rows, a]
        grad[rows, a] = ((big_q - q_a) - q_a * r) / s
    return loss, grad, big_q


def _exp(z: np.ndarray) -> np.ndarray:
    if z.dtype == object:
        import mpmath
        return np.frompyfunc(mpmath.exp, 1, 1)(z)
    return np.exp(z)


def _log1p(r: np.ndarray) -> np.ndarray:
    if r.dtype == object:
        import mpmath
        return np.frompyfunc(lambda v: mpmath.log(1 + v), 1, 1)(r)
    return np.log1p(r)


SEMANTICS: tuple[str, ...] = ("plain", "torch", "keras")


def undefined_rows(logits: np.ndarray, rows: np.ndarray, grad: np.ndarray) -> None:
    """A row with a NaN or +inf logit, or no finite logit at all, has no defined loss: the
    reference expects NaN in its loss and gradient (IEEE propagation), so an API that returns
    finite numbers there, in silence, is reported."""
    x = logits.astype(np.float64)
    bad = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1) | np.isneginf(x).all(axis=1)
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
    n, k, e = case.n, case.k, inputs.smoothing
    w = None if inputs.weights is None else inputs.weights.astype(wp)
    if case.labels == "index":
        t = inputs.labels
        valid = (t >= 0) & (t < k)  # ignored (and out-of-range) targets carry no weight
        onehot = np.zeros((n, k), dtype=wp)
        onehot[np.flatnonzero(valid), t[valid]] = 1
        if semantics == "torch":
            w_y = np.zeros(n, dtype=wp)
            w_y[valid] = w[t[valid]] if w is not None else 1
            smooth = (w[None, :] if w is not None else np.ones((1, k), dtype=wp)) * valid[:, None]
            r = (1 - wp(e)) * w_y[:, None] * onehot + wp(e) / k * smooth
            return r, w_y.sum()
        r = (1 - wp(e)) * onehot + wp(e) / k * valid[:, None]
        return r, (valid.sum() if semantics == "keras" else n)
    q = inputs.labels.astype(wp)
    r = (1 - wp(e)) * q + wp(e) / k if e else q
    if semantics == "torch" and w is not None:
        r = r * w[None, :]
    return r, n


def reduce(case: Case, loss_rows: np.ndarray, grad: np.ndarray, denom: float | None = None,
           empty_mean: str = "nan") -> tuple[np.ndarray, np.ndarray]:
    """Apply the reduction; a mean over zero weight (every target ignored) is NaN with a zero
    gradient (torch) or 0 (keras), as documented."""
    if case.reduction == "mean":
        denom = case.n if denom is None else denom
        if denom == 0:
            zero = loss_rows.sum() * 0
            return (zero if empty_mean == "zero" else zero + np.nan), grad * 0
        return loss_rows.sum() / denom, grad / denom
    if case.reduction == "sum":
        return loss_rows.sum(), grad
    return loss_rows, grad


def reference(case: Case, inputs: Inputs, semantics: str = "plain") -> Reference:
    """Loss and gradient of `case` on `inputs`, in a precision well above the case's dtype,
    with the case's options read as `semantics` documents them."""
    prec = working_precision(case.dtype)
    empty = "zero" if semantics == "keras" else "nan"
    if prec == "mpmath":
        import mpmath
        with mpmath.workdps(40):
            to_mp = np.frompyfunc(lambda v: mpmath.mpf(float(v)), 1, 1)
            r, denom = effective_labels(case, inputs, semantics, np.float64)
            rows, grad, big_q = softmax_xent(to_mp(inputs.logits.astype(np.float64)), to_mp(r))
            undefined_rows(inputs.logits, rows, grad)
            loss, grad = reduce(case, rows, grad, denom, empty)
            f64 = lambda a: np.asarray(a, dtype=object).astype(np.float64)
            return Reference(f64(loss), f64(grad), prec, f64(rows), f64(big_q),
                             inputs.logits.astype(np.float64), r)
    wp = np.longdouble if prec == "longdouble" else np.float64
    r, denom = effective_labels(case, inputs, semantics, wp)
    rows, grad, big_q = softmax_xent(inputs.logits.astype(wp), r)
    undefined_rows(inputs.logits, rows, grad)
    loss, grad = reduce(case, rows, grad, denom, empty)
    return Reference(np.asarray(loss), grad, prec, rows.astype(np.float64), big_q.astype(np.float64),
                     inputs.logits.astype(np.float64), r.astype(np.float64))
