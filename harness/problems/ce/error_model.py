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
from dataclasses import dataclass

import numpy as np

SAFETY = 2.0


def _ceil_log2(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def _terms(p, absz, log_s, term, q, u: float, tiny: float, denom):
    """The rounding terms of the docstring for one set of rows: (row loss error E, row loss l,
    gradient error G, the sum's relative error s). `term` is log S - z_j where q_j != 0, else 0."""
    k = p.shape[1]
    log_k = _ceil_log2(k)
    w = (p * absz).sum(axis=1, keepdims=True)
    s = u * (w + 3 + log_k) + k * tiny
    e_j = s + 2 * u * np.maximum(1.0, log_s) + u * absz + u * term  # log's own 2 u is relative to log S
    row_loss = (q * term).sum(axis=1)
    # the weighted sum has as many terms as the row has labelled classes: one for index labels
    log_nnz = np.array([_ceil_log2(c) if c > 1 else 0 for c in (q != 0).sum(axis=1)])
    row_err = (q * e_j).sum(axis=1) + u * (log_nnz + 1) * row_loss
    big_q = q.sum(axis=1, keepdims=True)
    dg = p * big_q - q  # D * g
    grad_err = (p * big_q * (u * (absz + 2) + s + u * (log_k + 2)) + u * np.abs(dg)) / denom \
        + 2 * u * np.abs(dg) / denom + 2 * tiny * (big_q + 1) / denom + tiny
    return row_err, row_loss, grad_err, s


def _shifted(o: np.ndarray):
    """(finite mask, z = o - max, p = softmax, |z| (0 off the finite entries), log S, row max)."""
    finite = np.isfinite(o)
    m = np.max(np.where(finite, o, -np.inf), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        z = np.where(finite, o - m, -np.inf)
        e = np.exp(z)
        big_s = e.sum(axis=1, keepdims=True)
        p = e / big_s
        absz = np.where(finite, np.abs(z), 0.0)
    with np.errstate(divide="ignore"):  # a row with no finite logit: log(0), its bound is moot
        log_s = np.log(big_s)
    return finite, z, p, absz, log_s, m


def bounds(case, logits: np.ndarray, q: np.ndarray, u: float, tiny: float = 0.0,
           options: Options | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Allowed absolute error of each loss element (shape of the reduced loss) and each gradient
    element (N x K) for `case` in a dtype of unit roundoff `u` whose smallest normal number is
    `tiny`: exp terms, probabilities and outputs below it may be flushed to zero (FTZ/DAZ).
    A case with LLM-training options needs their `options` (options_of) and takes llm_bounds."""
    if options is not None:
        return llm_bounds(case, logits, q, u, tiny, options)
    x = np.asarray(logits, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n, k = x.shape
    finite, z, p, absz, log_s, _ = _shifted(x)
    term = np.where(q != 0, log_s - np.where(finite, z, 0.0), 0.0)  # log S - z_j >= 0
    denom = max(n, 1) if case.reduction == "mean" else 1  # an empty batch's bound is 0, not 0 / 0
    row_err, row_loss, grad_err, _ = _terms(p, absz, log_s, term, q, u, tiny, denom)
    if case.reduction == "none":
        loss_err = row_err
    else:
        total = row_err.sum() + u * (_ceil_log2(n) + 1) * row_loss.sum()
        loss_err = np.asarray(total / denom + u * row_loss.sum() / denom)
    return SAFETY * loss_err, SAFETY * grad_err


@dataclass(frozen=True)
class Options:
    """What the bound needs of a case's LLM-training options (docs/llm-options.md)."""
    scale: float | None  # s: the loss is CE(s x)
    softcap: float | None  # c: logits -> c tanh(y / c)
    zloss: float | None  # z: each counted row gains z lse^2
    counted: np.ndarray  # (M,) bool: the rows the z-loss applies to
    denom: float  # the mean's denominator of the cross-entropy, D
    denom_z: float  # ... and of the z-loss, D_z
    cotangent: np.ndarray | None  # () or (M,) float64: the upstream cotangent as the backend is fed it


def options_of(case, ref) -> Options | None:
    """The Options of `case` and its reference (None without LLM options)."""
    if not case.llm:
        return None
    labels, k = ref.inputs.labels, case.k
    counted = (labels >= 0) & (labels < k) if case.labels == "index" else np.ones(case.rows, dtype=bool)
    v = ref.inputs.cotangent
    return Options(case.logit_scale, case.softcap, case.zloss, counted,
                   case.rows if ref.denom is None else ref.denom, case.rows if ref.denom_z is None else ref.denom_z,
                   None if v is None else np.asarray(v, dtype=np.float64))


def _rounds(s: float | None) -> bool:
    """Whether multiplying by s rounds (s is not a power of two, or not representable)."""
    return s is not None and math.frexp(s)[0] != 0.5


def _sech2(w: np.ndarray) -> np.ndarray:
    """1 - tanh(w)^2 without cancellation: 4a / (1 + a)^2, a = exp(-2 |w|)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        a = np.exp(-2 * np.abs(w))
        return 4 * a / ((1 + a) * (1 + a))


@dataclass
class Transformed:
    """The final logits o = c tanh(s x / c) in float64 and what rounding them in the dtype does."""
    y: np.ndarray  # s x
    o: np.ndarray  # the final logits
    a: np.ndarray  # |o_j as computed - o_j| <= a_j
    chain: np.ndarray | None  # sech^2(y / c) (None without a cap)
    chain_hi: np.ndarray | None  # its largest value over the perturbed argument
    chain_err: np.ndarray | None  # |1 - t^2 as computed - sech^2(y / c)|
    magnitude: np.ndarray  # (M,) the magnitude the final logits are rounded at (0: not rounded)


def transform(x: np.ndarray, opts: Options, u: float, tiny: float) -> Transformed:
    """Scale then softcap x (float64), with each element's error as a dtype computes it:
    y = fl(s x) is off by 2 u |y| (s and the product rounded; 0 for a power of two, but for
    flushing); w = fl(y / c) adds 2 u |w| (c and the quotient); tanh is within 2 u, the product
    by c adds 2 u: a_j = c |tanh(w~) - tanh(w)| + 4 u |o| over the perturbed w~ (tanh is
    monotone, so its extremes are exact, not first order). The chain factor 1 - t~^2 is off by
    |sech^2(w~) - sech^2(w)| + 5 u t^2 (t~^2) + 2 u sech^2 (the subtraction) + tiny."""
    finite = np.isfinite(x)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x if opts.scale is None else x * opts.scale
        fy = np.isfinite(y)
        dy = np.zeros_like(x) if not _rounds(opts.scale) else np.where(fy, 2 * u * np.abs(y), 0.0)
        if opts.scale is not None:
            dy = dy + tiny  # a product below the smallest normal may be flushed
        dy = np.where(finite, dy, 0.0)
        if opts.softcap is None:
            mag = np.where(fy, np.abs(y), 0.0) if _rounds(opts.scale) else np.zeros_like(x)
            return Transformed(y, y, dy, None, None, None, mag.max(axis=1, initial=0.0))
        c = opts.softcap
        w = y / c
        aw = np.abs(w)
        dw = np.where(fy, dy / c + 2 * u * aw, 0.0)
        lo, hi = np.maximum(aw - dw, 0.0), aw + dw
        t = np.tanh(aw)
        o = c * np.tanh(w)
        dt = np.maximum(np.tanh(hi) - t, t - np.tanh(lo))
        a = c * dt + 4 * u * np.abs(o)
        chain, chain_lo, chain_hi = _sech2(w), _sech2(hi), _sech2(lo)
        t_hi = np.minimum(1.0, np.tanh(hi) * (1 + 2 * u))
        chain_err = np.maximum(chain - chain_lo, chain_hi - chain) + 5 * u * t_hi ** 2 + 2 * u * chain_hi + tiny
        # o is rounded at |o|; y at |y|, seen through the chain factor (the quotient y / c rounds)
        mag = np.where(fy, np.abs(o) + np.abs(y) * chain, np.abs(o)).max(axis=1, initial=0.0)
    return Transformed(y, o, a, chain, chain_hi, chain_err, mag)


def _spread(p: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far softmax and lse move when each o_j moves by at most a_j, exactly (not first
    order): (|p~_j - p_j| bound (N, K), B (N, 1)) with |lse(o~) - lse(o)| <= B =
    log sum_i p_i e^{a_i}. p~_j is largest when o_j rises by a_j and every other falls:
    p~_j / p_j <= e^{a_j} / (p_j e^{a_j} + sum_{i != j} p_i e^{-a_i}); smallest the other way.
    Written with expm1 and P_j = 1 - p_j so that nothing cancels as the a_j -> 0."""
    a = np.minimum(a, 700.0)  # the bound is vacuous long before exp overflows
    with np.errstate(invalid="ignore", over="ignore"):
        em_up = np.where(p > 0, p * np.expm1(a), 0.0)  # p_i (e^{a_i} - 1)
        em_dn = np.where(p > 0, -p * np.expm1(-a), 0.0)  # p_i (1 - e^{-a_i})
        n_up = np.maximum(em_up.sum(axis=1, keepdims=True) - em_up, 0.0)  # over i != j
        n_dn = np.maximum(em_dn.sum(axis=1, keepdims=True) - em_dn, 0.0)
        big_p = 1 - p
        up = p * (big_p * np.expm1(a) + n_dn) / (p * np.exp(a) + big_p - n_dn)
        dn = p * (n_up - big_p * np.expm1(-a)) / (p * np.exp(-a) + big_p + n_up)
        dev = np.minimum(1.0, np.fmax(up, dn))
        dev = np.where(np.isnan(dev) & ~np.isnan(p), 1.0, dev)
        b = np.log1p(em_up.sum(axis=1, keepdims=True))
    return dev, b


def llm_bounds(case, logits: np.ndarray, q: np.ndarray, u: float, tiny: float,
               opts: Options) -> tuple[np.ndarray, np.ndarray]:
    """bounds() for a case with LLM options (docs/tolerance-model.md, "LLM-training options").

    The final logits o are computed with an error a_j (transform); softmax and lse move by at
    most dev_j and B under it (_spread); the rounding terms of the plain model are then taken
    at the perturbed values (p + dev, |z| + a + max a, log S + B + max a, the loss terms + B +
    a_j) with the labels r themselves rounded (2 u). On top:
      z-loss: lse = m + log S is off by d = B + s + 2 u max(1, log S) + u (|lse| + B), so
              2 z lse p_j by 2 z (|lse| (dev_j + p_j (u (|z_j| + 2) + s + u)) + p_j d) + 4 u of
              itself, and z lse^2 by z ((|lse| + d)^2 - lse^2) + 4 u of itself;
      mean:   each part over its own denominator, which (a sum of weights) is off by
              u (ceil(log2 N) + 2) relative, then one rounding of their sum;
      chain:  the softcap's factor: sech^2 G + chain_err |g| + 3 u sech^2 |g| (the autodiff's
              c (.) / c and the product);
      scale:  |s| G + 2 u |s g|;  cotangent: |v| G + 2 u |v g| + tiny."""
    x = np.asarray(logits, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n, k = x.shape
    tr = transform(x, opts, u, tiny)
    finite, z, p, absz, log_s, m = _shifted(tr.o)
    dev, b = _spread(p, tr.a)
    amax = np.max(tr.a, axis=1, keepdims=True, initial=0.0)
    p_hi = np.minimum(1.0, p + dev)
    absz_hi = absz + tr.a + amax
    log_s_hi = log_s + b + amax
    with np.errstate(invalid="ignore"):
        term = np.where(q != 0, log_s - np.where(finite, z, 0.0), 0.0)
        term_hi = np.where(q != 0, term + b + tr.a, 0.0)
    row_err, row_hi, g_err, s = _terms(p_hi, absz_hi, log_s_hi, term_hi, q, u, tiny, 1)
    big_q = np.abs(q.sum(axis=1, keepdims=True))
    row_err = row_err + 2 * u * row_hi + big_q[:, 0] * b[:, 0] + (np.abs(q) * tr.a).sum(axis=1)
    g_ce_hi = np.abs(p * big_q - q) + big_q * dev
    g_err = g_err + big_q * dev + 6 * u * big_q * dev + 2 * u * (np.abs(q) + p_hi * big_q)
    lse = (m + log_s)[:, 0]
    zero_rows, zero_grad = np.zeros(n), np.zeros((n, k))
    z_err, z_hi, zg_err, zg_hi = zero_rows, zero_rows, zero_grad, zero_grad
    if opts.zloss is not None:
        zz = opts.zloss
        cnt = opts.counted
        d = b[:, 0] + s[:, 0] + 2 * u * np.maximum(1.0, log_s_hi[:, 0]) + u * (np.abs(lse) + b[:, 0])
        big = np.abs(lse) + d
        z_hi = np.where(cnt, zz * big ** 2, 0.0)
        z_err = np.where(cnt, zz * (big ** 2 - lse ** 2) + 4 * u * z_hi, 0.0)
        zg_hi = np.where(cnt[:, None], 2 * zz * big[:, None] * p_hi, 0.0)
        zg_err = np.where(cnt[:, None], 2 * zz * (np.abs(lse)[:, None] * (dev + p_hi * (u * (absz_hi + 2) + s + u))
                                                  + p_hi * d[:, None]) + 4 * u * zg_hi, 0.0) + tiny
    if case.reduction == "mean":
        dd = u * (_ceil_log2(n) + 2)
        inv, inv_z = inverse(opts.denom), inverse(opts.denom_z)
        g_hi = g_ce_hi * inv + zg_hi * inv_z
        g_err = (g_err + dd * g_ce_hi) * inv + (zg_err + dd * zg_hi) * inv_z + u * g_hi + tiny
        tail = u * (_ceil_log2(n) + 2) + dd
        loss_err = np.asarray((row_err.sum() + tail * row_hi.sum()) * inv + (z_err.sum() + tail * z_hi.sum()) * inv_z
                              + u * (row_hi.sum() * inv + z_hi.sum() * inv_z))
    else:
        g_hi = g_ce_hi + zg_hi
        g_err = g_err + zg_err + u * g_hi + tiny
        rows_err = row_err + z_err + u * (row_hi + z_hi)
        loss_err = rows_err if case.reduction == "none" else \
            np.asarray(rows_err.sum() + u * (_ceil_log2(n) + 2) * (row_hi + z_hi).sum())
    if tr.chain is not None:
        assert tr.chain_hi is not None and tr.chain_err is not None  # transform sets all three under a softcap
        g_err = tr.chain_hi * g_err + tr.chain_err * g_hi + 3 * u * tr.chain_hi * g_hi
        g_hi = tr.chain_hi * g_hi
    if opts.scale is not None:
        s_abs = abs(opts.scale)
        g_err, g_hi = s_abs * g_err + 2 * u * s_abs * g_hi + tiny, s_abs * g_hi
    if opts.cotangent is not None:
        v = np.abs(opts.cotangent)
        v = v[:, None] if v.ndim == 1 else v
        g_err = v * g_err + 2 * u * v * g_hi + tiny
    return SAFETY * loss_err, SAFETY * g_err


def inverse(d: float) -> float:
    """1 / D; 0 for D = 0 (every target ignored: a zero gradient, a NaN mean)."""
    return 1.0 / d if d > 0 else 0.0
