"""Comparing a linear-CE output (loss, dh, dW, db) with its reference (the verdict rule of
xentcheck.core.evaluate, for linear-CE cases).

Each entry is judged at its natural scale (xentcheck.core.linear_reference: sum_v A_nv |W_vd|
for dh, sum_n A_nv |h_nd| for dW, sum_n A_nv for db), with the gradient's tolerance for dh, dW
and db. Under the "model" preset the bound is u (2 + ceil(log2 T)) times the natural scale, T
the number of terms the entry sums (D for a logit, so the loss; V for dh; N for dW and db):
recursive summation errs by up to (T - 1) u of the scale, pairwise and blocked summation (what
BLAS and reductions do) by about log2 T u.
"""

from __future__ import annotations

import math

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.core.metrics import array_metrics
from xentcheck.core.tolerances import PRESETS, default_table
from xentcheck.core.tolerances import allowed as allowed_by

GRADS = ("dh", "dw", "db")
LABELS = {"loss": "loss", "dh": "dh (gradient of h)", "dw": "dW (gradient of W)", "db": "db (gradient of b)"}


def terms(case: Case, what: str) -> int:
    return {"loss": case.d, "dh": case.k, "dw": case.n, "db": case.n}[what]


def model_bound(case: Case, ref, what: str) -> np.ndarray:
    u = info(case.dtype).eps
    return u * (2 + math.ceil(math.log2(max(2, terms(case, what))))) * np.asarray(ref.scales[what])


def measure_linear(case: Case, ref, loss: np.ndarray, grads: dict[str, np.ndarray], tolerances) -> dict[str, dict]:
    """array_metrics of each output under the run's tolerance and every preset's (their excess)."""
    out = {}
    for what in ("loss", *GRADS):
        expected = ref.get(what)
        if expected is None:
            continue
        actual = loss if what == "loss" else grads[what]
        tol_key = "loss" if what == "loss" else "grad"
        rtol, atol = tolerances.get(case.dtype, tol_key)
        scale = np.asarray(ref.scales[what])
        bound = model_bound(case, ref, what)
        e64 = np.asarray(expected, dtype=np.float64)
        others = {name: allowed_by(p["kind"], *default_table(name, case.dtype, tol_key), e64, scale, bound)
                  for name, p in PRESETS.items()}
        mine = allowed_by(tolerances.kind, rtol, atol, np.asarray(expected), scale, bound)
        out[what] = array_metrics(actual, expected, case.dtype, rtol, atol, scale if tolerances.scaled else 1.0,
                                  allowed=mine, natural=scale, others=others)
    return out


def compare_linear(case: Case, ref, output, tolerances) -> dict:
    """evaluate._compare for a linear-CE case: shapes, dtypes, then values of each output."""
    from xentcheck.run.linear_worker import shape_problems
    loss, grads = np.asarray(output.loss), {k: np.asarray(a) for k, a in (output.grads or {}).items()}
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name,
                 "grad_dtype": output.grad_dtype or (grads["dh"].dtype.name if "dh" in grads else "")}
    reasons = shape_problems(case, loss, grads)
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    for what in ("loss", "grad"):
        if out[f"{what}_dtype"] != case.dtype:
            reasons.append(f"{what} computed in {out[what + '_dtype']}, requested {case.dtype}")
    metrics = measure_linear(case, ref, loss, grads, tolerances)
    nonfinite = False
    for what, m in metrics.items():
        out[what] = m
        rtol, atol = tolerances.get(case.dtype, "loss" if what == "loss" else "grad")
        if m["n_nonfinite_mismatch"]:
            nonfinite = True
            reasons.append(f"{LABELS[what]}: {m['n_nonfinite_mismatch']} / {m['size']} NaN/inf where the reference "
                           f"differs, e.g. {m['worst_actual']} vs {m['worst_expected']} at index {m['worst_index']}")
        elif m["n_exceed"]:
            note = f"; error-model bound {m['worst_allowed']:.3g}" if tolerances.kind == "model" else \
                (f" x scale {m['worst_scale']:.3g}" if tolerances.scaled else "")
            reasons.append(
                f"{LABELS[what]}: {m['n_exceed']} / {m['size']} out of tolerance; greatest absolute difference "
                f"{m['abs_err']:.3g}, relative {m['rel_err']:.3g}, {m['ulp_err']:.3g} ULP; worst at index "
                f"{m['worst_index']}: {m['worst_actual']} vs {m['worst_expected']} "
                f"(allowed rtol {rtol:.3g}, atol {atol:.3g}{note})")
    return {**out, "verdict": "nonfinite" if nonfinite else ("fail" if reasons else "pass"), "reasons": reasons}
