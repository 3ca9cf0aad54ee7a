"""A plain CE output against its reference: the natural scale of each loss and gradient entry,
the error model's bounds, and each declared output's array_metrics (xentcheck.core.metrics)
under the run's tolerance and every preset. The verdict is xentcheck.core.evaluate's."""

from __future__ import annotations

import numpy as np

from xentcheck.core.dtypes import info
from xentcheck.core.metrics import array_metrics
from xentcheck.core.tolerances import allowances
from xentcheck.problems.ce import error_model


def natural_scales(case, ref) -> tuple[np.ndarray, np.ndarray]:
    """The scale each loss and gradient element is computed at (see xentcheck.core.tolerances):
    max(1, row loss) for losses (summed, then divided by the mean's denominator) and
    max(1, sum q) / denominator for each gradient row. LLM options: llm_natural_scales."""
    if case.llm:
        return llm_natural_scales(case, ref)
    denom = case.rows if case.reduction == "mean" else 1
    row = np.fmax(1.0, np.abs(ref.row_loss))
    # at least 1, also for an empty batch (no rows: a sum of 0 over a denominator of 0)
    loss_scale = row if case.reduction == "none" else np.asarray(np.fmax(1.0, row.sum() / max(denom, 1)))
    grad_scale = (np.fmax(1.0, np.abs(ref.label_sum)) / denom)[:, None]
    return loss_scale, grad_scale


def llm_natural_scales(case, ref) -> tuple[np.ndarray, np.ndarray]:
    """natural_scales with LLM options (docs/tolerance-model.md). With w the magnitude each row's
    final logits are rounded at (error_model.transform: |o| + |y| sech^2 under a softcap, |s x|
    for a scale that is not a power of two, 0 for none), a row's cross-entropy is computed at
    max(1, |L_n|, max(1, |Q|) w) and its z-loss at max(z lse^2, 2 z |lse| w); a gradient row at
    |s| |v_n| (1 + w) (max(1, |Q|) / D + 2 z max(1, |lse|) / D_z): the scale and the cotangent
    multiply it, the z-loss adds entries up to 2 z |lse| p, and a final logit rounded at w moves
    p_j by about u w p_j. Without any option this is natural_scales."""
    key = ("natural",)
    if key in ref.derived:
        return ref.derived[key]
    opts = error_model.options_of(case, ref)
    assert opts is not None  # natural_scales calls this only for a case with LLM options
    n = case.rows
    # half the magnitude: a final logit rounded at w is off by at most u w / 2 (round to nearest)
    w = np.zeros(n) if opts.scale is None and opts.softcap is None else \
        error_model.transform(np.asarray(ref.inputs.logits, dtype=np.float64), opts, 0.0, 0.0).magnitude / 2
    z = opts.zloss or 0.0
    lse = np.where(opts.counted, np.abs(ref.lse), 0.0) if z else np.zeros(n)
    with np.errstate(invalid="ignore", over="ignore"):
        z_rows = z * lse * lse
        big_q = np.fmax(1.0, np.abs(ref.label_sum))
        ce = np.fmax(np.fmax(1.0, np.abs(ref.row_loss - z_rows)), big_q * w)
        zs = np.fmax(z_rows, 2 * z * lse * w) if z else np.zeros(n)
        inv, inv_z = error_model.inverse(opts.denom), error_model.inverse(opts.denom_z)
        if case.reduction == "mean":
            loss_scale = np.asarray(np.fmax(1.0, ce.sum() * inv + zs.sum() * inv_z))
        else:
            loss_scale = ce + zs if case.reduction == "none" else np.asarray(np.fmax(1.0, (ce + zs).sum()))
        grad_scale = _grad_rows(case, opts, big_q, np.fmax(1.0, lse) if z else lse) * (1 + w)[:, None]
    ref.derived[key] = loss_scale, grad_scale
    return ref.derived[key]


def grad_entry_bound(case, ref) -> np.ndarray:
    """(M, 1): no gradient entry of a case with LLM options exceeds
    |s| |v_n| (max(1, |Q|) / D + 2 z |lse| / D_z) (sech^2 <= 1, |p Q - r| <= max(1, |Q|) for
    r >= 0, 0 <= p <= 1); the rows the z-loss does not count have no z term."""
    opts = error_model.options_of(case, ref)
    assert opts is not None  # called only for a case with LLM options (properties' grad bound)
    lse = np.where(opts.counted, np.abs(ref.lse), 0.0) if opts.zloss else np.zeros(case.rows)
    return _grad_rows(case, opts, np.fmax(1.0, np.abs(ref.label_sum)), lse)


def _grad_rows(case, opts, big_q: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """|s| |v_n| (big_q / D + 2 z lse / D_z) per row, (M, 1) (D = D_z = 1 unless the mean)."""
    z = opts.zloss or 0.0
    inv, inv_z = (error_model.inverse(opts.denom), error_model.inverse(opts.denom_z)) \
        if case.reduction == "mean" else (1.0, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        rows = (big_q * inv + 2 * z * lse * inv_z) * abs(opts.scale or 1.0)
        if opts.cotangent is not None:
            rows = rows * np.abs(opts.cotangent)
    return rows[:, None]


def model_bounds(case, ref, u: float, tiny: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The error model's bounds on the reference's case (None without its inputs). They depend on
    the logits and labels alone: computed once, kept on the reference for every backend's
    comparison, and the float64 logits and labels they were computed from are let go."""
    if ref.inputs is None:
        return None
    key = ("model", u, tiny)
    if key not in ref.derived:
        ref.derived[key] = error_model.bounds(case, ref.logits, ref.q, u, tiny, error_model.options_of(case, ref))
        for name in ("logits", "q"):  # cached_property values: rebuilt if anything asks again
            ref.__dict__.pop(name, None)
    return ref.derived[key]


def measure(case, ref, actual: dict[str, np.ndarray], tolerances) -> dict[str, dict]:
    """array_metrics of each declared output (`actual` by name, as rows: (M,) or () and (M, K),
    shapes checked) against the reference's array of that name, under the run's tolerance
    (within-tolerance counts) and every preset (their `excess`). The verdict is
    xentcheck.core.evaluate's."""
    from xentcheck.problems.ce import OUTPUTS
    scales = natural_scales(case, ref)
    d = info(case.dtype)
    tiny = 2.0 ** d.min_exp  # smallest normal: XLA and TF flush subnormals to zero on CPU
    model = model_bounds(case, ref, d.eps, tiny)
    out = {}
    for i, spec in enumerate(OUTPUTS):  # the scales and the model's bounds are in the outputs' order
        expected, row = getattr(ref, spec.name), spec.tolerance
        rtol, atol = tolerances.get(case.dtype, row)
        bound = None if model is None else model[i]
        mine, others = allowances(tolerances, case.dtype, row, expected, scales[i], bound)
        scale = scales[i] if tolerances.scaled else 1.0
        out[spec.name] = array_metrics(actual[spec.name], expected, case.dtype, rtol, atol, scale, allowed=mine,
                                       natural=scales[i], others=others)
    return out
