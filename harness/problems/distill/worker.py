"""A worker's run of one distillation variant (the record's compute).

A variant declares in `Variant.options` the features of the kind it takes: the divergences
("fkl", "rkl", "jsd"), the reductions ("batchmean", "sum", "mean", "none"), "t" (a temperature),
"sq" (T^2), "tg" (the teacher's gradient), "ign" (index labels with ignored rows); a case needing
one it lacks is skipped with the reason. A variant that detaches the teacher may return no "tgrad": it is then zeros."""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems.distill.cases import DistillInputs, parse


def needs(case: Case) -> list[str]:
    """The features a variant must declare to run this case."""
    s = parse(case.spec)
    out = [s.divergence, case.reduction]
    out += [name for name, on in (("t", s.temperature != 1.0), ("sq", s.squared), ("tg", s.teacher_grad),
                                  ("ign", case.labels == "index")) if on]
    return out


def compute_distill(backend, v, case: Case, pristine: DistillInputs, device: str, properties=None,
                    all_variants=()) -> VariantOutput:
    missing = [f for f in needs(case) if f not in v.options]
    if missing:
        return VariantOutput("skipped", variant_info(v), reason=f"{v.impl} takes no {', '.join(missing)} "
                                                                  f"({case.spec})")
    from xentcheck.problems import compute
    from xentcheck.problems.distill import DISTILL
    result, _ = compute.run(DISTILL, backend, v, case, pristine, device, wanted=("grad", "tgrad"),
                            optional=("tgrad",), input_names=DistillInputs.ARRAYS)
    if result.status == "ok" and result.grads is not None and "tgrad" not in result.grads:
        result.grads["tgrad"] = np.zeros_like(result.grads["grad"])  # a detached teacher: no gradient
    return result
