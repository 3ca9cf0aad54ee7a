"""The GRPO kind: the clipped policy-gradient objective (PPO's, as GRPO, DAPO and Dr. GRPO write it)
of B completions of L tokens, from the new policy's logits (B, L, K), the sampled tokens, the old
and reference policies' log-probabilities, a completion mask and one advantage per completion;
outputs the loss reduced by its loss type and its gradient w.r.t. the logits (docs/rl.md)."""

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
    from xentcheck.problems.grpo.cases import GrpoInputs
    from xentcheck.problems.grpo.reference import GrpoReference

OUTPUTS = (
    OutputSpec("loss", "GRPO loss", "sum_t w_t (|A| r + beta (e^d + |d| + 1)) (3 + |log p|)", tolerance="loss"),
    OutputSpec("grad", "GRPO gradient", "w_t (|A| r + beta (1 + e^d)) (2 + |log p|) / T per token", short="dz"),
)


def _validate(case: Case) -> None:
    from xentcheck.problems.grpo.cases import validate
    validate(case)


def _cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.grpo.cases import grpo_cases
    return grpo_cases(dtype_names, full=full)


def _make_inputs(case: Case, seed: int) -> GrpoInputs:
    from xentcheck.problems.grpo.cases import make_inputs
    return make_inputs(case, seed)


def _reference(case: Case, inputs: GrpoInputs, semantics: str) -> GrpoReference:
    from xentcheck.problems.grpo.reference import grpo_reference
    return grpo_reference(case, inputs, semantics)


def _arrays(raw: Mapping[str, Any]) -> tuple[Case, GrpoInputs]:
    """A caller's {"policy_logits" (B, L, K), "tokens", "old_logps" (B, L), "advantages" (B,),
    ["ref_logps"], ["completion_mask"], ["spec"], ["loss_type"]} as a case."""
    import numpy as np

    from xentcheck.core.cases import Case
    from xentcheck.problems.grpo.cases import GrpoInputs
    x = np.asarray(raw["policy_logits"])
    if x.ndim != 3:
        raise ValueError(f"policy_logits must be (B, L, K), got {x.shape}")
    b, seq, k = x.shape
    old = np.asarray(raw["old_logps"], dtype=x.dtype).reshape(b, seq)
    ref = np.asarray(raw.get("ref_logps", old), dtype=x.dtype).reshape(b, seq)
    mask = np.asarray(raw.get("completion_mask", np.ones((b, seq))), dtype=np.int64).reshape(b, seq)
    case = Case("scale1e+0", x.dtype.name, b, k, "index", str(raw.get("loss_type", "grpo")), extra=(seq,),
                spec=str(raw.get("spec", "grpo-clip0.2")))
    case.validate()
    return case, GrpoInputs(x, np.asarray(raw["tokens"], dtype=np.int64).reshape(b, seq), mask, old, ref,
                            np.asarray(raw["advantages"], dtype=x.dtype).reshape(b))


def _compute(backend, v, case: Case, pristine: GrpoInputs, device: str, properties=None,
             all_variants=()) -> VariantOutput:
    from xentcheck.problems.grpo.worker import compute_grpo
    return compute_grpo(backend, v, case, pristine, device, properties, all_variants)


def _compare(case: Case, ref: GrpoReference, output: VariantOutput, tolerances: Tolerances) -> dict:
    from xentcheck.problems.grpo.worker import compare_grpo
    return compare_grpo(case, ref, output, tolerances, OUTPUTS)


def _shrink_steps(state: dict) -> list:
    from xentcheck.problems.grpo.repro import candidates
    return candidates(state)


def _write_repro(folder: Path, name: str, record: Result, inputs: GrpoInputs, case: Case, ref: GrpoReference,
                 shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.grpo import repro
    return repro.write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _fuzz_draw(rng: Random, case: Case) -> Case:
    from xentcheck.problems.grpo.fuzz import draw
    return draw(rng, case)


GRPO = Problem(
    kind="grpo", title="GRPO clipped objective", claims=lambda case: case.spec.startswith("grpo-"), outputs=OUTPUTS,
    sections=(Section(38, _cases),), validate=_validate, make_inputs=_make_inputs, reference=_reference,
    reference_arrays=lambda case, ref: {o.name: ref.get(o.name) for o in OUTPUTS}, compute=_compute,
    compare=_compare, shrink_steps=_shrink_steps, write_repro=_write_repro, dims=lambda case: f"{case.dims}_{case.spec}",
    arrays=_arrays, array_keys=("policy_logits", "tokens", "old_logps"), reductions=("grpo", "bnpo", "drgrpo"),
    fuzz_draw=_fuzz_draw, fuzz_share=0.05, fuzz_since=2,  # B x L x K clipped objectives among the drawn cases
)
