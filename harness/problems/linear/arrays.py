"""A caller's own linear-CE arrays as a case and its inputs (the record's `arrays`, read by
`xentcheck.reference`): h, W, b and the labels, named as torch's F.linear_cross_entropy names them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xentcheck.core.cases import IGNORE_INDEX, OPTIONS, REDUCTIONS, Case
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.problems.linear.cases import LinearInputs

KEYS = ("hidden", "linear_weight", "linear_bias", "labels", "weight", "ignore_index", "label_smoothing", "reduction")
FLOATS = "float16, bfloat16, float32 or float64"


def from_arrays(raw: Mapping[str, Any]) -> tuple[Case, LinearInputs]:
    """hidden h (N, D), linear_weight W (V, D), optionally linear_bias b (V,), all of one float
    dtype; labels (N,) class indices; optionally weight (V,) class weights, ignore_index,
    label_smoothing and reduction ("mean", as torch's default). ValueError names what is wrong."""
    raw = {k: v for k, v in raw.items() if v is not None}
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ValueError(f"linear-CE arrays: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    for key in ("hidden", "linear_weight", "labels"):
        if key not in raw:
            raise ValueError(f"linear-CE arrays: missing key {key!r} (hidden, linear_weight and labels are needed)")
    h, w = np.asarray(raw["hidden"]), np.asarray(raw["linear_weight"])
    dtype = h.dtype.name
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"linear-CE arrays: hidden must be {FLOATS}, got {dtype}")
    if h.ndim != 2 or w.ndim != 2 or w.shape[1] != h.shape[1]:
        raise ValueError(f"linear-CE arrays: hidden must be (N, D) and linear_weight (V, D), got {list(h.shape)} "
                         f"and {list(w.shape)}")
    (n, d), v = h.shape, w.shape[0]
    b = raw.get("linear_bias")
    b = None if b is None else np.asarray(b)
    for name, arr, shape in (("linear_weight", w, (v, d)), ("linear_bias", b, (v,))):
        if arr is not None and (arr.dtype != h.dtype or arr.shape != shape):
            raise ValueError(f"linear-CE arrays: {name} must be {dtype} of shape {list(shape)}, got {arr.dtype} "
                             f"{list(arr.shape)}")
    reduction = str(raw.get("reduction", "mean"))
    if reduction not in REDUCTIONS:
        raise ValueError(f"linear-CE arrays: unknown reduction {reduction!r} (known: {', '.join(REDUCTIONS)})")
    smoothing = float(raw.get("label_smoothing", 0.0))
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"linear-CE arrays: label_smoothing must be in [0, 1], got {smoothing}")
    y = np.asarray(raw["labels"])
    if y.dtype.kind not in "iu" or y.shape != (n,):
        raise ValueError(f"linear-CE arrays: labels must be {n} integer class indices, got {y.dtype} {list(y.shape)}")
    ignore = raw.get("ignore_index")
    ignored = np.zeros(n, dtype=bool) if ignore is None else y == int(ignore)
    bad = ~ignored & ((y < 0) | (y >= v))
    if bad.any():
        raise ValueError(f"linear-CE arrays: label {int(y[bad][0])} out of range for V = {v} classes")
    labels = np.where(ignored, IGNORE_INDEX, y).astype(np.int64)
    cw = raw.get("weight")
    if cw is not None:
        cw = np.asarray(cw)
        if cw.shape != (v,) or cw.dtype.kind not in "fiu" or not np.isfinite(cw).all():
            raise ValueError(f"linear-CE arrays: weight must be {v} finite numbers (one per class), got "
                             f"{cw.dtype} {list(cw.shape)}")
        cw = cw.astype(np.float64)
    on = {"w": cw is not None, "ign": ignore is not None, "ls": smoothing != 0, "b": b is not None}
    case = Case("scale1e+0", dtype, n, v, "index", reduction, "+".join(o for o in OPTIONS if on.get(o)), d=d)
    case.validate()
    return case, LinearInputs(h, w, b, labels, np.zeros(n, dtype=np.int64), cw, smoothing)
