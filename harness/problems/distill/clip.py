r"""Keras's clipped forward KL (semantics "keras_clip"): the reference of `keras.losses.KLDivergence`
fed softmax(z_t / T) and softmax(z_s / T), and the cases whose clip the tested dtype cannot decide.

Keras (keras/src/losses/losses.py, kl_divergence) computes

    y_true = clip(p_t, eps, 1),  y_pred = clip(p_s, eps, 1),  sum(y_true * log(y_true / y_pred), -1)

with eps = backend.epsilon() = 1e-7 converted to the tensors' dtype (1.19e-7 in float16, 1.0012e-7
in bfloat16; `epsilon`). A row of two or more finite logits has p < 1, so with c(p) = max(p, eps)

    L = sum_j c(p_t,j) (log c(p_t,j) - log c(p_s,j))

(a -inf logit: p = 0, c(p) = eps, a finite term). The clip's derivative is I_j = [p_s,j >= eps]
(TF clip_by_value and torch.clamp pass the gradient for eps <= p <= 1, jnp.clip half of it at
p = eps exactly: a tie the band below takes out). The teacher is detached (y_true), so through the
student's clip v_j = dL/dp_s,j = -c(p_t,j) I_j / p_s,j, and through its softmax (a softmax's VJP
is v -> p (v - sum_k p_k v_k))

    dL/da_j = -c(p_t,j) I_j + p_s,j S,    S = sum_k c(p_t,k) I_k,

a = z_s / T; then divided by T, times T^2 with "sq", over the reduction's denominator as for every
divergence (reference.py). S is formed as 1 + sum_k [I_k max(eps - p_t,k, 0) - (1 - I_k) p_t,k]
(sum p_t = 1): exactly 1 where no clip acts, so there L and dL/da are forward KL's,
sum p_t (log p_t - log p_s) and p_s - p_t, to the last bit of the reference.

Properties (what differs from forward KL): the clipped rows sum to more than 1, so L is not a KL
and can be negative; by the log-sum inequality L >= sum c(p_t) - sum c(p_s) >= -K eps (sum c(p_t)
>= 1, sum c(p_s) <= 1 + K eps). L = 0 for a teacher equal to the student, and the rows of dL/da
still sum to 0 (-S + S sum p_s).

Natural scales, forward KL's with c(p) for p: a row's loss at S_L = sum_j c(p_t,j) (|log c(p_t,j)| +
|log c(p_s,j)|) (+ w, at least 1), a gradient row at 1 + sum_j (c(p_t,j) I_j + p_s,j |S|) (+ w);
unclipped, sum (p_t + p_s): the present ones.

The clip's edge (`undecidable`). The loss is continuous in p, the gradient is not: where p_s,j
lies so close to eps that the dtype cannot tell which side, I_j is undecided and the gradient may
be either. A probability computed in the dtype errs by p c_j u + s, s the dtype's smallest
subnormal, c_j = |a_j - m| + (|a_j| + |m| where T is not a power of two) + 3 + ceil(log2 K), m the
row maximum: fl(z_j / T) errs by u |a_j| (exact for a power of two), a_j - m by u |a_j - m| on top
of the errors of a_j and m, exp turns an argument's absolute error into that relative error and
adds its own rounding, the K-term sum errs by ceil(log2 K) u (pairwise or blocked), the division
by one more u (3: exp, subtraction, division); below the smallest normal, exp and the division
round to the subnormal grid of spacing s, half a spacing each. float16's eps is 2 s, on that grid:
every p in [1.5 s, 2.5 s) computes to eps exactly, where jnp.clip passes half the gradient (TF and
torch all of it), so the band is |p_s,j - eps| <= p_s,j c_j u + s (p = 4e-18 rounds to 0 or s:
clipped; 1.33e-7 to eps: undecided). A flip of I_j moves dL/da_j by c(p_t,j) (1 - p_s,j) and the
others by p_s,k c(p_t,j): at most c(p_t,j) in any entry. So a case is undecidable where the
band's entries of a row can move its gradient by more than one u of its natural scale (an eighth
of the default 8 u tolerance): sum over them of c(p_t,j) > u (1 + the row's gradient magnitudes +
w); smaller flips stay within the tolerance and are judged. Rounding p_s,j to
1 (the others summing below u) halves v_j on JAX: dL/da_j = p_j (v_j - sum p v) does not depend on
v_j to first order and the others move by p_k c(p_t,j) / 2 < u / 2: not undecidable.
"""

