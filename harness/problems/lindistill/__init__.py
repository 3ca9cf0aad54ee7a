"""The linear distillation kind: a distillation divergence (problems/distill) between the softmax of
the teacher's logits h_t W_t^T and the student's h_s W_s^T, from hidden states and weights as fused
linear distillation losses take them (problems/linear's inputs); outputs the loss and the
student's dh and dW (docs/distillation.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section

if TYPE_CHECKING:
    from pathlib import Path
    from random import Random

    from xentcheck.core.cases import Case
    from xentcheck.core.records import Result, VariantOutput
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.lindistill.cases import LinDistillInputs
    from xentcheck.problems.lindistill.reference import LinDistillReference

OUTPUTS = (
    OutputSpec("loss", "loss", "the distillation loss's scale plus the logits' rounding", tolerance="loss"),
    OutputSpec("dh", "student dh", "sum_v A_nv |W_vd|, A the logits' gradient's scale", short="dh"),
    OutputSpec("dw", "student dW", "sum_n A_nv |h_nd|", short="dW"),
)


def _validate(case: Case) -> None:
    from xentcheck.problems.lindistill.cases import validate
    validate(case)


def _cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.lindistill.cases import lindistill_cases
    return lindistill_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> LinDistillInputs:
    from xentcheck.problems.lindistill.cases import make_inputs
    return make_inputs(case, seed)


def _reference(case: Case, inputs: LinDistillInputs, semantics: str) -> LinDistillReference:
    from xentcheck.problems.lindistill.reference import lindistill_reference
    return lindistill_reference(case, inputs, semantics)


def _arrays(raw: Any) -> tuple[Case, LinDistillInputs]:
    """A caller's {"student_hidden" (N, D), "student_weight" (V, D), "teacher_hidden", "teacher_weight",
    "kd_spec" (a distillation segment, e.g. "kd-jsd0.5+t2"), ["labels"], ["reduction"]} as a case."""
    import numpy as np

    from xentcheck.core.cases import Case
    from xentcheck.problems.lindistill.cases import LinDistillInputs
    hs, ws = np.asarray(raw["student_hidden"]), np.asarray(raw["student_weight"])
    ht, wt = np.asarray(raw["teacher_hidden"], dtype=hs.dtype), np.asarray(raw["teacher_weight"], dtype=hs.dtype)
    if hs.ndim != 2 or ws.ndim != 2 or ws.shape[1] != hs.shape[1] or ht.shape != hs.shape or wt.shape != ws.shape:
        raise ValueError("student_hidden (N, D), student_weight (V, D) and the teacher's of the same shapes")
    labels = None if raw.get("labels") is None else np.asarray(raw["labels"], dtype=np.int64).reshape(len(hs))
    kd = str(raw["kd_spec"])
    case = Case("scale1e+0", hs.dtype.name, hs.shape[0], ws.shape[0], "soft" if labels is None else "index",
                str(raw.get("reduction", "batchmean")), spec=f"lkd-d{hs.shape[1]}+{kd.removeprefix('kd-')}")
    case.validate()
    return case, LinDistillInputs(hs, ws.astype(hs.dtype), ht, wt, labels)


def _compute(backend, v, case: Case, pristine: LinDistillInputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    from xentcheck.problems.lindistill.worker import compute_lindistill
    return compute_lindistill(backend, v, case, pristine, device, properties, all_variants)


def _compare(case: Case, ref: LinDistillReference, output: VariantOutput, tolerances: Tolerances) -> dict:
    from xentcheck.problems.lindistill.worker import compare_lindistill
    return compare_lindistill(case, ref, output, tolerances, OUTPUTS)


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.lindistill.repro import candidates
    return candidates(state)


def _write_repro(folder: Path, name: str, record: Result, inputs: LinDistillInputs, case: Case,
                 ref: LinDistillReference, shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.lindistill import repro
    return repro.write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _fuzz_draw(rng: Random, case: Case) -> Case:
    from xentcheck.problems.lindistill.fuzz import draw
    return draw(rng, case)


LINDISTILL = Problem(
    kind="lindistill", title="linear distillation", claims=lambda case: case.spec.startswith("lkd-"),
    outputs=OUTPUTS, sections=(Section(36, _cases),), validate=_validate, make_inputs=_make_inputs,
    reference=_reference, reference_arrays=lambda case, ref: {o.name: ref.get(o.name) for o in OUTPUTS},
    compute=_compute, compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro,
    dims=lambda case: f"{case.dims}_{case.spec}", arrays=_arrays,
    array_keys=("student_hidden", "student_weight", "teacher_hidden", "teacher_weight"),
    reductions=("batchmean", "sum"), fuzz_draw=_fuzz_draw, fuzz_share=0.05, fuzz_since=2,  # h W^T distillation drawn
)
