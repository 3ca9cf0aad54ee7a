"""Plain CE's reproducers and shrink steps (its problem record's `write_repro`, `shrink_steps`,
`shrink_note`).

`<name>.npz` holds the exact inputs in the case's shape (logits widened exactly to float32 or
float64, labels, class weights) and the reference of each declared output; `<name>.py`, rendered
from repro_templates/ beside this file, imports only NumPy and the one framework, calls the same
API with the same options as the adapter and prints its outputs next to the reference. The shrink
steps: the worst row alone, half the rows, half the classes keeping every row's labelled class and
its maximum, half the spread of each row's finite logits around its maximum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs
from xentcheck.core.records import Result
from xentcheck.problems.ce import layout
from xentcheck.problems.ce.reference import Reference

TEMPLATES = Path(__file__).resolve().parent / "repro_templates"


def _sub(case: Case, inputs: Inputs, rows: np.ndarray, cols: np.ndarray | None = None) -> tuple[Case, Inputs]:
    x, lab, tgt = inputs.logits[rows], inputs.labels[rows], inputs.target[rows]
    if cols is not None:
        x = x[:, cols]
        if case.labels == "index":
            remap = {int(c): i for i, c in enumerate(cols)}
            lab = np.array([remap[int(v)] for v in lab], dtype=np.int64)
            tgt = lab.copy()
        else:
            lab = lab[:, cols]
            tgt = np.array([int(np.argmax(np.asarray(r, dtype=np.float64))) for r in lab], dtype=np.int64)
    # all rows kept: the case keeps its extra dimensions; a subset of rows is an (M', K) case
    n, extra = (case.n, case.extra) if len(rows) == case.rows else (len(rows), ())
    new = Case(case.family, case.dtype, n, x.shape[1], case.labels, case.reduction, case.options, extra)
    weights = inputs.weights if inputs.weights is None or cols is None else inputs.weights[cols]
    return new, Inputs(np.ascontiguousarray(x), np.ascontiguousarray(lab), tgt, weights, inputs.smoothing)


def _needed_cols(case: Case, inputs: Inputs) -> set[int]:
    """Classes that must stay: each row's labelled (or heaviest) class and its largest logit."""
    x = inputs.logits.astype(np.float64)
    need = {int(c) for c in np.argmax(x, axis=1)}
    if case.labels == "index":
        need |= {int(c) for c in inputs.labels}
    else:
        need |= {int(c) for c in np.argmax(inputs.labels.astype(np.float64), axis=1)}
    return need


def _halve_spread(inputs: Inputs) -> Inputs:
    x = inputs.logits.astype(np.float64)
    finite = np.isfinite(x)
    top = np.where(finite, x, -np.inf).max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    y = np.where(finite, top + (x - top) / 2, x)
    # the options' arrays stay: a case with class weights or smoothing keeps them (a user file's too)
    return Inputs(y.astype(inputs.logits.dtype), inputs.labels.copy(), inputs.target.copy(), inputs.weights,
                  inputs.smoothing, inputs.cotangent)


def _spread(inputs: Inputs) -> float:
    x = inputs.logits.astype(np.float64)
    finite = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"):
        r = np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)
    return float(np.nanmax(r)) if np.isfinite(r).any() else 0.0