from __future__ import annotations

import math

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.problems.distill.cases import DistillInputs, DistillSpec, parse

SEMANTICS = "keras_clip"
EPSILON = 1e-7  # keras.backend.epsilon()


def epsilon(dtype: str) -> float:
    """Keras's epsilon as the tested dtype rounds it (ops.clip converts it to the tensor's dtype)."""
    return float(info(dtype).np_type(EPSILON))


def check(spec: DistillSpec) -> None:
    """The clipped semantics model forward KL with a detached teacher only (KLDivergence's case)."""
    if spec.divergence != "fkl" or spec.teacher_grad:
        raise ValueError(f"the {SEMANTICS} reference is forward KL with a detached teacher; not {spec.token}")


def clipped_fkl(ls: np.ndarray, lt: np.ndarray, eps: float) -> dict:
    """divergence() of reference.py for the clipped forward KL (module docstring): the per-row loss,
    the unscaled student gradient d/da, a zero teacher gradient, and the magnitudes, from the
    log-probabilities (any float type)."""
    ps, pt = np.exp(ls), np.exp(lt)
    e = ls.dtype.type(eps)
    keep = ps >= e  # I: where the student's clip passes the gradient
    ct = np.maximum(pt, e)
    lct = np.where(pt >= e, lt, np.log(e))
    lcs = np.where(keep, ls, np.log(e))
    diff = lct - lcs
    row = (ct * diff).sum(axis=1)
    s = 1 + np.where(keep, np.maximum(e - pt, 0), -pt).sum(axis=1, keepdims=True)
    ctk = np.where(keep, ct, 0)
    gs = ps * s - ctk
    mag = (ct * (np.abs(lct) + np.abs(lcs))).sum(axis=1)
    mag_s = (ctk + ps * np.abs(s)).sum(axis=1)
    return {"row": row, "gs": gs, "gt": np.zeros_like(gs), "mag": mag, "mag_s": mag_s, "mag_t": np.zeros_like(row)}


def _softmax(z: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a = z / T, m the rows' finite maxima, p) in float64."""
    a = z.astype(np.float64) / t
    with np.errstate(invalid="ignore"):
        m = np.where(np.isfinite(a), a, -np.inf).max(axis=1, keepdims=True)
        p = np.exp(a - m)
    return a, m, p / p.sum(axis=1, keepdims=True)


def undecidable(case: Case, inputs: DistillInputs) -> str | None:
    """Why the tested dtype cannot decide the student's clip on a gradient entry that matters
    (module docstring), or None."""
    spec = parse(case.spec)
    d, t = info(case.dtype), spec.temperature
    u, eps, sub = d.eps, epsilon(case.dtype), 2.0 ** (d.min_exp - d.digits + 1)
    a, m, ps = _softmax(inputs.student, t)
    b, _, pt = _softmax(inputs.teacher, t)
    pow2 = math.frexp(t)[0] == 0.5
    with np.errstate(invalid="ignore"):
        c = np.abs(a - m) + (0 if pow2 else np.abs(a) + np.abs(m)) + 3 + math.ceil(math.log2(max(2, case.k)))
        band = (ps > 0) & (np.abs(ps - eps) <= ps * c * u + sub)  # p = 0 only from a -inf logit: exact
        finite = lambda x: np.where(np.isfinite(x), np.abs(x), 0).max(axis=1)  # noqa: E731
    w = 0.0 if pow2 else finite(a) + finite(b)
    with np.errstate(divide="ignore"):
        mag_s = clipped_fkl(np.log(ps), np.log(pt), eps)["mag_s"]
    moved = np.where(band, np.maximum(pt, eps), 0).sum(axis=1)
    worst = moved / (u * (1 + mag_s + w))
    if not (worst > 1).any():
        return None
    i = int(np.argmax(worst))
    j = int(np.argmax(np.where(band[i], pt[i], -1)))
    return (f"the student's probability {ps[i, j]:.4g} (row {i}, class {j}) is within the {case.dtype} "
            f"softmax's error of KLDivergence's clip at {eps:.4g}: which side it falls is undecided, and "
            f"the gradient moves by {worst[i]:.3g} u of its scale between them")
