"""Comparing a distillation output (loss, the student's and the teacher's gradients) with its
reference: shapes, dtypes, then each output at its natural scale (reference.py). The "model"
preset's bound is u (3 + ceil(log2 K)) times the natural scale: the K-term sums of the loss and
of the softmax, pairwise or blocked, err by about log2 K u of it."""

from __future__ import annotations

import math

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.core.metrics import array_metrics
from xentcheck.core.tolerances import allowances


def model_bound(case: Case, scale) -> np.ndarray:
    return info(case.dtype).eps * (3 + math.ceil(math.log2(max(2, case.k)))) * np.asarray(scale)


def metrics_of(case: Case, what: str, tol_key: str, actual, expected, scale, tolerances) -> dict:
    rtol, atol = tolerances.get(case.dtype, tol_key)
    scale = np.asarray(scale, dtype=np.float64)
    bound = model_bound(case, scale)
    mine, others = allowances(tolerances, case.dtype, tol_key, expected, scale, bound)
    return array_metrics(actual, expected, case.dtype, rtol, atol, scale if tolerances.scaled else 1.0,
                         allowed=mine, natural=scale, others=others)


def compare_outputs(case: Case, ref, output, tolerances, outputs, want: dict[str, tuple], grad: str = "grad") -> dict:
    """A record's compare for the kinds whose outputs are a loss and named arrays judged by
    metrics_of (distillation, RL, GRPO, linear distillation): shapes against `want` (each
    output's expected shape), dtypes (`grad`: the gradient whose dtype is the record's
    grad_dtype), then each declared output at its natural scale. An output the backend may leave
    out (problems.compute checks which) and left out, as a detached teacher's, is not judged."""
    loss = np.asarray(output.loss)
    grads = {k: np.asarray(a) for k, a in (output.grads or {}).items()}
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name,
                 "grad_dtype": output.grad_dtype or (grads[grad].dtype.name if grad in grads else "")}
    got = {"loss": loss.shape, **{k: a.shape for k, a in grads.items()}}
    reasons = [f"{k} has shape {tuple(got[k])}, expected {want[k]}" for k in want if k in got
               and tuple(got[k]) != tuple(want[k])]
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    from xentcheck.core.evaluate import dtype_reasons, values_verdict
    reasons, widened = dtype_reasons(case, out)
    for spec in outputs:
        actual = loss if spec.name == "loss" else grads.get(spec.name)
        if actual is None:
            continue
        out[spec.name] = metrics_of(case, spec.name, spec.tolerance, actual, ref.get(spec.name),
                                    ref.scales[spec.name], tolerances)
    return {**out, **values_verdict(case, outputs, out, tolerances, reasons, widened)}


def compare_distill(case: Case, ref, output, tolerances, outputs) -> dict:
    """The distillation record's compare: loss (N,) or (), the student's and the teacher's gradients (N, K)."""
    return compare_outputs(case, ref, output, tolerances, outputs,
                           {"loss": (case.n,) if case.reduction == "none" else (), "grad": (case.n, case.k),
                            "tgrad": (case.n, case.k)})
