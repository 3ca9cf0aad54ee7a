"""A worker's run of one linear distillation variant (the record's compute) and its comparison
(the record's compare): the loss and the student's dh (N, D) and dW (V, D). A variant declares
what it takes in `Variant.options` as a distillation variant does (problems/distill/worker.py:
the divergences, the reductions, "t", "sq", "ign")."""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.metrics import metrics_of
from xentcheck.problems.distill.worker import needs
from xentcheck.problems.lindistill.cases import LinDistillInputs, kd_case, parse

GRADS = ("dh", "dw")


def compute_lindistill(backend, v, case: Case, pristine: LinDistillInputs, device: str, properties=None,
                       all_variants=()) -> VariantOutput:
    missing = [f for f in needs(kd_case(case)) if f not in v.options]
    if missing:
        return VariantOutput("skipped", variant_info(v), reason=f"{v.impl} takes no {', '.join(missing)} ({case.spec})")
    from xentcheck.problems import compute
    from xentcheck.problems.lindistill import LINDISTILL
    result, _ = compute.run(LINDISTILL, backend, v, case, pristine, device, wanted=GRADS,
                            input_names=LinDistillInputs.ARRAYS)
    return result


def compare_lindistill(case: Case, ref, output, tolerances, outputs) -> dict:
    loss = np.asarray(output.loss)
    grads = {k: np.asarray(a) for k, a in (output.grads or {}).items()}
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name,
                 "grad_dtype": output.grad_dtype or (grads["dh"].dtype.name if "dh" in grads else "")}
    d = parse(case.spec).d
    want = {"loss": (), "dh": (case.n, d), "dw": (case.k, d)}
    got = {"loss": loss.shape, **{k: a.shape for k, a in grads.items()}}
    reasons = [f"{k} has shape {tuple(got[k])}, expected {want[k]}" for k in want if k in got
               and tuple(got[k]) != want[k]]
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    from xentcheck.core.evaluate import dtype_reasons, values_verdict
    reasons, widened = dtype_reasons(case, out)
    for spec in outputs:
        actual = loss if spec.name == "loss" else grads.get(spec.name)
        out[spec.name] = metrics_of(case, spec.name, spec.tolerance, actual, ref.get(spec.name),
                                    ref.scales[spec.name], tolerances)
    return {**out, **values_verdict(case, outputs, out, tolerances, reasons, widened)}
