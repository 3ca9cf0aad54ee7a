"""Comparing a backend's output with the reference: error metrics and the verdict.

Finite errors (absolute, relative, ULPs of the tested dtype) are measured only where both
sides are finite. NaN/inf positions are compared separately, against the reference rounded to
the tested dtype (so a true value that overflows the dtype is expected to be inf), and never
counted as a pass: no nan_to_num before comparing.
"""

from __future__ import annotations

import numpy as np

from harness.dtypes import round_to, ulp

VERDICTS: tuple[str, ...] = ("pass", "fail", "nonfinite", "error", "crashed", "timeout", "skipped")
BAD_VERDICTS = frozenset({"fail", "nonfinite", "error", "crashed", "timeout"})


def _finite_max(v: np.ndarray) -> float | None:
    return float(v.max()) if v.size else None


def array_metrics(actual: np.ndarray, ref: np.ndarray, dtype: str, rtol: float, atol: float) -> dict:
    """Error metrics of `actual` (any float dtype) against the high-precision `ref`."""
    ref = np.asarray(ref)
    wp = np.longdouble if ref.dtype == np.longdouble else np.float64
    a = np.asarray(actual).astype(wp)
    r = ref.astype(wp)
    expected = round_to(r, dtype).astype(np.float64)
    a64 = a.astype(np.float64)
    both_finite = np.isfinite(a) & np.isfinite(expected)
    same_nonfinite = (np.isnan(a64) & np.isnan(expected)) | (np.isinf(a64) & (a64 == expected))
    nonfinite_bad = ~both_finite & ~same_nonfinite
    diff = np.abs(a - r)
    with np.errstate(divide="ignore", invalid="ignore"):
        allowed = atol + rtol * np.abs(r)
        rel = np.where(r != 0, diff / np.abs(r), np.where(diff == 0, 0.0, np.inf))
        ulps = diff / ulp(r, dtype)
    diff, rel, ulps, allowed = (np.where(both_finite, v, 0) for v in (diff, rel, ulps, allowed))
    exceed = both_finite & (diff > allowed)
    out = {
        "size": int(r.size),
        "abs_err": float(diff.max()) if r.size else 0.0,
        "rel_err": float(rel.max()) if r.size else 0.0,
        "ulp_err": float(ulps.max()) if r.size else 0.0,
        "n_exceed": int(exceed.sum()),
        "n_nonfinite_mismatch": int(nonfinite_bad.sum()),
    }
    if r.size:
        # the worst element: furthest out of tolerance, else furthest from the reference
        score = np.where(nonfinite_bad, np.inf, np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1), diff))
        flat = int(np.argmax(score))
        idx = np.unravel_index(flat, r.shape)
        out["worst_index"] = [int(i) for i in idx]
        out["worst_actual"] = _json_float(a64.ravel()[flat])
        out["worst_expected"] = _json_float(float(r.ravel()[flat]))
    return out


def _json_float(v: float) -> float | str:
    v = float(v)
    return v if np.isfinite(v) else str(v)


def _dtype_of(arr: np.ndarray, declared: str | None) -> str:
    return declared or np.dtype(arr.dtype).name


def compare(case, ref, loss: np.ndarray, grad: np.ndarray, loss_dtype: str | None,
            grad_dtype: str | None, rtol: float, atol: float) -> dict:
    """Metrics and verdict for one backend output. Returns the result fields to merge."""
    reasons: list[str] = []
    loss = np.asarray(loss)
    grad = np.asarray(grad)
    exp_loss_shape = (case.n,) if case.reduction == "none" else ()
    out: dict = {"loss_dtype": _dtype_of(loss, loss_dtype), "grad_dtype": _dtype_of(grad, grad_dtype)}
    if loss.shape != exp_loss_shape:
        reasons.append(f"loss shape {list(loss.shape)}, expected {list(exp_loss_shape)}")
    if grad.shape != (case.n, case.k):
        reasons.append(f"gradient shape {list(grad.shape)}, expected {[case.n, case.k]}")
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    for what in ("loss", "grad"):
        if out[f"{what}_dtype"] != case.dtype:
            reasons.append(f"{what} computed in {out[what + '_dtype']}, requested {case.dtype}")
    out["loss"] = array_metrics(loss, ref.loss, case.dtype, rtol, atol)
    out["grad"] = array_metrics(grad, ref.grad, case.dtype, rtol, atol)
    nonfinite = False
    for what, label in (("loss", "loss"), ("grad", "gradient")):
        m = out[what]
        if m["n_nonfinite_mismatch"]:
            nonfinite = True
            reasons.append(f"{label}: {m['n_nonfinite_mismatch']} / {m['size']} NaN/inf where the reference "
                           f"differs, e.g. {m['worst_actual']} vs {m['worst_expected']} at index {m['worst_index']}")
        elif m["n_exceed"]:
            reasons.append(
                f"{label}: {m['n_exceed']} / {m['size']} out of tolerance; greatest absolute difference "
                f"{m['abs_err']:.3g}, relative {m['rel_err']:.3g}, {m['ulp_err']:.3g} ULP; worst at index "
                f"{m['worst_index']}: {m['worst_actual']} vs {m['worst_expected']} (allowed rtol {rtol:g}, atol {atol:g})")
    verdict = "nonfinite" if nonfinite else ("fail" if reasons else "pass")
    return {**out, "verdict": verdict, "reasons": reasons}
