"""Reproducers and shrinking for distillation results (the record's write_repro, shrink_steps).

repro/<id>.npz holds the student's and the teacher's logits (widened exactly to float32 or
float64), the labels and the reference loss and gradients; repro/<id>.py loads the recorded
backend through xentcheck's registry and calls its recorded variant on them, as the worker did,
under the worker's numerics variables, and prints each output's worst entry beside the reference.

Shrinking tries the worst row alone, then each half of the rows, then each half of the classes
(each row keeps its largest student and teacher logit, and its label's class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.core.records import Result
from xentcheck.problems.distill.cases import DistillInputs

TEMPLATE = Path(__file__).resolve().parent / "repro_template.py.in"
OUTPUT_NAMES = ("loss", "grad", "tgrad")


def _sub(case: Case, inputs: DistillInputs, rows: np.ndarray, cols: np.ndarray | None = None):
    zs, zt = inputs.student[rows], inputs.teacher[rows]
    labels = None if inputs.labels is None else inputs.labels[rows].copy()
    if cols is not None:
        zs, zt = zs[:, cols], zt[:, cols]
        if labels is not None:
            remap = np.full(case.k, 0, dtype=np.int64)
            remap[cols] = np.arange(len(cols))
            kept = labels != IGNORE_INDEX
            labels[kept] = remap[labels[kept]]
    if labels is not None and not (labels != IGNORE_INDEX).any():
        return None
    new = Case(case.family, case.dtype, zs.shape[0], zs.shape[1], case.labels, case.reduction, spec=case.spec)
    try:
        new.validate()
    except ValueError:
        return None
    return new, DistillInputs(np.ascontiguousarray(zs), np.ascontiguousarray(zt), labels)


def candidates(state: dict) -> list:
    case, inputs = state["case"], state["inputs"]
    n, k = case.n, case.k
    tries: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if n > 1:
        worst = (state.get("loss") if case.reduction == "none" else state.get("grad")) or {}
        idx = worst.get("worst_index")
        if idx:
            tries.append((f"row {int(idx[0])} alone", np.array([int(idx[0])]), None))
        tries += [("first half of the rows", np.arange(n // 2), None),
                  ("second half of the rows", np.arange(n // 2, n), None)]
    if k > 2:
        need = set(np.argmax(np.nan_to_num(inputs.student.astype(np.float64), neginf=-1e300), axis=1).tolist())
        need |= set(np.argmax(np.nan_to_num(inputs.teacher.astype(np.float64), neginf=-1e300), axis=1).tolist())
        if inputs.labels is not None:
            need |= {int(c) for c in inputs.labels if c != IGNORE_INDEX}
        for name, part in (("first", range(k // 2)), ("second", range(k // 2, k))):
            kept = np.array(sorted(set(part) | need))
            if 2 <= len(kept) < k:
                tries.append((f"{name} half of the classes ({len(kept)})", np.arange(n), kept))
    out = []
    for what, rows, some in tries:
        sub = _sub(case, inputs, rows, some)
        if sub is not None:
            out.append((what, *sub))
    return out


def write(folder: Path, name: str, record: Result, inputs: DistillInputs, case: Case, ref, shrunk: bool,
          spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.regress.repro import write_script
    wide = np.float64 if case.dtype == "float64" else np.float32
    arrays = {"student": inputs.student.astype(wide), "teacher": inputs.teacher.astype(wide)}
    if inputs.labels is not None:
        arrays["labels"] = inputs.labels
    return write_script(folder, name, record, case, shrunk, spec, prelude, "distillation", TEMPLATE, arrays, ref,
                        OUTPUT_NAMES, meta={"dtype": case.dtype})
