"""The error-model tolerance (`--tolerance model`): a per-element bound on what rounding in
the tested dtype can do to softmax cross-entropy, derived in docs/tolerance-model.md.

Per row: z_j = o_j - max(o) (<= 0), p = softmax, S = sum_j exp(z_j) (1 <= S <= K), Q = sum q,
u = the dtype's unit roundoff, t = its smallest normal number, L = ceil(log2 K) (depth of a
blocked or pairwise sum), W = sum_j p_j |z_j| (how far the probability mass sits below the
maximum), D = N for mean, else 1. To first order in u, with exp and log within 2 u:

    rel. error of S             s   = u (W + 3 + L) + K t      (exp terms flushed below t)
    abs. error of log S - z_j   e_j = s + 2 u max(1, log S) + u |z_j| + u (log S - z_j)
    row loss l = sum_j q_j (log S - z_j):  E = sum_j q_j e_j + u (L_q + 1) l,
                                           L_q = ceil(log2 #{j: q_j != 0}), 0 for one label
    gradient g_j = (p_j Q - q_j) / D:      G_j = (p_j Q (u (|z_j| + 2) + s + u (L + 2)) + u |D g_j|) / D
                                                 + 2 u |g_j| + 2 t (Q + 1) / D + t

and the loss reduction adds u (ceil(log2 N) + 1) of the summed losses plus one final rounding
(for the mean, its division). The bound is SAFETY times that, for what first order leaves out.
It depends on the logits only through z: a kernel that does not subtract the row maximum
before rounding (and so loses u |max o|) is out of bound, as intended.
"""

from __future__ import annotations

import math

import numpy as np

SAFETY = 2.0


def _ceil_log2(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def bounds(case, logits: np.ndarray, q: np.ndarray, u: float, tiny: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Allowed absolute error of each loss element (shape of the reduced loss) and each gradient
    element (N x K) for `case` in a dtype of unit roundoff `u` whose smallest normal number is
    `tiny`: exp terms, probabilities and outputs below it may be flushed to zero (FTZ/DAZ)."""
    x = np.asarray(logits, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n, k = x.shape
    finite = np.isfinite(x)
    m = np.max(np.where(finite, x, -np.inf), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        z = np.where(finite, x - m, -np.inf)
        e = np.exp(z)
        big_s = e.sum(axis=1, keepdims=True)
        p = e / big_s
        absz = np.where(finite, np.abs(z), 0.0)
    log_k = _ceil_log2(k)
    w = (p * absz).sum(axis=1, keepdims=True)
    s = u * (w + 3 + log_k) + k * tiny
    with np.errstate(divide="ignore"):  # a row with no finite logit: log(0), its bound is moot
        log_s = np.log(big_s)
    term = np.where(q != 0, log_s - np.where(finite, z, 0.0), 0.0)  # log S - z_j >= 0
    e_j = s + 2 * u * np.maximum(1.0, log_s) + u * absz + u * term  # log's own 2 u is relative to log S
    row_loss = (q * term).sum(axis=1)
    # the weighted sum has as many terms as the row has labelled classes: one for index labels
    log_nnz = np.array([_ceil_log2(c) if c > 1 else 0 for c in (q != 0).sum(axis=1)])
    row_err = (q * e_j).sum(axis=1) + u * (log_nnz + 1) * row_loss
    big_q = q.sum(axis=1, keepdims=True)
    denom = max(n, 1) if case.reduction == "mean" else 1  # an empty batch's bound is 0, not 0 / 0
    dg = p * big_q - q  # D * g
    grad_err = (p * big_q * (u * (absz + 2) + s + u * (log_k + 2)) + u * np.abs(dg)) / denom \
        + 2 * u * np.abs(dg) / denom + 2 * tiny * (big_q + 1) / denom + tiny
    if case.reduction == "none":
        loss_err = row_err
    else:
        total = row_err.sum() + u * (_ceil_log2(n) + 1) * row_loss.sum()
        loss_err = np.asarray(total / denom + u * row_loss.sum() / denom)
    return SAFETY * loss_err, SAFETY * grad_err
