"""Reproducers and shrinking for GRPO results (the record's write_repro, shrink_steps): the .npz
holds the logits (widened exactly), tokens, mask, old and reference log-probabilities, advantages
and the reference outputs; the .py runs the recorded backend's variant through xentcheck's
registry, as the worker did, and prints each output's worst entry beside the reference.
Shrinking: each half of the completions, each half of the classes (every token kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.records import Result
from xentcheck.problems.grpo.cases import GrpoInputs

TEMPLATE = Path(__file__).resolve().parent / "repro_template.py.in"
OUTPUT_NAMES = ("loss", "grad")


def _sub(case: Case, inputs: GrpoInputs, rows: np.ndarray, cols: np.ndarray | None = None):
    x, y = inputs.logits[rows], inputs.labels[rows].copy()
    if cols is not None:
        remap = np.zeros(case.k, dtype=np.int64)
        remap[cols] = np.arange(len(cols))
        x, y = x[..., cols], remap[y]
    new = Case(case.family, case.dtype, x.shape[0], x.shape[2], "index", case.reduction, extra=case.extra,
               spec=case.spec)
    return new, GrpoInputs(np.ascontiguousarray(x), y, inputs.mask[rows].copy(), inputs.old_logp[rows].copy(),
                           inputs.ref_logp[rows].copy(), inputs.advantages[rows].copy())


def candidates(state: dict) -> list:
    case, inputs = state["case"], state["inputs"]
    b, k = case.n, case.k
    out = []
    if b > 1:
        out.append(("first half of the completions", *_sub(case, inputs, np.arange(b // 2))))
        out.append(("second half of the completions", *_sub(case, inputs, np.arange(b // 2, b))))
    if k > 2:
        need = set(inputs.labels.ravel().tolist())
        for name, part in (("first", range(k // 2)), ("second", range(k // 2, k))):
            kept = np.array(sorted(set(part) | need))
            if 2 <= len(kept) < k:
                out.append((f"{name} half of the classes ({len(kept)})", *_sub(case, inputs, np.arange(b), kept)))
    return out


def write(folder: Path, name: str, record: Result, inputs: GrpoInputs, case: Case, ref, shrunk: bool,
          spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.regress.repro import write_script
    wide = np.float64 if case.dtype == "float64" else np.float32
    arrays = {"logits": inputs.logits.astype(wide), "labels": inputs.labels, "mask": inputs.mask,
              "old_logp": inputs.old_logp.astype(wide), "ref_logp": inputs.ref_logp.astype(wide),
              "advantages": inputs.advantages.astype(wide)}
    return write_script(folder, name, record, case, shrunk, spec, prelude, "GRPO", TEMPLATE, arrays, ref, OUTPUT_NAMES)
