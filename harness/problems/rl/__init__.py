"""The RL policy-gradient kind: token log-probabilities and the entropy of softmax(z / T) from
logits z (N, K) and sampled tokens, with per-token advantages and entropy coefficients as the
upstream cotangents; outputs log p_y, H and the gradients of A . log p_y and c . H (docs/rl.md)."""

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
    from xentcheck.problems.rl.cases import RlInputs
    from xentcheck.problems.rl.reference import RlReference

OUTPUTS = (
    OutputSpec("loss", "log-probability", "max(1, |log p_y|) per token", tolerance="loss", short="log p"),
    OutputSpec("entropy", "entropy", "max(1, H) per token", tolerance="loss"),
    OutputSpec("grad", "log-probability gradient", "|A_n| / T per row", short="dlogp"),
    OutputSpec("egrad", "entropy gradient", "|c_n| (1 + sum p (|log p| + H)) / T per row", short="dH"),
)


def _validate(case: Case) -> None:
    from xentcheck.problems.rl.cases import validate
    validate(case)


def _cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.rl.cases import rl_cases
    return rl_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> RlInputs:
    from xentcheck.problems.rl.cases import make_inputs
    return make_inputs(case, seed)


def _reference(case: Case, inputs: RlInputs, semantics: str) -> RlReference:
    from xentcheck.problems.rl.reference import rl_reference
    return rl_reference(case, inputs, semantics)


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, RlInputs]:
    """A caller's {"policy_logits", "tokens", "advantages", ["coefficients"], ["spec"]} as a case."""
    import numpy as np

    from xentcheck.core.cases import Case
    from xentcheck.problems.rl.cases import RlInputs
    x = np.asarray(raw["policy_logits"])
    if x.ndim != 2:
        raise ValueError(f"policy_logits must be (N, K), got {x.shape}")
    n = x.shape[0]
    adv = np.asarray(raw["advantages"], dtype=x.dtype).reshape(n)
    coef = np.asarray(raw.get("coefficients", np.zeros(n)), dtype=x.dtype).reshape(n)
    case = Case("scale1e+0", x.dtype.name, n, x.shape[1], "index", "none", spec=str(raw.get("spec", "rl-lp")))
    case.validate()
    return case, RlInputs(x, np.asarray(raw["tokens"], dtype=np.int64), adv, coef)


def _compute(backend, v, case: Case, pristine: RlInputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    from xentcheck.problems.rl.worker import compute_rl
    return compute_rl(backend, v, case, pristine, device, properties, all_variants)


def _compare(case: Case, ref: RlReference, output: VariantOutput, tolerances: Tolerances) -> dict:
    from xentcheck.problems.rl.worker import compare_rl
    return compare_rl(case, ref, output, tolerances, OUTPUTS)


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.rl.repro import candidates
    return candidates(state)


def _write_repro(folder: Path, name: str, record: Result, inputs: RlInputs, case: Case, ref: RlReference,
                 shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.rl import repro
    return repro.write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _fuzz_draw(rng: Random, case: Case) -> Case:
    from xentcheck.core.cases import Case
    from xentcheck.problems.rl.cases import RlSpec
    t = rng.choice((1.0, 1.0, 0.7, 0.6, 1.5, 2.0))
    family = case.family if case.family.startswith(("scale", "offset")) else "scale1e+0"
    if family.startswith("offset") and rng.random() < 0.5:
        family = "offset-" + family[len("offset"):]
    n = max(1, min(case.n, (1 << 22) // case.k))
    return Case(family, case.dtype, n, case.k, "index", "none", spec=RlSpec(t, rng.random() < 0.3).token)


RL = Problem(
    kind="rl", title="RL log-probabilities", claims=lambda case: case.spec.startswith("rl-"), outputs=OUTPUTS,
    sections=(Section(37, _cases),), validate=_validate, make_inputs=_make_inputs, reference=_reference,
    reference_arrays=lambda case, ref: {o.name: ref.get(o.name) for o in OUTPUTS}, compute=_compute,
    compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro, dims=lambda case: f"{case.dims}_{case.spec}",
    arrays=_arrays, array_keys=("policy_logits", "tokens"), fuzz_draw=_fuzz_draw, fuzz_share=0.05,
    reductions=("none",),
)
