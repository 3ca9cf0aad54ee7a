"""Comparing a backend's output with the reference: error metrics and the verdict.

Finite errors (absolute, relative, ULPs of the tested dtype) are measured only where both
sides are finite. NaN/inf positions are compared separately, against the reference rounded to
the tested dtype (so a true value that overflows the dtype is expected to be inf), and never
counted as a pass: no nan_to_num before comparing.
"""

from __future__ import annotations

import numpy as np

from harness.dtypes import round_to, ulp

VERDICTS: tuple[str, ...] = ("pass", "fail", "nonfinite", "error", "crashed", "timeout", "skipped", "known")
BAD_VERDICTS = frozenset({"fail", "nonfinite", "error", "crashed", "timeout"})


def _finite_max(v: np.ndarray) -> float | None:
    return float(v.max()) if v.size else None


def natural_scales(case, ref) -> tuple[np.ndarray, np.ndarray]:
    """The scale each loss and gradient element is computed at (see harness.tolerances):
    max(1, row loss) for losses (summed, then divided by the mean's denominator) and
    max(1, sum q) / denominator for each gradient row."""
    denom = case.n if case.reduction == "mean" else 1
    row = np.fmax(1.0, np.abs(ref.row_loss))
    loss_scale = row if case.reduction == "none" else np.asarray(row.sum() / denom)
    grad_scale = (np.fmax(1.0, np.abs(ref.label_sum)) / denom)[:, None]
    return loss_scale, grad_scale


def array_metrics(actual: np.ndarray, ref: np.ndarray, dtype: str, rtol: float, atol: float,
                  scale: np.ndarray | float = 1.0) -> dict:
    """Error metrics of `actual` (any float dtype) against the high-precision `ref`; an element
    is within tolerance when |actual - ref| <= rtol * |ref| + atol * scale."""
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
        allowed = atol * np.asarray(scale, dtype=wp) + rtol * np.abs(r)
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
        out["worst_scale"] = float(np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape).ravel()[flat])
    return out


def _json_float(v: float) -> float | str:
    v = float(v)
    return v if np.isfinite(v) else str(v)


def _dtype_of(arr: np.ndarray, declared: str | None) -> str:
    return declared or np.dtype(arr.dtype).name


def compare(case, ref, loss: np.ndarray, grad: np.ndarray, loss_dtype: str | None,
            grad_dtype: str | None, tolerances) -> dict:
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
    scales = natural_scales(case, ref) if tolerances.scaled else (1.0, 1.0)
    nonfinite = False
    for what, label, actual, expected, scale in (("loss", "loss", loss, ref.loss, scales[0]),
                                                 ("grad", "gradient", grad, ref.grad, scales[1])):
        rtol, atol = tolerances.get(case.dtype, what)
        m = out[what] = array_metrics(actual, expected, case.dtype, rtol, atol, scale)
        if m["n_nonfinite_mismatch"]:
            nonfinite = True
            reasons.append(f"{label}: {m['n_nonfinite_mismatch']} / {m['size']} NaN/inf where the reference "
                           f"differs, e.g. {m['worst_actual']} vs {m['worst_expected']} at index {m['worst_index']}")
        elif m["n_exceed"]:
            scale_note = f" x scale {m['worst_scale']:.3g}" if tolerances.scaled else ""
            reasons.append(
                f"{label}: {m['n_exceed']} / {m['size']} out of tolerance; greatest absolute difference "
                f"{m['abs_err']:.3g}, relative {m['rel_err']:.3g}, {m['ulp_err']:.3g} ULP; worst at index "
                f"{m['worst_index']}: {m['worst_actual']} vs {m['worst_expected']} "
                f"(allowed rtol {rtol:.3g}, atol {atol:.3g}{scale_note})")
    verdict = "nonfinite" if nonfinite else ("fail" if reasons else "pass")
    return {**out, "verdict": verdict, "reasons": reasons}