def ce_candidates(state: dict) -> list[tuple[str, Case, Inputs]]:
    """A plain CE case's shrink steps (its problem record's): the worst row alone, half the rows,
    half the classes, half the spread of the logits."""
    case, inputs = state["case"], state["inputs"]
    out = []
    n, k = case.rows, case.k
    if n > 1 and not case.extra:  # a subset of the rows would lose the extra dimensions' layout
        worst = [(state.get(w) or {}).get("worst_index") for w in ("grad", "loss")]
        rows = sorted({int(w[0]) for w in worst if w and len(w) >= 1 and (case.reduction == "none" or w is worst[0])})
        for r in rows:
            out.append((f"row {r} alone", *_sub(case, inputs, np.array([r]))))
        half = n // 2
        out.append(("first half of the rows", *_sub(case, inputs, np.arange(half))))
        out.append(("second half of the rows", *_sub(case, inputs, np.arange(half, n))))
    if k > 2:
        need = _needed_cols(case, inputs)
        gw = (state.get("grad") or {}).get("worst_index")
        if gw and len(gw) == 2:
            need.add(int(gw[1]))
        for name, part in (("first", range(k // 2)), ("second", range(k // 2, k))):
            cols = np.array(sorted(set(part) | need))
            if 2 <= len(cols) < k:
                out.append((f"{name} half of the classes ({len(cols)})", *_sub(case, inputs, np.arange(n), cols)))
    if _spread(inputs) > 0:
        out.append(("half the spread of the logits", case, _halve_spread(inputs)))
    return out


def spread_note(case: Case, inputs: Inputs) -> str:
    """A shrunk plain case's remaining spread of logits, for the shrink's summary line."""
    return f"spread {_spread(inputs):.3g}"


def _framework(record: Result) -> str:
    base = str(record.backend).rpartition("@")[0] or str(record.backend)
    base = "keras" if base.startswith("keras-") else base  # one template for keras-tensorflow/jax/torch
    return base if (TEMPLATES / f"{base}.py.in").is_file() else "plugin"


def write_ce(folder: Path, name: str, record: Result, inputs: Inputs, case: Case, ref: Reference, shrunk: bool,
             spec: str | None, prelude: str) -> tuple[Path, Path]:
    """A plain CE result's <folder>/<name>.npz and .py (its problem record's repro files); the
    script begins with `prelude` (numerics_prelude)."""
    wide = np.float64 if case.dtype == "float64" else np.float32  # holds every value of the dtype exactly
    meta = {"result_id": name, "case_id": record.case_id, "shape": list(case.shape), "dtype": case.dtype,
            "labels": case.labels, "reduction": case.reduction, "backend": record.backend,
            "impl": record.impl or "", "seed": record.seed, "device": record.device or "cpu",
            "verdict": record.recorded_verdict, "reasons": record.reasons or [],
            "spec": spec or record.backend, "mode": record.mode or "", "options": case.options,
            "smoothing": inputs.smoothing, "ignore_index": IGNORE_INDEX}
    # in the case's shape, class axis last, as a backend receives them: (N, d1, ..., K)
    shaped = layout.to_case(case, inputs)
    labels = shaped.labels if case.labels == "index" else shaped.labels.astype(wide)
    with np.errstate(over="ignore"):  # a float64 case's longdouble sum past float64's range is inf there too
        ref_loss = np.asarray(ref.loss, dtype=np.float64)
        ref_grad = np.asarray(ref.grad, dtype=np.float64)
    from xentcheck.regress.repro import _savez
    _savez(folder / f"{name}.npz", logits=shaped.logits.astype(wide), labels=labels,
           ref_loss=ref_loss.reshape(case.loss_shape) if ref_loss.ndim else ref_loss,
           ref_grad=ref_grad.reshape(case.shape),
           meta=np.array(json.dumps(meta)),
           **({} if inputs.weights is None else {"weights": inputs.weights.astype(wide)}))
    fw = _framework(record)
    head = (TEMPLATES / "_head.py.in").read_text()
    body = (TEMPLATES / f"{fw}.py.in").read_text()
    tail = (TEMPLATES / "_tail.py.in").read_text()
    doc = (f'"""Reproduce {name}: {record.backend} ({meta["impl"]}) on case {record.case_id}'
           f'{" (shrunk to " + case.dims + ")" if shrunk else ""}.\n\n'
           f'Recorded verdict: {meta["verdict"]}. Run: python {name}.py\n"""\n')
    script = doc + prelude + "\n" + head.replace("__NAME__", name) + body + tail
    if fw == "plugin":
        script = script.replace("__SPEC__", str(meta["spec"]))
    (folder / f"{name}.py").write_text(script)
    return folder / f"{name}.npz", folder / f"{name}.py"
