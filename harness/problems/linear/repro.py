"""Reproducers and shrinking for linear-CE results (the record's write_repro and shrink_steps).

repro/<id>.npz holds h, W (b), the labels (class weights, cotangent) widened exactly to float32 or
float64 and the reference loss, dh, dW (db); repro/<id>.py calls the recorded API of the one
framework (repro_templates/<framework>.py.in beside this file; plugin.py.in through the
registry) under the numerics variables its worker ran under (regress.repro.numerics_prelude) and
prints each output's worst entry next to the reference.

Shrinking tries, in order: the worst row of dh alone (reduction none: of the loss), half of the
rows, half of the classes (rows of W, b and the class weights; every row's label kept, labels
renumbered), half of the hidden size D; a step is kept while the verdict stays the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.core.records import Result
from xentcheck.problems.linear.cases import LinearInputs
from xentcheck.problems.linear.reference import LinearReference

TEMPLATES = Path(__file__).resolve().parent / "repro_templates"


def describe(case: Case) -> str:
    """N x V, D: the dims a shrunk linear case is reported by."""
    return f"{case.n}x{case.k}_lin{case.d}"


# --- shrinking ---------------------------------------------------------------------------

def _sub(case: Case, inputs: LinearInputs, rows: np.ndarray, cols: np.ndarray | None = None,
         dims: np.ndarray | None = None) -> tuple[Case, LinearInputs]:
    h, w, b, wts = inputs.hidden[rows], inputs.weight, inputs.bias, inputs.weights
    labels, target = inputs.labels[rows].copy(), inputs.target[rows].copy()
    if cols is not None:
        w, b, wts = w[cols], None if b is None else b[cols], None if wts is None else wts[cols]
        remap = np.full(case.k, -1, dtype=np.int64)
        remap[cols] = np.arange(len(cols))
        kept = (labels >= 0) & (labels < case.k)
        labels[kept] = remap[labels[kept]]
        target = np.where(target < case.k, remap[np.minimum(target, case.k - 1)], 0).clip(0)
    if dims is not None:
        h, w = h[:, dims], w[:, dims]
    ct = inputs.cotangent
    if ct is not None and ct.ndim:
        ct = ct[rows]
    new = Case(case.family, case.dtype, len(rows), w.shape[0], "index", case.reduction, case.options, d=w.shape[1])
    return new, LinearInputs(np.ascontiguousarray(h), np.ascontiguousarray(w), b, labels, target, wts,
                             inputs.smoothing, ct)


def candidates(state: dict) -> list[tuple[str, Case, LinearInputs]]:
    case, inputs = state["case"], state["inputs"]
    n, k, d = case.n, case.k, case.d
    out = []
    if n > 1:
        worst = (state.get("loss") if case.reduction == "none" else state.get("dh")) or {}
        idx = worst.get("worst_index")
        if idx:
            out.append((f"row {int(idx[0])} alone", *_sub(case, inputs, np.array([int(idx[0])]))))
        out.append(("first half of the rows", *_sub(case, inputs, np.arange(n // 2))))
        out.append(("second half of the rows", *_sub(case, inputs, np.arange(n // 2, n))))
    if k > 2:
        lab = inputs.labels
        need = {int(c) for c in lab[(lab >= 0) & (lab < k)]}
        for where in ("dw", "db"):
            wi = (state.get(where) or {}).get("worst_index")
            if wi:
                need.add(int(wi[0]))
        for name, part in (("first", range(k // 2)), ("second", range(k // 2, k))):
            cols = np.array(sorted(set(part) | need))
            if 2 <= len(cols) < k:
                out.append((f"{name} half of the classes ({len(cols)})", *_sub(case, inputs, np.arange(n), cols)))
    if d > 1:
        out.append(("first half of the hidden size", *_sub(case, inputs, np.arange(n), None, np.arange(d // 2))))
    return out


# --- writing -------------------------------------------------------------------------------

def _framework(backend: str) -> str:
    base = backend.rpartition("@")[0] or backend
    return base if (TEMPLATES / f"{base}.py.in").is_file() else "plugin"


def write(folder: Path, name: str, record: Result, inputs: LinearInputs, case: Case, ref: LinearReference,
          shrunk: bool, spec: str | None, prelude: str) -> tuple[Path, Path]:
    """<folder>/<name>.npz and .py of a linear-CE result on these inputs; the script begins with
    `prelude` (regress.repro.numerics_prelude: the worker's numerics variables)."""
    wide = np.float64 if case.dtype == "float64" else np.float32  # holds every value of the dtype exactly
    meta = {"result_id": name, "case_id": record.case_id, "n": case.n, "v": case.k, "d": case.d,
            "dtype": case.dtype, "reduction": case.reduction, "backend": record.backend,
            "impl": record.impl or "", "mode": record.mode or "", "seed": record.seed,
            "device": record.device or "cpu", "verdict": record.recorded_verdict,
            "reasons": record.reasons or [], "spec": spec or record.backend, "options": case.options,
            "smoothing": inputs.smoothing, "ignore_index": IGNORE_INDEX}
    arrays = {"hidden": inputs.hidden.astype(wide), "weight": inputs.weight.astype(wide), "labels": inputs.labels}
    optional = {"bias": inputs.bias, "weights": inputs.weights, "cotangent": inputs.cotangent}
    arrays.update({k: a.astype(wide) for k, a in optional.items() if a is not None})
    with np.errstate(over="ignore"):  # a float64 case's longdouble value past float64's range is inf there too
        refs = {f"ref_{k}": np.asarray(ref.get(k), dtype=np.float64) for k in ("loss", "dh", "dw", "db")
                if ref.get(k) is not None}
    from xentcheck.regress.repro import _savez as savez
    savez(folder / f"{name}.npz", **arrays, **refs, meta=np.array(json.dumps(meta)))
    fw = _framework(str(record.backend))
    parts = [(TEMPLATES / f).read_text() for f in ("_head.py.in", f"{fw}.py.in", "_tail.py.in")]
    doc = (f'"""Reproduce {name}: {record.backend} ({meta["impl"]}) on linear-CE case {record.case_id}'
           f'{" (shrunk to " + describe(case) + ")" if shrunk else ""}.\n\n'
           f'Recorded verdict: {meta["verdict"]}. Run: python {name}.py\n"""\n')
    script = doc + prelude + "\n" + parts[0].replace("__NAME__", name) + parts[1] + parts[2]
    (folder / f"{name}.py").write_text(script.replace("__SPEC__", str(meta["spec"])))
    return folder / f"{name}.npz", folder / f"{name}.py"
