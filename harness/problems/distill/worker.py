"""A worker's run of one distillation variant (the record's compute).

A variant declares in `Variant.options` the features of the kind it takes: the divergences
("fkl", "rkl", "jsd"), the reductions ("batchmean", "sum", "mean", "none"), "t" (a temperature),
"sq" (T^2), "tg" (the teacher's gradient), "ign" (index labels with ignored rows); a case needing
one it lacks is skipped with the reason. A variant that detaches the teacher may return no "tgrad": it is then zeros."""

from __future__ import annotations

import time
import traceback

import numpy as np

from xentcheck.backends.base import named_grads
from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, as_array, variant_info
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
    inputs = pristine.copy()
    start = time.perf_counter()
    try:
        out = backend.run_variant(v, case, inputs, device)
        seconds = time.perf_counter() - start
        loss = as_array(out.loss, "loss")
        named = named_grads(out, ("grad", "tgrad"))
        grad = as_array(named.get("grad"), "grad")
        tg = named.get("tgrad")
        tgrad = np.zeros_like(grad) if tg is None else as_array(tg, "tgrad")
    except Exception as exc:
        return VariantOutput("error", variant_info(v), error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc(limit=-3))
    modified = [name for name in DistillInputs.ARRAYS if getattr(pristine, name) is not None
                and getattr(inputs, name).tobytes() != getattr(pristine, name).tobytes()]
    return VariantOutput("ok", variant_info(v), seconds=seconds, inputs_modified=modified,
                         loss_dtype=out.loss_dtype or loss.dtype.name, grad_dtype=out.grad_dtype or grad.dtype.name,
                         notes=list(out.notes), loss=loss, grads={"grad": grad, "tgrad": tgrad})
