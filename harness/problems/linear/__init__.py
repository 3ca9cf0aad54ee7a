"""The linear-CE kind: CE(h W^T + b, y) from hidden states h (N, D), a weight W (V, D) and an
optional bias b (V,); loss and the gradients dh, dW and db (docs/linear-ce.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section, Timing
from xentcheck.problems.ce import reference_key as ce_reference_key

if TYPE_CHECKING:
    from pathlib import Path
    from random import Random

    from xentcheck.core.cases import Case
    from xentcheck.core.records import Result, VariantOutput
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.linear.cases import LinearInputs
    from xentcheck.problems.linear.reference import LinearReference

OUTPUTS = (
    OutputSpec("loss", "loss", "sum_d |h_nd W_vd| + |b_v| over a row's logits", tolerance="loss"),
    OutputSpec("dh", "dh (gradient of h)", "sum_v A_nv |W_vd|", short="dh"),
    OutputSpec("dw", "dW (gradient of W)", "sum_n A_nv |h_nd|", short="dW"),
    OutputSpec("db", "db (gradient of b)", "sum_n A_nv", short="db"),
)


def _validate(case: Case) -> None:
    from xentcheck.problems.linear.cases import validate_linear
    validate_linear(case)


def _cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.linear.cases import linear_cases
    return linear_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> LinearInputs:
    from xentcheck.problems.linear.cases import make_linear_inputs
    return make_linear_inputs(case, seed)


def _reference(case: Case, inputs: LinearInputs, semantics: str) -> LinearReference:
    from xentcheck.problems.linear.reference import linear_reference
    return linear_reference(case, inputs, semantics)


def _reference_arrays(case: Case, ref: LinearReference) -> dict:
    """loss, dh, dw and db (with a bias); a streamed dW assembled from its blocks."""
    out = {o.name: ref.get(o.name) for o in OUTPUTS if ref.get(o.name) is not None}
    if ref.streamed:
        import numpy as np
        out["dw"] = np.concatenate([block for _, block, _ in ref.dw_blocks()])
        out = {o.name: out[o.name] for o in OUTPUTS if o.name in out}
    return out


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, LinearInputs]:
    from xentcheck.problems.linear.arrays import from_arrays
    return from_arrays(raw)


def _compute(backend, v, case: Case, pristine: LinearInputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    from xentcheck.problems.linear.worker import compute_linear
    return compute_linear(backend, v, case, pristine, device, properties, all_variants)


def _compare(case: Case, ref: LinearReference, output: VariantOutput, tolerances: Tolerances) -> dict:
    from xentcheck.problems.linear.metrics import compare_linear
    return compare_linear(case, ref, output, tolerances)


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.linear.repro import candidates
    return candidates(state)


def _write_repro(folder: Path, name: str, record: Result, inputs: LinearInputs, case: Case, ref: LinearReference,
                 shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.linear import repro
    return repro.write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _fuzz_draw(rng: Random, case: Case) -> Case:
    from xentcheck.problems.linear.fuzz import draw
    return draw(rng, case)


def _timing(name: str):
    """A function of problems/linear/timing.py, imported when called (it imports NumPy)."""
    def call(*args):
        from xentcheck.problems.linear import timing
        return getattr(timing, name)(*args)
    return call


# bench --linear-shapes: torch's composition, its fused op and that op's accurate options, unless
# --backends / --impls say otherwise
TIMING = Timing(grammar="NxDxV", parse=_timing("parse"), workload=_timing("workload"), check=_timing("check"),
                inputs=_timing("inputs"), floor_bytes=_timing("floor"), need_bytes=_timing("need"),
                floor_text="bytes >= 2*(N + V)*D*(input bytes) (read h and W, write dh and dW) + N*8 (labels) + the loss",
                need_text="4 x the logits N x V and 3 x h and W", label=lambda case: f"{case.n} x {case.d} x {case.k}",
                fields=lambda case: {"d": case.d, "v": case.k},
                shape_of=lambda case: (case.n, case.d, case.k) if case.n else None, default_backends=("torch",),
                default_impls=("linear_then_cross_entropy", "linear_cross_entropy", "linear_cross_entropy_accurate_c16"))

LINEAR = Problem(
    kind="linear", title="linear-CE", claims=lambda case: case.d > 0 and not case.part,
    outputs=OUTPUTS, sections=(Section(30, _cases),),
    validate=_validate, make_inputs=_make_inputs, reference=_reference, reference_arrays=_reference_arrays,
    compute=_compute, compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro,
    dims=lambda case: f"{case.dims}_lin{case.d}", arrays=_arrays, array_keys=("hidden", "linear_weight"),
    fuzz_draw=_fuzz_draw, fuzz_share=0.15,  # h W^T + b cases among the drawn ones
    reference_key=ce_reference_key,  # per row, plain CE's reference: its options read as plain CE's
    timing=TIMING,
)
