r"""The distillation reference: the loss and the gradients w.r.t. the student's and the teacher's
logits, in float64 (80-bit long double for float64 cases), with each output's natural scale.

Per row, a = z_s / T, b = z_t / T, log p_s = a - lse(a), log p_t = b - lse(b) (lse with the row
maximum taken out, so no exp overflows; a -inf logit has p = 0 and log p = -inf).

Forward KL(p_t || p_s) = sum_j p_t (log p_t - log p_s). With dp_i/da_j = p_i (d_ij - p_j), the
teacher's entropy term does not depend on a and d(-sum p_t log p_s)/da_j = -(p_t,j - p_s,j sum p_t),
so

    dKL/dz_s = (p_s - p_t) / T,        dKL/dz_t = p_t (log p_t - log p_s - KL) / T

(the first: sum p_t log p_t does not depend on a, and d(-sum_i p_t,i log p_s,i)/da_j =
-(p_t,j - p_s,j sum p_t); the second: a softmax's VJP is v -> p (v - E_p[v]), and
d(sum p_t log p_t)/db = p_t (log p_t - E_pt[log p_t]), d(-sum p_t log p_s)/db = -p_t (log p_s - E_pt[log p_s])).

Reverse KL(p_s || p_t) = sum p_s (log p_s - log p_t): the same with the roles swapped,

    dKL/dz_s = p_s (log p_s - log p_t - KL) / T,    dKL/dz_t = (p_t - p_s) / T.

Generalised JSD with weight beta: M = beta p_t + (1 - beta) p_s,

    JSD = beta KL(p_t || M) + (1 - beta) KL(p_s || M) = H(M) - beta H(p_t) - (1 - beta) H(p_s).

dJSD/dp_s,j = (1 - beta) (log p_s,j + 1) - (1 - beta) (log M_j + 1) = (1 - beta) (log p_s,j - log M_j),
and through the softmax (v -> p (v - E_p[v]), E_ps[log p_s - log M] = KL(p_s || M)):

    dJSD/dz_s = (1 - beta) p_s (log p_s - log M - KL(p_s || M)) / T
    dJSD/dz_t = beta p_t (log p_t - log M - KL(p_t || M)) / T

log p_s - log M = -log(beta e^d + 1 - beta) with d = log p_t - log p_s (and alike for the teacher),
from the difference, without overflow (_less_mixture): finite wherever p_s is, 0 exactly for equal
rows, never the NaN of a mixture formed as log(M) with M = 0 on classes both give no mass.
JSD <= -beta log beta - (1 - beta) log(1 - beta) (log 2 at beta = 1/2), with equality for disjoint
supports; each row of dz_s sums to 0 (sum_j p_j (v_j - E_p[v]) = 0).

Scaling: times T^2 with "sq"; a row of index labels holding IGNORE_INDEX counts for nothing; the
reduction divides by the counted rows (batchmean), by counted rows x K (mean) or by 1 (sum,
none: its gradient is that of sum(loss)). Without "tg" the teacher is detached: its gradient is 0.

Natural scales (the size at which an implementation in the dtype must round the terms before
they cancel): a row's loss is computed at S = sum over its terms of p (|log p| + |log q|) plus w,
w = (max |z_s| + max |z_t|) / T when T is not a power of two (z / T rounded at |z / T|), else 0; a
row of a gradient at 1 + (the sum of its entries' magnitudes before the subtraction) + w; both
times T^2 (sq) over the denominator. The "model" preset allows u (3 + ceil(log2 K)) of them.

Semantics "keras_clip" (Keras's KLDivergence, which clips both distributions to [1e-7, 1]): the
clipped forward KL of problems/distill/clip.py in place of the divergence, scaled alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import numpy_working_type
from xentcheck.problems.distill import clip
from xentcheck.problems.distill.cases import DistillInputs, DistillSpec, parse


@dataclass
class DistillReference:
    """The reference outputs (float64; long double for float64 cases) and their natural scales."""
    loss: np.ndarray  # () or (N,) for reduction none
    grad: np.ndarray  # (N, K) w.r.t. the student's logits
    tgrad: np.ndarray  # (N, K) w.r.t. the teacher's logits (0 when detached)
    row_loss: np.ndarray  # (N,) unreduced, unscaled divergence of each row (ignored rows too)
    scales: dict = field(default_factory=dict)  # output name -> natural scale (broadcasts)
    precision: str = "float64"

    def get(self, name: str) -> np.ndarray | None:
        return getattr(self, name, None)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=1, keepdims=True) if x.shape[1] else np.zeros((len(x), 1), x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return (x - m) - np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))


def _plogq(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """p * v with 0 where p is 0 (0 log 0, 0 (-inf - -inf))."""
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, p * np.where(p > 0, v, 0), 0)


def _pow2(t: float) -> bool:
    return math.frexp(t)[0] == 0.5


def _less_mixture(d: np.ndarray, w) -> np.ndarray:
    """log p - log(w q + (1 - w) p) = -log(w e^d + 1 - w) for d = log q - log p, without
    overflow: -d - log(w + (1 - w) e^-d) for d > 0, -log1p(w expm1(d)) otherwise."""
    with np.errstate(over="ignore", invalid="ignore"):
        pos = -d - np.log(w + (1 - w) * np.exp(-np.abs(d)))
        neg = -np.log1p(w * np.expm1(np.minimum(d, 0)))
    return np.where(d > 0, pos, neg)


def divergence(spec: DistillSpec, ls: np.ndarray, lt: np.ndarray) -> dict:
    """The per-row divergence, the unscaled gradients d/da and d/db, and the magnitudes (loss
    row, student-gradient row, teacher-gradient row) from log-probabilities (any float type)."""
    ps, pt = np.exp(ls), np.exp(lt)
    with np.errstate(invalid="ignore"):
        if spec.divergence == "fkl":
            diff = lt - ls
            row = _plogq(pt, diff).sum(axis=1)
            gs = ps - pt
            gt = _plogq(pt, diff - row[:, None])
            mag = _plogq(pt, np.abs(lt) + np.abs(ls)).sum(axis=1)
            mag_s = (ps + pt).sum(axis=1)
            mag_t = _plogq(pt, np.abs(diff) + np.abs(row)[:, None]).sum(axis=1)
        elif spec.divergence == "rkl":
            diff = ls - lt
            row = _plogq(ps, diff).sum(axis=1)
            gs = _plogq(ps, diff - row[:, None])
            gt = pt - ps
            mag = _plogq(ps, np.abs(ls) + np.abs(lt)).sum(axis=1)
            mag_s = _plogq(ps, np.abs(diff) + np.abs(row)[:, None]).sum(axis=1)
            mag_t = (ps + pt).sum(axis=1)
        else:
            b = ls.dtype.type(spec.beta)
            # log p_s - log M and log p_t - log M from the difference of the two log-probabilities,
            # exactly 0 for equal rows (log M formed first and subtracted is not)
            ds, dt = _less_mixture(lt - ls, b), _less_mixture(ls - lt, 1 - b)
            ds = np.where(np.isneginf(lt), -np.log1p(-b), ds)  # p_t = 0: M = (1 - b) p_s
            dt = np.where(np.isneginf(ls), -np.log(b), dt)  # p_s = 0: M = b p_t
            lm = np.where(ps > 0, ls - ds, lt - dt)
            kt = _plogq(pt, dt).sum(axis=1)
            ks = _plogq(ps, ds).sum(axis=1)
            row = b * kt + (1 - b) * ks
            gs = (1 - b) * _plogq(ps, ds - ks[:, None])
            gt = b * _plogq(pt, dt - kt[:, None])
            mag = b * _plogq(pt, np.abs(lt) + np.abs(lm)).sum(axis=1) + \
                (1 - b) * _plogq(ps, np.abs(ls) + np.abs(lm)).sum(axis=1)
            mag_s = (1 - b) * _plogq(ps, np.abs(ls) + np.abs(lm) + ks[:, None]).sum(axis=1)
            mag_t = b * _plogq(pt, np.abs(lt) + np.abs(lm) + kt[:, None]).sum(axis=1)
    return {"row": row, "gs": gs, "gt": gt, "mag": mag, "mag_s": mag_s, "mag_t": mag_t}


def distill_reference(case: Case, inputs: DistillInputs, semantics: str = "plain") -> DistillReference:
    """The reference of a distillation case (module docstring)."""
    spec = parse(case.spec)
    wide, precision = numpy_working_type(case.dtype)
    t = wide(spec.temperature)
    a = inputs.student.astype(wide) / t
    b = inputs.teacher.astype(wide) / t
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ls, lt = _log_softmax(a), _log_softmax(b)
        if semantics == clip.SEMANTICS:
            clip.check(spec)
            d = clip.clipped_fkl(ls, lt, clip.epsilon(case.dtype))
        else:
            d = divergence(spec, ls, lt)
    counted = inputs.counted()
    n_counted = int(counted.sum())
    denom = {"batchmean": n_counted, "mean": n_counted * case.k, "sum": 1, "none": 1}[case.reduction]
    c = wide(spec.factor)
    inv = wide(1) / wide(denom) if denom else wide(np.nan)
    keep = counted.astype(wide)
    row = d["row"]
    with np.errstate(invalid="ignore"):
        rows = np.where(counted, row, 0) * c
    loss = rows if case.reduction == "none" else rows.sum() * inv
    gfac = (c / t * inv * keep)[:, None]
    grad = d["gs"] * gfac
    tgrad = d["gt"] * gfac if spec.teacher_grad else np.zeros_like(grad)
    # natural scales
    w = 0.0
    if not _pow2(spec.temperature) and case.n and case.k:
        with np.errstate(invalid="ignore"):
            fin = lambda z: np.where(np.isfinite(z), np.abs(z), 0).max(axis=1)  # noqa: E731
            w = (fin(inputs.student.astype(np.float64)) + fin(inputs.teacher.astype(np.float64))) / \
                float(spec.temperature)
    loss_rows = np.fmax(1.0, d["mag"].astype(np.float64) + w) * float(c)
    loss_rows = np.where(counted, loss_rows, 0)
    fac = float(c / t) * (float(inv) if denom else 1.0)
    scales = {
        "loss": loss_rows if case.reduction == "none" else np.asarray(max(float(c), loss_rows.sum() * float(inv))
                                                                      if denom else float(c)),
        "grad": ((1 + d["mag_s"].astype(np.float64) + w) * fac)[:, None],
        "tgrad": ((1 + d["mag_t"].astype(np.float64) + w) * fac)[:, None],
    }
    return DistillReference(np.asarray(loss), grad, tgrad, row, scales, precision)
