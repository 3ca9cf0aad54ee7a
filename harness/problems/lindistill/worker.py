"""A worker's run of one linear distillation variant (the record's compute) and its comparison
(the record's compare): the loss and the student's dh (N, D) and dW (V, D). A variant declares
what it takes in `Variant.options` as a distillation variant does (problems/distill/worker.py:
the divergences, the reductions, "t", "sq", "ign")."""

from __future__ import annotations

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.metrics import compare_outputs
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
    d = parse(case.spec).d
    return compare_outputs(case, ref, output, tolerances, outputs,
                           {"loss": (), "dh": (case.n, d), "dw": (case.k, d)}, grad="dh")
