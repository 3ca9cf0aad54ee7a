"""NumPy linear distillation, analytically, a plugin author's example: the logits z = h W^T of
student and teacher, the loss and the gradient G of the student's logits from the distillation
adapter (numpy/distill.py's analytic), then the chain rule dh = G W_s, dW = G^T h_s; all in the
case's dtype widened to at least float32, rounded once at the end (docs/distillation.md)."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.backends.numpy.distill import analytic
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.lindistill.cases import kd_case


def variants() -> list[Variant]:
    return [Variant("lindistill_analytic", "eager", ("soft", "index"), api="h W^T; analytic KL / JSD; dh = G W, dW = G^T h",
                    options=("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean", "sum"), kind="lindistill")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    dt = inputs.student_hidden.dtype
    acc = np.float32 if dt.itemsize < 4 else dt.type
    hs, ws, ht, wt = (getattr(inputs, a).astype(acc) for a in inputs.ARRAYS[:4])
    counted = np.ones(case.n, bool) if inputs.labels is None else inputs.labels != IGNORE_INDEX
    loss, g, _ = analytic(kd_case(case), hs @ ws.T, ht @ wt.T, counted)
    return Output(np.asarray(loss).astype(dt), grads={"dh": (g @ ws).astype(dt), "dw": (g.T @ hs).astype(dt)})
