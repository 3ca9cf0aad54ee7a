"""The high-precision reference of linear-CE: loss and gradients w.r.t. h, W and b.

With logits o = h W^T + b (N x V), per-row CE as xentcheck.core.reference computes it (options
included) and G the gradient of v . loss w.r.t. the logits (G = (p sum(r) - r) x cotangent /
denominator, r the effective label weights):
    dh = G W   (N x D),   dW = G^T h   (V x D),   db = sum_n G_n   (V,)
Computed a chunk of rows at a time (never N x V at once): each chunk's logits, then
reference.reference on them (p, lse, G of the plain CE reference, reduction "sum" or "none"),
then its contribution to dh, dW and db.

Precision. 16- and 32-bit inputs: every product h_nd W_vd is exact in float64 and the D-term
sums err by at most about D 2^-53 of sum |h| |W|, far below the tested dtype's roundoff; the
gradients' products likewise in float64. float64 inputs: the logits by a compensated dot product
(Ogita, Rump and Oishi's Dot2: TwoProduct by Veltkamp splitting, TwoSum accumulation; as if
computed in twice float64's precision, then rounded to np.longdouble), the CE in longdouble,
and dh, dW, db in longdouble (64-bit significand: within (terms) 2^-64 of the natural scale);
tests/core/test_linear_reference.py checks it against mpmath.

Natural scales (the comparison's, see linear_metrics): an implementation in a dtype of unit
roundoff u rounds each logit at about m_nv = |o_nv| + sum_d |h_nd| |W_vd| (the product's
magnitude before it cancels), which moves p_nv by about u w_n p_nv with w_n = max_v m_nv. So each
entry of G is computed at A_nv = |G_nv| + c_n p_nv w_n + t (c_n = |v_n| sum(r_n) / D the row's
gradient scale, t the dtype's smallest normal: G below it is subnormal or flushed), and
    dh_nd at sum_v A_nv |W_vd|,   dW_vd at sum_n A_nv |h_nd|,   db_v at sum_n A_nv,
    a row loss at max(1, |l_n|, sum(r_n) w_n) (summed, then divided by D for the mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case, Inputs
from xentcheck.core.linear_cases import LinearInputs
from xentcheck.core.reference import reference, softmax_lse, working_precision

CHUNK_ELEMENTS = 1 << 18  # rows x V per chunk: a few 2 MiB float64 temporaries
OUTPUTS = ("loss", "dh", "dw", "db")


@dataclass
class LinearReference:
    loss: np.ndarray  # () for mean/sum, (N,) for none
    dh: np.ndarray  # (N, D)
    dw: np.ndarray  # (V, D)
    db: np.ndarray | None  # (V,) with a bias, else None
    precision: str
    scales: dict[str, np.ndarray]  # the natural scale of each entry of "loss", "dh", "dw", "db"
    row_loss: np.ndarray  # (N,) float64
    denom: float  # the mean's denominator (1 for sum and none)
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def get(self, what: str) -> np.ndarray | None:
        return getattr(self, what)


# --- compensated dot products (float64 inputs) -------------------------------------------

_SPLIT = 134217729.0  # 2^27 + 1


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a x b = p + e exactly (Dekker; no FMA needed). |a|, |b| < 2^996: no overflow in the split."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def dot2(h: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """h W^T (+ b) of float64 arrays (R, D) and (V, D), as if computed in twice float64's
    precision (Dot2), returned as np.longdouble (R, V)."""
    h, w = h.astype(np.float64), w.astype(np.float64)
    shape = (h.shape[0], w.shape[0])
    s = np.zeros(shape) if b is None else np.broadcast_to(b.astype(np.float64), shape).copy()
    c = np.zeros_like(s)
    wsplit = _split(w.T)  # (D, V) halves, once
    for j in range(h.shape[1]):
        a = h[:, j:j + 1]
        p = a * w[None, :, j]
        ah, al = _split(a)
        e = al * wsplit[1][j] - (((p - ah * wsplit[0][j]) - al * wsplit[0][j]) - ah * wsplit[1][j])
        s, e2 = _two_sum(s, p)
        c += e + e2
    return s.astype(np.longdouble) + c.astype(np.longdouble)


# --- the reference ------------------------------------------------------------------------

def logits_of(case: Case, inputs: LinearInputs, lo: int, hi: int) -> np.ndarray:
    """Rows lo:hi of o = h W^T + b in the working precision (float64, or longdouble by dot2)."""
    h, b = inputs.hidden[lo:hi], inputs.bias
    if case.dtype == "float64":
        return dot2(h, inputs.weight, b)
    o = h.astype(np.float64) @ inputs.weight.astype(np.float64).T
    return o if b is None else o + b.astype(np.float64)


def _ce_case(case: Case, rows: int) -> Case:
    """The plain CE case whose reference gives a chunk's rows: its options but b and ct,
    reduction sum (none stays none; the mean's division comes after)."""
    opts = "+".join(t for t in case.options.split("+") if t and t != "b" and not t.startswith("ct"))
    return Case(case.family if not case.family.startswith("offset") else "scale1e+0", case.dtype, rows, case.k,
                "index", "none" if case.reduction == "none" else "sum", opts)


def denominator(case: Case, inputs: LinearInputs, semantics: str) -> float:
    """The mean's denominator as `semantics` documents it (torch: the kept targets' weights)."""
    if case.reduction != "mean":
        return 1.0
    kept = (inputs.labels >= 0) & (inputs.labels < case.k)
    if semantics == "torch" and inputs.weights is not None:
        return float(inputs.weights.astype(np.float64)[inputs.labels[kept]].sum())
    if semantics in ("torch", "keras"):
        return float(kept.sum())
    return float(case.n)


def linear_reference(case: Case, inputs: LinearInputs, semantics: str = "plain") -> LinearReference:
    """Loss, dh, dW, db of `case` on `inputs` and their natural scales (the module docstring)."""
    prec = working_precision(case.dtype)
    wp = np.longdouble if case.dtype == "float64" else np.float64
    n, v, dim = case.n, case.k, case.d
    h, w = inputs.hidden.astype(wp), inputs.weight.astype(wp)
    h_abs, w_abs = np.abs(inputs.hidden.astype(np.float64)), np.abs(inputs.weight.astype(np.float64))
    denom = denominator(case, inputs, semantics)
    inv = 1.0 / denom if denom else 0.0
    ct = None if inputs.cotangent is None else inputs.cotangent.astype(wp)
    dh = np.zeros((n, dim), dtype=wp)
    dw = np.zeros((v, dim), dtype=wp)
    db = np.zeros(v, dtype=wp)
    s_dh, s_dw, s_db = np.zeros((n, dim)), np.zeros((v, dim)), np.zeros(v)
    row_loss, loss_scale = np.zeros(n), np.zeros(n)
    row_wide = np.zeros(n, dtype=wp)  # reduction none: the rows in wp (row_loss is float64)
    loss_total = wp(0)
    tiny = 2.0 ** dtypes.info(case.dtype).min_exp
    step = max(1, CHUNK_ELEMENTS // v)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        o = logits_of(case, inputs, lo, hi)
        part = Inputs(o, inputs.labels[lo:hi], inputs.target[lo:hi], inputs.weights, inputs.smoothing)
        ref = reference(_ce_case(case, hi - lo), part, semantics, wide=True)  # G in wp, options or not
        g = np.asarray(ref.grad).astype(wp)  # (rows, V): the unreduced (sum) gradient
        if case.reduction == "mean":
            g /= wp(denom) if denom else wp(np.inf)  # 1 / denom in float64 would round
        if ct is not None:
            g *= ct[lo:hi, None] if ct.ndim else ct
        dh[lo:hi] = g @ w
        dw += g.T @ h[lo:hi]
        db += g.sum(axis=0)
        rows = np.asarray(ref.row_loss, dtype=np.float64)
        row_loss[lo:hi] = rows
        if case.reduction == "none":
            row_wide[lo:hi] = np.asarray(ref.loss, dtype=wp)
        loss_total += np.asarray(ref.loss, dtype=wp).sum() if case.reduction != "none" else 0
        # natural scales (float64 is plenty for a scale)
        o64 = np.asarray(o, dtype=np.float64)
        mag = np.abs(o64) + h_abs[lo:hi] @ w_abs.T + (0 if inputs.bias is None else np.abs(inputs.bias.astype(np.float64)))
        wn = mag.max(axis=1) if v else np.zeros(hi - lo)
        p, _ = softmax_lse(o64)
        big_q = np.asarray(ref.label_sum, dtype=np.float64)
        c = big_q * (inv if case.reduction == "mean" else 1.0)
        if ct is not None:
            c = c * (np.abs(np.asarray(ct, dtype=np.float64))[lo:hi] if ct.ndim else abs(float(ct)))
        # + the dtype's smallest normal: an entry of G below it is subnormal (or flushed to zero) there
        a = np.abs(np.asarray(g, dtype=np.float64)) + (c * wn)[:, None] * p + tiny
        s_dh[lo:hi] = a @ w_abs
        s_dw += a.T @ h_abs[lo:hi]
        s_db += a.sum(axis=0)
        loss_scale[lo:hi] = np.fmax(np.fmax(1.0, np.abs(rows)), big_q * wn)
    if case.reduction == "none":
        loss = row_wide
        l_scale = loss_scale
    else:
        loss = np.asarray(loss_total / wp(denom) if case.reduction == "mean" and denom else loss_total)
        if case.reduction == "mean" and denom == 0:
            loss = np.asarray(np.nan)
        l_scale = np.asarray(np.fmax(1.0, loss_scale.sum() * (inv if case.reduction == "mean" else 1.0)))
    scales = {"loss": l_scale, "dh": s_dh, "dw": s_dw, "db": s_db}
    return LinearReference(loss, dh, dw, db if inputs.bias is not None else None, prec, scales, row_loss, denom)


def reference_for(case: Case, inputs, semantics: str = "plain"):
    """The case's reference, whatever its kind: linear_reference for a linear-CE case (its inputs a
    LinearInputs), else xentcheck.core.reference.reference (the pytest plugin's and repro's way in)."""
    return linear_reference(case, inputs, semantics) if case.linear else reference(case, inputs, semantics)
