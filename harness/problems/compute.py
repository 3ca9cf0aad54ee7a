"""A worker's run of one variant, for every kind (a record's `compute` calls it): run the variant on
a copy of the inputs, time it, read the loss and the declared gradients from what came back, and
check that the inputs were not modified. Each kind supplies only what differs: the gradients it
reads (`wanted`, and which of them may be missing), the input arrays an adapter must not modify,
and, on the returned output, its property checks."""

from __future__ import annotations

import time
import traceback
from collections.abc import Collection, Sequence
from typing import Any

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput, as_array, variant_info
from xentcheck.problems.base import Problem


def run(problem: Problem, backend, v, case: Case, pristine: Any, device: str, *, wanted: Sequence[str],
        optional: Collection[str] = (), input_names: Sequence[str]) -> tuple[VariantOutput, Any]:
    """(the variant's output, the backend's own returned object: None after an error). The inputs
    go to the backend as the record hands them over (`backend_inputs`); of the gradients `wanted`
    (declared names), those in `optional` are read only where the backend returned them. An input
    array of `input_names` that is None is not checked."""
    from xentcheck.backends.base import NotApplicable, named_grads
    inputs = pristine.copy()
    specs = {o.name: o for o in problem.outputs}
    start = time.perf_counter()
    try:
        out = backend.run_variant(v, case, problem.backend_inputs(case, inputs), device)
        seconds = time.perf_counter() - start
        loss = as_array(out.loss, specs[problem.outputs[0].name].label)
        named = named_grads(out, tuple(wanted))
        grads = {n: as_array(named.get(n), specs[n].label) for n in wanted
                 if n not in optional or named.get(n) is not None}
    except NotApplicable as exc:
        return VariantOutput("skipped", variant_info(v), reason=str(exc)), None
    except Exception as exc:
        return VariantOutput("error", variant_info(v), error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc(limit=-3)), None
    modified = [name for name in input_names if getattr(pristine, name) is not None
                and getattr(inputs, name).tobytes() != getattr(pristine, name).tobytes()]
    first = next(iter(grads.values()))  # the gradients' dtype, where the backend does not say it
    return VariantOutput("ok", variant_info(v), seconds=seconds, inputs_modified=modified,
                         loss_dtype=out.loss_dtype or loss.dtype.name, grad_dtype=out.grad_dtype or first.dtype.name,
                         notes=list(out.notes), loss=loss, grads=grads), out
