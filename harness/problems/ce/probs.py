"""The reference of probability-input APIs that clip: Keras's from_logits=False.

An API that takes probabilities (or log-probabilities) is fed softmax(x) (or log_softmax(x)) of the
case's logits, computed in the framework; the gradient is still the one with respect to x. Where the
API computes -sum q log p as written, its exact value is the plain cross-entropy, and the plain
reference applies (xentcheck.problems.ce.reference). Keras documents otherwise: with from_logits=False it
clips the probabilities to [eps, 1 - eps] (eps = keras.config.epsilon() = 1e-7) before the log, so
the exact value of the composition is another function. Two forms (keras/src/backend/<name>/nn.py,
keras 3.15.1), named as the Variant's `semantics`:

    "keras_clip"             CategoricalCrossentropy on every backend, SparseCategoricalCrossentropy
                             on jax, torch and numpy: c = clip(p / sum(p), eps, 1 - eps),
                             l = -sum_j r_j log c_j
    "keras_clip_tf_sparse"   SparseCategoricalCrossentropy on TensorFlow: c = clip(p, eps, 1 - eps),
                             then tf.nn.sparse_softmax_cross_entropy_with_logits(log c), which
                             renormalises after the clip: l = Q log C - sum_j r_j log c_j, C = sum c

with p = softmax(x) exact (so sum(p) = 1), r the effective label weights as Keras reads the options
(reference.effective_labels, "keras"), Q = sum r. The bounds are those the clip sees: 1e-7 and the
Python float 1 - 1e-7, each rounded to the case's dtype (float16 and bfloat16: 1 - 1e-7 rounds to
1, so only the lower bound clips). On softmax([14.4, 50.1, 3.5]) with label 0, l = -log(1e-7) =
16.118 where -log p_0 = 35.7.

A clipped entry passes no gradient (the clip's derivative is 0 outside the bounds); with u_j = 1
where lo < p_j < hi, else 0, and dc_j/dx = u_j p_j (e_j - p) (sum(p) = 1 exactly, so the
renormalisation p / sum(p) has no derivative):

    keras_clip             g = p sum(r u) - r u
    keras_clip_tf_sparse   g = p sum(r u) - r u + (Q / C) (u p - p sum(u p))

Rows with a NaN or +inf logit, or no finite one, are undefined (NaN), as for the plain loss.
"""

from __future__ import annotations

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case, Inputs

EPSILON = 1e-7  # keras.config.epsilon()'s default
CLIPPED: tuple[str, ...] = ("keras_clip", "keras_clip_tf_sparse")


def clip_bounds(dtype: str) -> tuple[float, float]:
    """(eps, 1 - eps) as the clip sees them in `dtype`: each Python float rounded to it once."""
    t = dtypes.info(dtype).np_type
    return float(np.asarray(EPSILON).astype(t)), float(np.asarray(1 - EPSILON).astype(t))


