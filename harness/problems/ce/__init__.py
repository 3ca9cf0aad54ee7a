"""The plain softmax cross-entropy kind: logits (N, d1, ..., K) and labels; loss and gradient.

Its record (CE) and the modules beside it: cases.py (its suites and inputs), reference.py and
probs.py (the high-precision reference), error_model.py, metrics.py (natural scales, each output
against the reference), layout.py (rows and the case's shape), properties.py (the property
checks), repro.py and repro_templates/ (reproducers, shrink steps)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section, Timing

if TYPE_CHECKING:
    from pathlib import Path

    from xentcheck.core.cases import Case, Inputs
    from xentcheck.core.records import Result, VariantOutput
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.ce.reference import Reference

OUTPUTS = (
    OutputSpec("loss", "loss", "|loss| (per row, or the reduced loss)", tolerance="loss"),
    OutputSpec("grad", "gradient", "max(p * sum(q), q) per entry: the larger of the two terms of g = p sum(q) - q"),
)


def _validate(case: Case) -> None:
    if "b" in case.option_set:
        raise ValueError(f"option b (a bias) is for linear-CE cases only ({case.options!r})")


def _plain(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.ce import cases
    return cases.full_extras(dtype_names) if full else cases.plain_cases(dtype_names)


def _llm(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.ce.cases import llm_cases
    return llm_cases(dtype_names, full=full)


def _unnorm(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.ce.cases import unnorm_cases
    return unnorm_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> Inputs:
    from xentcheck.problems.ce.cases import make_ce_inputs
    return make_ce_inputs(case, seed)


def reference_key(case: Case, semantics: str) -> str:
    from xentcheck.problems.ce.reference import reference_key
    return reference_key(case, semantics)


def _reference(case: Case, inputs: Inputs, semantics: str) -> Reference:
    from xentcheck.problems.ce.reference import reference
    return reference(case, inputs, semantics)


def _reference_arrays(case: Case, ref: Reference) -> dict:
    """The loss (the labels' shape for reduction none) and the gradient in the logits' shape."""
    loss = ref.loss.reshape(case.loss_shape) if case.reduction == "none" else ref.loss
    return {"loss": loss, "grad": ref.grad.reshape(case.shape)}


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, Inputs]:
    from xentcheck.core.user_inputs import from_arrays
    return from_arrays(raw, "arrays", "inputs")


def _backend_inputs(case: Case, inputs: Inputs) -> Inputs:
    from xentcheck.problems.ce.layout import to_case
    return to_case(case, inputs)


def _compute(backend, v, case: Case, pristine: Inputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    """Run variant `v` on a copy of the case's inputs (handed over in the case's shape:
    problems.compute.run); with `properties` (the run's tolerance) the property checks too."""
    from xentcheck.problems import compute
    from xentcheck.problems.ce import layout
    result, out = compute.run(CE, backend, v, case, pristine, device, wanted=("grad",), input_names=("logits", "labels"))
    if result.status != "ok" or properties is None or "oor" in case.option_set:
        return result
    assert result.loss is not None and result.grads is not None  # run's "ok" carries the arrays
    loss, grad = result.loss, result.grads["grad"]
    if not layout.check(case, loss, grad):
        from xentcheck.problems.ce.properties import check_all
        out.loss, out.grad = layout.to_rows(case, loss, grad)
        start = time.perf_counter()
        result.properties = check_all(backend, v, case, pristine, out, result.inputs_modified, device, properties,
                                      all_variants, result.timings)
        result.timings["properties_seconds"] = time.perf_counter() - start
    return result


def _compare(case: Case, ref: Reference, output: VariantOutput, tolerances: Tolerances) -> dict:
    """Shapes, dtypes and values of an output that came back, against the reference."""
    import numpy as np

    from xentcheck.core.evaluate import dtype_reasons, values_verdict
    from xentcheck.problems.ce import layout
    from xentcheck.problems.ce.metrics import measure
    loss, grad = np.asarray(output.loss), np.asarray((output.grads or {}).get("grad"))
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name, "grad_dtype": output.grad_dtype or grad.dtype.name}
    reasons = layout.check(case, loss, grad)  # the case's shape: (N, d1, ..., K) and (N, d1, ...)
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    loss, grad = layout.to_rows(case, loss, grad)
    reasons, widened = dtype_reasons(case, out)
    out.update(measure(case, ref, {"loss": loss, "grad": grad}, tolerances))
    return {**out, **values_verdict(case, OUTPUTS, out, tolerances, reasons, widened)}


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.ce.repro import ce_candidates
    return ce_candidates(state)


def _shrink_note(case: Case, inputs: Inputs) -> str:
    from xentcheck.problems.ce.repro import spread_note
    return spread_note(case, inputs)


def _write_repro(folder: Path, name: str, record: Result, inputs: Inputs, case: Case, ref: Reference, shrunk: bool,
                 spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.ce.repro import write_ce
    return write_ce(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _timing(name: str):
    """A function of problems/ce/timing.py, imported when called (it imports NumPy)."""
    def call(*args):
        from xentcheck.problems.ce import timing
        return getattr(timing, name)(*args)
    return call


TIMING = Timing(grammar="NxK", parse=_timing("parse"), workload=_timing("workload"), check=lambda case: case.validate(),
                inputs=_timing("inputs"), floor_bytes=_timing("floor"), need_bytes=_timing("need"),
                floor_text="bytes >= N*K*(logit + gradient bytes) + N*(label + loss bytes) (N*K label bytes for "
                           "probability labels)", need_text="10 x the logits", label=lambda case: f"{case.rows} x {case.k}",
                shape_of=lambda case: (case.rows, case.k) if case.rows else None,  # extra dimensions: M x K rows
                default_shapes=((256, 1000), (1024, 8192), (1024, 32000), (512, 128256)))

CE = Problem(
    kind="ce", title="softmax cross-entropy", claims=lambda case: not case.d and not case.part and not case.spec,
    outputs=OUTPUTS,
    sections=(Section(10, _plain), Section(20, _llm), Section(40, _unnorm)),
    validate=_validate, make_inputs=_make_inputs, reference=_reference, reference_arrays=_reference_arrays,
    compute=_compute, compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro,
    dims=lambda case: case.dims, arrays=_arrays, array_keys=("logits",), shrink_note=_shrink_note,
    reference_key=reference_key, backend_inputs=_backend_inputs, timing=TIMING,
)
