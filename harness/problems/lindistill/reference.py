r"""The linear distillation reference: the distillation reference (problems/distill/reference.py)
on the logits z_s = h_s W_s^T and z_t = h_t W_t^T, then the chain rule through the student's
linear layer. With G = dloss/dz_s (N x V) the distillation reference's student gradient:

    dh_s = G W_s   (N x D),   dW_s = G^T h_s   (V x D)

(the teacher is detached: no teacher gradients). The logits: 16- and 32-bit inputs in float64
(each product h_nd W_vd exact, the D-term sums within D 2^-53 of sum |h| |W|), float64 inputs by
the linear kind's compensated dot product (linear.reference.dot2) in long double; the divergence
then as the distillation kind computes it, in float64 or long double; dh and dW in that type.

Natural scales: an implementation in a dtype of unit roundoff u rounds logit z_nv at about
m_nv = |z_nv| + sum_d |h_nd| |W_vd|, which moves the row's probabilities by about u p w_n,
w_n = max_v m_nv / T for the student and for the teacher. So each entry of G is computed at
A_nv = g_n ((p_s + p_t) (1 + |log p_s| + |log p_t|) + p_s w_s,n + p_t w_t,n), g_n the row's factor
(T^2 with sq, over the denominator, 0 for an ignored row), and

    dh_nd at sum_v A_nv |W_vd|,   dW_vd at sum_n A_nv |h_nd|,

the loss at the distillation kind's scale plus g_n 2 (w_s,n + w_t,n) T summed over the counted rows.

Underflow: an entry of G, dh or dW below the dtype's smallest normal number t is rounded on the
subnormal grid (spacing 2 u t), an absolute error that no relative scale covers where the true
value is far below t (peaked rows: p = 1e-55 in float32 rounds to 0, correctly). So each counted
row's A_nv is at least t, and dh and dW at least t too (their own rounding): dW_vd at sum_n
A_nv |h_nd| + t, a floor of 8 u t, four subnormal spacings, under the default 8 u tolerance.
"""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info, numpy_working_type
from xentcheck.problems.distill.cases import DistillInputs
from xentcheck.problems.distill.cases import parse as parse_kd
from xentcheck.problems.distill.reference import distill_reference
from xentcheck.problems.lindistill.cases import LinDistillInputs, kd_case


class LinDistillReference:
    def __init__(self, loss, dh, dw, scales: dict, precision: str):
        self.loss, self.dh, self.dw, self.scales, self.precision = loss, dh, dw, scales, precision

    def get(self, name: str) -> np.ndarray | None:
        return {"loss": self.loss, "dh": self.dh, "dw": self.dw}.get(name)


def logits(h: np.ndarray, w: np.ndarray, dtype: str) -> np.ndarray:
    """h W^T in the working type (module docstring)."""
    if dtype == "float64":
        from xentcheck.problems.linear.reference import dot2
        return dot2(h, w)
    return h.astype(np.float64) @ w.astype(np.float64).T


def _log_softmax64(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True) if z.size else np.zeros((len(z), 1))
    return (z - m) - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def lindistill_reference(case: Case, inputs: LinDistillInputs, semantics: str = "plain") -> LinDistillReference:
    kd = kd_case(case)
    s = parse_kd(kd.spec)
    wide, precision = numpy_working_type(case.dtype)
    zs = logits(inputs.student_hidden, inputs.student_weight, case.dtype)
    zt = logits(inputs.teacher_hidden, inputs.teacher_weight, case.dtype)
    ref = distill_reference(kd, DistillInputs(zs, zt, inputs.labels), semantics)
    g = np.asarray(ref.grad, dtype=wide)
    dh = g @ inputs.student_weight.astype(wide)
    dw = g.T @ inputs.student_hidden.astype(wide)
    # natural scales (float64 is enough for a tolerance)
    t = float(s.temperature)
    counted = DistillInputs(zs, zt, inputs.labels).counted()
    denom = {"batchmean": int(counted.sum()), "sum": 1}[case.reduction]
    fac = np.where(counted, s.factor / t / max(denom, 1), 0.0)
    ls, lt = _log_softmax64(zs / t), _log_softmax64(zt / t)
    ps, pt = np.exp(ls), np.exp(lt)
    hs, ws = np.abs(inputs.student_hidden.astype(np.float64)), np.abs(inputs.student_weight.astype(np.float64))
    ht, wt = np.abs(inputs.teacher_hidden.astype(np.float64)), np.abs(inputs.teacher_weight.astype(np.float64))
    w_s = (np.abs(np.asarray(zs, dtype=np.float64)) + hs @ ws.T).max(axis=1, initial=0.0) / t
    w_t = (np.abs(np.asarray(zt, dtype=np.float64)) + ht @ wt.T).max(axis=1, initial=0.0) / t
    tiny = 2.0 ** info(case.dtype).min_exp  # the smallest normal number (docstring: underflow)
    a = fac[:, None] * ((ps + pt) * (1 + np.abs(ls) + np.abs(lt)) + ps * w_s[:, None] + pt * w_t[:, None]) \
        + tiny * counted[:, None]
    scales = {"loss": np.asarray(np.asarray(ref.scales["loss"], dtype=np.float64).sum()
                                 + (fac * 2 * (w_s + w_t) * t).sum()),
              "dh": a @ ws + tiny, "dw": a.T @ hs + tiny}
    return LinDistillReference(np.asarray(ref.loss), dh, dw, scales, precision)
