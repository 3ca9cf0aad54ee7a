"""The distillation kind: a divergence (forward KL, reverse KL, generalised JSD) between the
teacher's and the student's softmax at a temperature, from their logits z_s and z_t (N, K);
outputs the loss and its gradients w.r.t. z_s and z_t (docs/distillation.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section

if TYPE_CHECKING:
    from pathlib import Path
    from random import Random

    from xentcheck.core.cases import Case
    from xentcheck.core.records import Result, VariantOutput
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.distill.cases import DistillInputs
    from xentcheck.problems.distill.reference import DistillReference

OUTPUTS = (
    OutputSpec("loss", "loss", "sum over a row's terms of p (|log p| + |log q|), at least 1", tolerance="loss"),
    OutputSpec("grad", "student gradient", "1 + the magnitudes of a row's terms before they cancel", short="dz_s"),
    OutputSpec("tgrad", "teacher gradient", "as the student's; 0 for a detached teacher", short="dz_t"),
)
REDUCTIONS = ("batchmean", "sum", "mean", "none")


def _validate(case: Case) -> None:
    from xentcheck.problems.distill.cases import validate
    validate(case)


def _cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.distill.cases import distill_cases
    return distill_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> DistillInputs:
    from xentcheck.problems.distill.cases import make_inputs
    return make_inputs(case, seed)


def _reference(case: Case, inputs: DistillInputs, semantics: str) -> DistillReference:
    from xentcheck.problems.distill.reference import distill_reference
    return distill_reference(case, inputs, semantics)


def _reference_arrays(case: Case, ref: DistillReference) -> dict:
    return {o.name: ref.get(o.name) for o in OUTPUTS}


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, DistillInputs]:
    """A caller's {"student", "teacher", "spec", "reduction", ["labels"], ["dtype"]} as a case."""
    import numpy as np

    from xentcheck.core.cases import Case
    from xentcheck.problems.distill.cases import DistillInputs
    zs, zt = np.asarray(raw["student"]), np.asarray(raw["teacher"])
    if zs.ndim != 2 or zs.shape != zt.shape:
        raise ValueError(f"student and teacher logits must be (N, K) of one shape, got {zs.shape} and {zt.shape}")
    labels = None if raw.get("labels") is None else np.asarray(raw["labels"], dtype=np.int64)
    dtype = str(raw.get("dtype", zs.dtype.name))
    case = Case("scale1e+0", dtype, zs.shape[0], zs.shape[1], "soft" if labels is None else "index",
                str(raw.get("reduction", "batchmean")), spec=str(raw["spec"]))
    case.validate()
    return case, DistillInputs(zs, zt, labels)


def _compute(backend, v, case: Case, pristine: DistillInputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    from xentcheck.problems.distill.worker import compute_distill
    return compute_distill(backend, v, case, pristine, device, properties, all_variants)


def _compare(case: Case, ref: DistillReference, output: VariantOutput, tolerances: Tolerances) -> dict:
    from xentcheck.problems.distill.metrics import compare_distill
    return compare_distill(case, ref, output, tolerances, OUTPUTS)


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.distill.repro import candidates
    return candidates(state)


def _write_repro(folder: Path, name: str, record: Result, inputs: DistillInputs, case: Case, ref: DistillReference,
                 shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.distill import repro
    return repro.write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _fuzz_draw(rng: Random, case: Case) -> Case:
    from xentcheck.problems.distill.fuzz import draw
    return draw(rng, case)


DISTILL = Problem(
    kind="distill", title="distillation", claims=lambda case: case.spec.startswith("kd-") and not case.part, outputs=OUTPUTS,
    sections=(Section(35, _cases),), validate=_validate, make_inputs=_make_inputs, reference=_reference,
    reference_arrays=_reference_arrays, compute=_compute, compare=_compare, shrink_steps=_shrink_steps,
    write_repro=_write_repro, dims=lambda case: f"{case.dims}_{case.spec}", arrays=_arrays,
    array_keys=("student", "teacher"), fuzz_draw=_fuzz_draw, fuzz_share=0.1, reductions=REDUCTIONS,
)
