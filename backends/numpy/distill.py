"""NumPy distillation: the divergences and their analytic gradients (problems/distill/reference.py
derives them), computed in the case's dtype widened to at least float32, rounded once at the end:
log-softmax with the row maximum taken out, the JSD mixture's log by logaddexp, 0 log 0 as 0."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.distill.cases import parse
from xentcheck.problems.distill.reference import divergence

FEATURES = ("fkl", "rkl", "jsd", "t", "sq", "tg", "ign", "batchmean", "sum", "mean", "none")


def variants() -> list[Variant]:
    return [Variant("distill_analytic", "eager", ("soft", "index"), api="analytic KL / JSD and gradients",
                    options=FEATURES, kind="distill")]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return (x - m) - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def analytic(case: Case, zs: np.ndarray, zt: np.ndarray, counted: np.ndarray):
    """The loss and the gradients w.r.t. the student's and the teacher's logits zs, zt (given in the
    accumulation dtype), unrounded: lindistill.py chains the student's through h W^T."""
    spec = parse(case.spec)
    acc = zs.dtype.type
    t = acc(spec.temperature)
    d = divergence(spec, _log_softmax(zs / t), _log_softmax(zt / t))
    denom = {"batchmean": counted.sum(), "mean": counted.sum() * case.k}.get(case.reduction, 1)
    c = acc(spec.factor)
    rows = np.where(counted, d["row"], 0).astype(acc) * c
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = rows if case.reduction == "none" else rows.sum(dtype=acc) / acc(denom)
        g = (c / t / acc(denom) * counted.astype(acc))[:, None]
    return loss, d["gs"] * g, d["gt"] * g


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    dt = inputs.student.dtype
    acc = np.float32 if dt.itemsize < 4 else dt.type
    loss, gs, gt = analytic(case, inputs.student.astype(acc), inputs.teacher.astype(acc), inputs.counted())
    grads = {"grad": gs.astype(dt)}
    if parse(case.spec).teacher_grad:
        grads["tgrad"] = gt.astype(dt)
    return Output(np.asarray(loss).astype(dt), grads=grads)
