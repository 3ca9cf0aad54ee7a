"""A worker's run of one GRPO variant (the record's compute) and its comparison (the record's
compare): the reduced loss () and its gradient w.r.t. the new policy's logits (B, L, K). A variant
declares in `Variant.options` the settings it takes beyond the symmetric clip: "hi" (a separate
upper clip side), "kl" (the KL penalty), "t" (a temperature); its reductions (the loss types) as
"grpo", "bnpo", "drgrpo"."""

from __future__ import annotations

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.metrics import compare_outputs
from xentcheck.problems.grpo.cases import GrpoInputs, parse

GRADS = ("grad",)


def missing(v, case: Case) -> list[str]:
    """The case's settings (and loss type) the variant does not take."""
    s = parse(case.spec)
    need = {"hi": s.eps_high != s.eps_low, "kl": bool(s.beta), "t": s.temperature != 1.0, case.reduction: True}
    return [k for k, on in need.items() if on and k not in v.options]


def compute_grpo(backend, v, case: Case, pristine: GrpoInputs, device: str, properties=None,
                 all_variants=()) -> VariantOutput:
    lacks = missing(v, case)
    if lacks:
        return VariantOutput("skipped", variant_info(v), reason=f"{v.impl} takes no {', '.join(lacks)} ({case.spec}, "
                             f"loss type {case.reduction})")
    from xentcheck.problems import compute
    from xentcheck.problems.grpo import GRPO
    result, _ = compute.run(GRPO, backend, v, case, pristine, device, wanted=GRADS, input_names=GrpoInputs.ARRAYS)
    return result


def compare_grpo(case: Case, ref, output, tolerances, outputs) -> dict:
    return compare_outputs(case, ref, output, tolerances, outputs, {"loss": (), "grad": case.shape})
