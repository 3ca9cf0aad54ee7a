"""A worker's run of one RL variant (the record's compute) and its comparison (the record's compare):
log-probabilities (N,), entropy (N,), and the gradients of A . log p and c . H (N, K). A variant
declares "t" in `Variant.options` when it takes a temperature."""

from __future__ import annotations

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.metrics import compare_outputs
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
    n, k = case.n, case.k
    return compare_outputs(case, ref, output, tolerances, outputs,
                           {"loss": (n,), "entropy": (n,), "grad": (n, k), "egrad": (n, k)})
