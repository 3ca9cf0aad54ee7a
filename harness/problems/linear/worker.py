"""A worker's run of one linear-CE variant (the record's compute: worker.compute hands it its cases)."""

from __future__ import annotations

import time
import traceback

from xentcheck.backends.base import named_grads
from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, as_array, variant_info
from xentcheck.problems.linear.cases import LinearInputs
from xentcheck.problems.linear.metrics import shape_problems


def compute_linear(backend, v, case: Case, pristine: LinearInputs, device: str, properties=None,
                   all_variants=()) -> VariantOutput:
    """Run linear variant `v` on a copy of the inputs; with `properties` the metamorphic checks too."""
    inputs = pristine.copy()
    start = time.perf_counter()
    try:
        out = backend.run_variant(v, case, inputs, device)
        seconds = time.perf_counter() - start
        loss = as_array(out.loss, "loss")
        named = named_grads(out, ("dh", "dw", "db"))
        grads = {"dh": as_array(named.get("dh"), "dh"), "dw": as_array(named.get("dw"), "dw")}
        if named.get("db") is not None and "b" in case.option_set:
            grads["db"] = as_array(named["db"], "db")
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
        from xentcheck.problems.linear.properties import check_linear
        start = time.perf_counter()
        result.properties = check_linear(backend, v, case, pristine, loss, grads, device, properties, all_variants)
        result.timings["properties_seconds"] = time.perf_counter() - start
    return result