def clipped_rows(x: np.ndarray, r: np.ndarray, semantics: str, lo: float, hi: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Unreduced rows (N,) and gradients (N, K) of the clipped composition `semantics`, in x's
    precision (float64, longdouble, or object arrays of mpmath numbers)."""
    from xentcheck.problems.ce.reference import _log1p, _shifted_exps
    if semantics not in CLIPPED:
        raise ValueError(f"unknown clipped composition {semantics!r} (known: {', '.join(CLIPPED)})")
    obj = x.dtype == object
    log = np.frompyfunc(_mp_log, 1, 1) if obj else np.log
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        rows, a, z, e, big_r, s = _shifted_exps(x)  # p_j = e_j / s, p_a = 1 / s (a: the argmax)
        p = e / s[:, None]
        p[rows, a] = 1 / s
        lo_w, hi_w = (_mp(lo), _mp(hi)) if obj else (x.dtype.type(lo), x.dtype.type(hi))
        c = np.where(p < lo_w, lo_w, np.where(p > hi_w, hi_w, p))
        inside = (p > lo_w) & (p < hi_w)
        # p_a < hi as 1 - p_a = R / (1 + R) > 1 - hi (exact): p_a itself rounds to 1 first (p_j <= 1/2 elsewhere)
        inside[rows, a] = (p[rows, a] > lo_w) & (big_r / s > 1 - hi_w)
        c[rows, a] = np.where(inside[rows, a], p[rows, a], c[rows, a])
        u = inside.astype(x.dtype if not obj else float)
        ru = r * u
        # log c: the bound's where clipped, else log p = z - log1p(R), exact where p ~ 1 (log(p) is not)
        log_c = np.where(u != 0, z - _log1p(big_r)[:, None], log(c))
        loss = np.where(r != 0, -r * log_c, 0).sum(axis=1)
        ru_a = ru[rows, a]
        ru[rows, a] = 0
        s_ru = ru.sum(axis=1)  # sum(r u) over the classes other than a
        grad = p * (s_ru + ru_a)[:, None] - ru
        # the argmax's entry p_a sum(r u) - r_a u_a as ((sum(r u) - r_a u_a) - r_a u_a R) / (1 + R):
        # it cancels to ~R where p_a ~ 1, and this keeps its relative accuracy (reference.softmax_xent)
        grad[rows, a] = (s_ru - ru_a * big_r) / s
        if semantics == "keras_clip_tf_sparse":
            # C - 1 summed without forming 1 + small: c_a - 1 is -R / (1 + R) where p_a is not clipped
            c_less = c.copy()
            c_less[rows, a] = np.where(u[rows, a] != 0, -big_r / s, c[rows, a] - 1)
            c_less_1 = c_less.sum(axis=1)
            big_c = 1 + c_less_1
            big_q = r.sum(axis=1)
            loss = loss + big_q * _log1p(c_less_1)
            up = u * p
            u_a = u[rows, a]
            up[rows, a] = 0
            s_up = up.sum(axis=1)  # sum(u p) over the classes other than a
            term = up - p * (s_up + u_a * p[rows, a])[:, None]
            # u_a - sum(u p) without cancelling: the others' clipped mass where u_a = 1, -s_up where 0
            off = np.where(u_a != 0, ((1 - u) * p).sum(axis=1) - (1 - u_a) * p[rows, a], -s_up)
            term[rows, a] = p[rows, a] * off
            grad = grad + (big_q / big_c)[:, None] * term
    return loss, grad


def _mp(v: float):
    import mpmath
    return mpmath.mpf(float(v))


def _mp_log(v):
    import mpmath
    return mpmath.log(v)


def clipped_reference(case: Case, inputs: Inputs, semantics: str, prec: str):
    """The Reference of `case` for an API whose composition is `semantics` (one of CLIPPED), in
    working precision `prec` (reference.working_precision)."""
    from xentcheck.problems.ce.reference import Reference, effective_labels, reduce, undefined_rows
    if case.llm:
        raise ValueError(f"{semantics}: the LLM-training options ({case.options}) are not composed with a clip")
    wp: type = {"float64": np.float64, "longdouble": np.longdouble, "mpmath": object}[prec]
    r, denom = effective_labels(case, inputs, "keras", np.float64 if wp is object else wp)
    x = inputs.logits.astype(np.float64)
    if wp is object:
        import mpmath
        to_mp = np.frompyfunc(_mp, 1, 1)
        with mpmath.workdps(40):
            rows, grad = clipped_rows(to_mp(x), to_mp(r), semantics, *clip_bounds(case.dtype))
            rows, grad = rows.astype(np.float64), grad.astype(np.float64)
        r = r.astype(np.float64)
    else:
        rows, grad = clipped_rows(x.astype(wp), r, semantics, *clip_bounds(case.dtype))
    undefined_rows(inputs.logits, rows, grad)
    loss, grad = reduce(case, rows, grad, denom, "zero")
    f64 = lambda a: np.asarray(a).astype(np.float64)  # noqa: E731
    return Reference(f64(loss), f64(grad), prec, f64(rows), f64(r).sum(axis=1), case, inputs, f64(r))
