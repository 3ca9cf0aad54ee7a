"""Reproducers and shrinking for linear distillation results (the record's write_repro,
shrink_steps): the .npz holds both models' hidden states and weights (widened exactly), the labels
and the reference outputs; the .py runs the recorded backend's variant through xentcheck's
registry and prints each output's worst entry beside the reference. Shrinking: each half of the
rows (a half with no counted row is left out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.core.records import Result
from xentcheck.problems.lindistill.cases import LinDistillInputs

TEMPLATE = Path(__file__).resolve().parent / "repro_template.py.in"
OUTPUT_NAMES = ("loss", "dh", "dw")


def candidates(state: dict) -> list:
    case, inputs = state["case"], state["inputs"]
    out = []
    for what, rows in (("first half of the rows", np.arange(case.n // 2)),
                       ("second half of the rows", np.arange(case.n // 2, case.n))):
        labels = None if inputs.labels is None else inputs.labels[rows].copy()
        if case.n < 2 or (labels is not None and not (labels != IGNORE_INDEX).any()):
            continue
        new = Case(case.family, case.dtype, len(rows), case.k, case.labels, case.reduction, spec=case.spec)
        out.append((what, new, LinDistillInputs(inputs.student_hidden[rows].copy(), inputs.student_weight.copy(),
                                                inputs.teacher_hidden[rows].copy(), inputs.teacher_weight.copy(),
                                                labels)))
    return out


def write(folder: Path, name: str, record: Result, inputs: LinDistillInputs, case: Case, ref, shrunk: bool,
          spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.regress.repro import write_script
    wide = np.float64 if case.dtype == "float64" else np.float32
    arrays = {k: getattr(inputs, k).astype(wide) for k in LinDistillInputs.ARRAYS[:4]}
    if inputs.labels is not None:
        arrays["labels"] = inputs.labels
    return write_script(folder, name, record, case, shrunk, spec, prelude, "linear distillation", TEMPLATE, arrays,
                        ref, OUTPUT_NAMES)
