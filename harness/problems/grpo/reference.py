r"""The GRPO reference: the clipped objective, reduced by its loss type, and its gradient w.r.t. the
new policy's logits, in float64 (80-bit long double for float64 cases).

Per token t (completion b, position l), a = z_t / T, lp = log_softmax(a), y the sampled token:

    log p = a_y - lse(a)            r = exp(log p - log p_old)
    loss_t = -min(r A_b, clip(r, 1 - e_lo, 1 + e_hi) A_b) + beta (exp(q - log p) - (q - log p) - 1)

with q = log p_ref (the k3 KL estimator; TRL's and Liger's). The min picks the clipped term, a
constant, exactly where A_b > 0 and r > 1 + e_hi, or A_b < 0 and r < 1 - e_lo; anywhere else it
picks r A_b (inside the range the two are equal; at A_b = 0 both are 0). So

    dloss_t / dlog p = -A_b r [not clipped] + beta (1 - exp(q - log p))
    dloss_t / dz_tj  = dloss_t / dlog p (delta_jy - p_j) / T            (d log p / dz_j, docs/rl.md)

The loss types reduce loss_t with weights w_t (m_t the completion mask, n_b = sum_l m_bl):
"grpo" w_t = m_t / (B max(1, n_b)), "bnpo" m_t / max(1, sum n_b), "drgrpo" m_t / (B L); the loss
is sum_t w_t loss_t, its gradient w_t dloss_t / dz_t.

Natural scales: a token's error in log p is about u (|log p| + w) (w = max |z| / T when T is not a
power of two, else 0), moving loss_t by |dloss_t / dlog p| <= |A| r + beta (1 + e^d), d = q - log p,
and loss_t itself is at most |A| r + beta (e^d + |d| + 1): s_t = (|A| r + beta (e^d + |d| + 1))
(3 + |log p| + w), the loss at sum_t w_t s_t; a gradient row at w_t (|A| r + beta (1 + e^d))
(2 + |log p| + w) / T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import numpy_working_type
from xentcheck.problems.grpo.cases import GrpoInputs, parse


@dataclass
class GrpoReference:
    loss: np.ndarray  # () the reduced loss
    grad: np.ndarray  # (B, L, K)
    clipped: np.ndarray  # (B, L) bool: the tokens whose clipped term the min picks (no policy gradient)
    ratio: np.ndarray  # (B, L) float64: r
    scales: dict = field(default_factory=dict)
    precision: str = "float64"

    def get(self, name: str) -> np.ndarray | None:
        return getattr(self, name, None) if name in ("loss", "grad") else None


def token_weights(mask: np.ndarray, loss_type: str, wide=np.float64) -> np.ndarray:
    """w_t of the loss type (module docstring), (B, L)."""
    m = mask.astype(wide)
    b, seq = m.shape
    if loss_type == "grpo":
        return m / (b * np.fmax(1, m.sum(axis=1, keepdims=True)))
    if loss_type == "bnpo":
        return m / max(1, m.sum())
    if loss_type == "drgrpo":
        return m / wide(b * seq)
    raise ValueError(f"unknown GRPO loss type {loss_type!r}")


def grpo_reference(case: Case, inputs: GrpoInputs, semantics: str = "plain") -> GrpoReference:
    s = parse(case.spec)
    wide, precision = numpy_working_type(case.dtype)
    t = wide(s.temperature)
    a = inputs.logits.astype(wide) / t
    m = a.max(axis=-1, keepdims=True)
    lp = (a - m) - np.log(np.exp(a - m).sum(axis=-1, keepdims=True))
    p = np.exp(lp)
    y = inputs.labels[..., None]
    logp = np.take_along_axis(lp, y, axis=-1)[..., 0]
    r = np.exp(logp - inputs.old_logp.astype(wide))
    adv = inputs.advantages.astype(wide)[:, None]
    lo, hi = 1 - wide(s.eps_low), 1 + wide(s.eps_high)
    clipped = ((adv > 0) & (r > hi)) | ((adv < 0) & (r < lo))
    per_token = -np.minimum(r * adv, np.clip(r, lo, hi) * adv)
    dlogp = np.where(clipped, 0, -adv * r)
    d = inputs.ref_logp.astype(wide) - logp
    if s.beta:
        per_token = per_token + wide(s.beta) * (np.expm1(d) - d)
        dlogp = dlogp - wide(s.beta) * np.expm1(d)
    w = token_weights(inputs.mask, case.reduction, wide)
    loss = (w * per_token).sum()
    g = -p
    np.put_along_axis(g, y, np.take_along_axis(g, y, axis=-1) + 1, axis=-1)
    grad = g * (w * dlogp)[..., None] / t
    f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    spread = 0.0
    if math.frexp(s.temperature)[0] != 0.5 and a.size:
        spread = np.abs(inputs.logits.astype(np.float64)).max(axis=-1) / s.temperature
    ar, ed, beta = np.abs(f64(adv * r)), np.exp(f64(d)), s.beta
    lpm = np.abs(f64(logp)) + spread
    wf = f64(w)
    scales = {"loss": f64((wf * (ar + beta * (ed + np.abs(f64(d)) + 1)) * (3 + lpm)).sum()),
              "grad": (wf * (ar + beta * (1 + ed)) * (2 + lpm) / s.temperature)[..., None]}
    return GrpoReference(loss, grad, clipped, f64(r), scales, precision)
