"""Reproducers and shrinking for RL results (the record's write_repro, shrink_steps): the .npz holds
the logits (widened exactly), tokens, advantages, entropy coefficients and the reference outputs;
the .py runs the recorded backend's variant through xentcheck's registry, as the worker did, and
prints each output's worst entry beside the reference. Shrinking: the worst row alone, each half of
the rows, each half of the classes (every row's token and largest logit kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.records import Result
from xentcheck.problems.rl.cases import RlInputs

TEMPLATE = Path(__file__).resolve().parent / "repro_template.py.in"
OUTPUT_NAMES = ("loss", "entropy", "grad", "egrad")


def _sub(case: Case, inputs: RlInputs, rows: np.ndarray, cols: np.ndarray | None = None):
    x, y = inputs.logits[rows], inputs.labels[rows].copy()
    if cols is not None:
        remap = np.zeros(case.k, dtype=np.int64)
        remap[cols] = np.arange(len(cols))
        x, y = x[:, cols], remap[y]
    new = Case(case.family, case.dtype, x.shape[0], x.shape[1], "index", "none", spec=case.spec)
    return new, RlInputs(np.ascontiguousarray(x), y, inputs.advantages[rows].copy(), inputs.coefficients[rows].copy())


def candidates(state: dict) -> list:
    case, inputs = state["case"], state["inputs"]
    n, k = case.n, case.k
    out = []
    if n > 1:
        idx = ((state.get("grad") or {}).get("worst_index")) or ((state.get("loss") or {}).get("worst_index"))
        if idx:
            out.append((f"row {int(idx[0])} alone", *_sub(case, inputs, np.array([int(idx[0])]))))
        out.append(("first half of the rows", *_sub(case, inputs, np.arange(n // 2))))
        out.append(("second half of the rows", *_sub(case, inputs, np.arange(n // 2, n))))
    if k > 2:
        need = set(inputs.labels.tolist()) | set(np.argmax(inputs.logits.astype(np.float64), axis=1).tolist())
        for name, part in (("first", range(k // 2)), ("second", range(k // 2, k))):
            kept = np.array(sorted(set(part) | need))
            if 2 <= len(kept) < k:
                out.append((f"{name} half of the classes ({len(kept)})", *_sub(case, inputs, np.arange(n), kept)))
    return out


def write(folder: Path, name: str, record: Result, inputs: RlInputs, case: Case, ref, shrunk: bool,
          spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.regress.repro import write_script
    wide = np.float64 if case.dtype == "float64" else np.float32
    arrays = {"logits": inputs.logits.astype(wide), "labels": inputs.labels,
              "advantages": inputs.advantages.astype(wide), "coefficients": inputs.coefficients.astype(wide)}
    return write_script(folder, name, record, case, shrunk, spec, prelude, "RL", TEMPLATE, arrays, ref, OUTPUT_NAMES)
