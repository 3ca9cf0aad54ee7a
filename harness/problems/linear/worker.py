"""A worker's run of one linear-CE variant (the record's compute: problems.compute.run, then the
metamorphic checks)."""

from __future__ import annotations

import time

from xentcheck.core.cases import Case
from xentcheck.core.records import VariantOutput
from xentcheck.problems.linear.cases import LinearInputs
from xentcheck.problems.linear.metrics import shape_problems


def compute_linear(backend, v, case: Case, pristine: LinearInputs, device: str, properties=None,
                   all_variants=()) -> VariantOutput:
    """Run linear variant `v` on a copy of the inputs; with `properties` the metamorphic checks too.
    db is read only for a case with a bias, and only where the backend returned one (shape_problems
    then reports it missing)."""
    from xentcheck.problems import compute
    from xentcheck.problems.linear import LINEAR
    bias = "b" in case.option_set
    result, _ = compute.run(LINEAR, backend, v, case, pristine, device, wanted=("dh", "dw", "db") if bias else ("dh", "dw"),
                            optional=("db",), input_names=LinearInputs.ARRAYS)
    if result.status == "ok" and properties is not None:
        loss, grads = result.loss, result.grads
        assert loss is not None and grads is not None  # run's "ok" carries the arrays
        if not shape_problems(case, loss, grads):
            from xentcheck.problems.linear.properties import check_linear
            start = time.perf_counter()
            result.properties = check_linear(backend, v, case, pristine, loss, grads, device, properties, all_variants)
            result.timings["properties_seconds"] = time.perf_counter() - start
    return result
