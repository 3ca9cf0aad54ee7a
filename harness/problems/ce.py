"""The plain softmax cross-entropy kind: logits (N, d1, ..., K) and labels; loss and gradient."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section

if TYPE_CHECKING:
    from pathlib import Path

    from xentcheck.core.cases import Case, Inputs
    from xentcheck.core.records import VariantOutput
    from xentcheck.core.reference import Reference
    from xentcheck.core.tolerances import Tolerances

OUTPUTS = (
    OutputSpec("loss", "loss", "|loss| (per row, or the reduced loss)", tolerance="loss"),
    OutputSpec("grad", "gradient", "max(p * sum(q), q) per entry: the larger of the two terms of g = p sum(q) - q"),
)


def _validate(case: Case) -> None:
    if "b" in case.option_set:
        raise ValueError(f"option b (a bias) is for linear-CE cases only ({case.options!r})")


def _plain(dtype_names, full: bool) -> list[Case]:
    from xentcheck.core import cases
    return cases.full_extras(dtype_names) if full else cases.plain_cases(dtype_names)


def _llm(dtype_names, full: bool) -> list[Case]:
    from xentcheck.core.cases import llm_cases
    return llm_cases(dtype_names, full=full)


def _unnorm(dtype_names, full: bool) -> list[Case]:
    from xentcheck.core.cases import unnorm_cases
    return unnorm_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> Inputs:
    from xentcheck.core.cases import make_ce_inputs
    return make_ce_inputs(case, seed)


def _reference(case: Case, inputs: Inputs, semantics: str) -> Reference:
    from xentcheck.core.reference import reference
    return reference(case, inputs, semantics)


def _reference_arrays(case: Case, ref: Reference) -> dict:
    """The loss (the labels' shape for reduction none) and the gradient in the logits' shape."""
    loss = ref.loss.reshape(case.loss_shape) if case.reduction == "none" else ref.loss
    return {"loss": loss, "grad": ref.grad.reshape(case.shape)}


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, Inputs]:
    from xentcheck.core.user_inputs import from_arrays
    return from_arrays(raw, "arrays", "inputs")


def _compute(backend, v, case: Case, pristine: Inputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    """Run variant `v` on a copy of the case's inputs (handed over in the case's shape); with
    `properties` (the run's tolerance) the property checks too."""
    from xentcheck.core import layout
    from xentcheck.core.records import VariantOutput, as_array, variant_info
    inputs = pristine.copy()
    start = time.perf_counter()
    try:
        out = backend.run_variant(v, case, layout.to_case(case, inputs), device)
        seconds = time.perf_counter() - start
        loss = as_array(out.loss, "loss")
        grad = as_array(out.grad, "gradient")
    except Exception as exc:
        return VariantOutput("error", variant_info(v), error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc(limit=-3))
    modified = [name for name in ("logits", "labels")
                if getattr(inputs, name).tobytes() != getattr(pristine, name).tobytes()]
    result = VariantOutput("ok", variant_info(v), seconds=seconds, inputs_modified=modified,
                           loss_dtype=out.loss_dtype or loss.dtype.name, grad_dtype=out.grad_dtype or grad.dtype.name,
                           notes=list(out.notes), loss=loss, grads={"grad": grad})
    if properties is not None and "oor" not in case.option_set and not layout.check(case, loss, grad):
        from xentcheck.core.properties import check_all
        out.loss, out.grad = layout.to_rows(case, loss, grad)
        start = time.perf_counter()
        result.properties = check_all(backend, v, case, pristine, out, modified, device, properties, all_variants,
                                      result.timings)
        result.timings["properties_seconds"] = time.perf_counter() - start
    return result


def _compare(case: Case, ref: Reference, output: VariantOutput, tolerances: Tolerances) -> dict:
    """Shapes, dtypes and values of an output that came back, against the reference."""
    import numpy as np

    from xentcheck.core import layout
    from xentcheck.core.evaluate import dtype_reasons, values_verdict
    from xentcheck.core.metrics import measure
    loss, grad = np.asarray(output.loss), np.asarray((output.grads or {}).get("grad"))
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name, "grad_dtype": output.grad_dtype or grad.dtype.name}
    reasons = layout.check(case, loss, grad)  # the case's shape: (N, d1, ..., K) and (N, d1, ...)
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    loss, grad = layout.to_rows(case, loss, grad)
    reasons, widened = dtype_reasons(case, out)
    out["loss"], out["grad"] = measure(case, ref, loss, grad, tolerances)
    return {**out, **values_verdict(case, OUTPUTS, out, tolerances, reasons, widened)}


def _shrink_steps(state: dict) -> list:
    from xentcheck.regress.repro import ce_candidates
    return ce_candidates(state)


def _shrink_note(case: Case, inputs: Inputs) -> str:
    from xentcheck.regress.repro import spread_note
    return spread_note(case, inputs)


def _write_repro(folder: Path, name: str, record: dict, inputs: Inputs, case: Case, ref: Reference, shrunk: bool,
                 spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.regress.repro import write_ce
    return write_ce(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


CE = Problem(
    kind="ce", title="softmax cross-entropy", claims=lambda case: not case.d, outputs=OUTPUTS,
    sections=(Section(10, _plain), Section(20, _llm), Section(40, _unnorm)),
    validate=_validate, make_inputs=_make_inputs, reference=_reference, reference_arrays=_reference_arrays,
    compute=_compute, compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro,
    dims=lambda case: case.dims, arrays=_arrays, array_keys=("logits",), shrink_note=_shrink_note,
)
