"""A worker's run of one linear-CE variant (worker.compute hands linear-CE cases here)."""

from __future__ import annotations

import time
import traceback

from xentcheck.backends.base import named_grads
from xentcheck.core.cases import Case
from xentcheck.core.linear_cases import LinearInputs
from xentcheck.core.linear_metrics import shape_problems
from xentcheck.core.records import VariantOutput


def compute_linear(backend, v, case: Case, pristine: LinearInputs, device: str, properties=None,
                   all_variants=()) -> VariantOutput:
    """Run linear variant `v` on a copy of the inputs; with `properties` the metamorphic checks too."""
    from xentcheck.run.worker import as_array as _array
    from xentcheck.run.worker import variant_info
    inputs = pristine.copy()
    start = time.perf_counter()
    try:
        out = backend.run_variant(v, case, inputs, device)
        seconds = time.perf_counter() - start
        loss = _array(out.loss, "loss")
        named = named_grads(out, ("dh", "dw", "db"))
        grads = {"dh": _array(named.get("dh"), "dh"), "dw": _array(named.get("dw"), "dw")}
        if named.get("db") is not None and "b" in case.option_set:
            grads["db"] = _array(named["db"], "db")
    except Exception as exc:
        return VariantOutput("error", variant_info(v), error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc(limit=-3))
    modified = [name for name in LinearInputs.ARRAYS if getattr(pristine, name) is not None
                and getattr(inputs, name).tobytes() != getattr(pristine, name).tobytes()]
    result = VariantOutput("ok", variant_info(v), seconds=seconds, inputs_modified=modified,
                           loss_dtype=out.loss_dtype or loss.dtype.name,
                           grad_dtype=out.grad_dtype or grads["dh"].dtype.name, notes=list(out.notes), loss=loss,
                           grads=grads)
    if properties is not None and not shape_problems(case, loss, grads):
        from xentcheck.core.linear_properties import check_linear
        result.properties = check_linear(backend, v, case, pristine, loss, grads, device, properties, all_variants)
    return result
