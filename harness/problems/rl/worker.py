"""A worker's run of one RL variant (the record's compute) and its comparison (the record's compare):
log-probabilities (N,), entropy (N,), and the gradients of A . log p and c . H (N, K). A variant
declares "t" in `Variant.options` when it takes a temperature."""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.metrics import metrics_of
from xentcheck.problems.rl.cases import RlInputs, parse

GRADS = ("entropy", "grad", "egrad")  # Output.grads carries the entropy beside the two gradients


def compute_rl(backend, v, case: Case, pristine: RlInputs, device: str, properties=None,
               all_variants=()) -> VariantOutput:
    if parse(case.spec).temperature != 1.0 and "t" not in v.options:
        return VariantOutput("skipped", variant_info(v), reason=f"{v.impl} takes no temperature ({case.spec})")
    from xentcheck.problems import compute
    from xentcheck.problems.rl import RL
    result, _ = compute.run(RL, backend, v, case, pristine, device, wanted=GRADS, input_names=RlInputs.ARRAYS)
    return result


def compare_rl(case: Case, ref, output, tolerances, outputs) -> dict:
    loss = np.asarray(output.loss)
    grads = {k: np.asarray(a) for k, a in (output.grads or {}).items()}
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name,
                 "grad_dtype": output.grad_dtype or (grads["grad"].dtype.name if "grad" in grads else "")}
    want = {"loss": (case.n,), "entropy": (case.n,), "grad": (case.n, case.k), "egrad": (case.n, case.k)}
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
