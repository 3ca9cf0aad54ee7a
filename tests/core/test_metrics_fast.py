"""The comparison's shortcuts (all-finite fast path, atol grid over the nonzero differences in
chunks, quantiles from their order statistics, ulp by table lookup, the error model's bounds kept
per case, presets' allowed arrays shared) give exactly what the plain formulas give.
`plain_array_metrics` is array_metrics as it was before them, verbatim: the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.judge import judged
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import DTYPE_NAMES, _ulp_general, info, round_to, ulp
from xentcheck.core.metrics import _json_float, _q, array_metrics, rtol_grid, sample_positions  # noqa: F401
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.reference import reference


def plain_array_metrics(actual: np.ndarray, ref: np.ndarray, dtype: str, rtol: float, atol: float,
                  scale: np.ndarray | float = 1.0, *, allowed: np.ndarray | None = None,
                  natural: np.ndarray | float | None = None, others: dict | None = None) -> dict:
    """array_metrics before the shortcuts, formula for formula (its signature and results are the contract)."""
    ref = np.asarray(ref)
    wp = np.longdouble if ref.dtype == np.longdouble else np.float64
    a = np.asarray(actual).astype(wp)
    r = ref.astype(wp)
    expected = round_to(r, dtype).astype(np.float64)
    a64 = a.astype(np.float64)
    both_finite = np.isfinite(a) & np.isfinite(expected)
    same_nonfinite = (np.isnan(a64) & np.isnan(expected)) | (np.isinf(a64) & (a64 == expected))
    nonfinite_bad = ~both_finite & ~same_nonfinite
    signed = a - r
    diff = np.abs(signed)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if allowed is None:
            allowed = atol * np.asarray(scale, dtype=wp) + rtol * np.abs(r)
        allowed = np.broadcast_to(np.asarray(allowed, dtype=wp), r.shape)
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
    fin_abs = diff[both_finite].astype(np.float64)
    fin_rel, fin_ulp = rel[both_finite].astype(np.float64), ulps[both_finite].astype(np.float64)
    for name, v in (("abs", fin_abs), ("rel", fin_rel), ("ulp", fin_ulp)):
        out[f"p50_{name}"], out[f"p99_{name}"] = [float(x) for x in np.quantile(v, (0.5, 0.99))] if v.size else [0.0, 0.0]
    mag = np.where(both_finite, np.abs(r), 0).astype(np.float64)
    d64 = diff.astype(np.float64)
    out["atol_needed"] = [float(np.max(d64 - t * mag, initial=0.0)) for t in rtol_grid(dtype)]
    if others:
        out["excess"] = {name: _plain_excess(d64, np.where(both_finite, np.broadcast_to(al, r.shape), 0))
                         for name, al in others.items()}
    nat = np.broadcast_to(np.asarray(1.0 if natural is None else natural, dtype=np.float64), r.shape)
    pos = sample_positions(r.size)
    unit = ulp(np.maximum(np.abs(r.astype(np.float64)), nat), dtype).ravel()[pos]
    sample = (signed.astype(np.float64).ravel()[pos] / unit)
    out["sample_ulp"] = [round(float(v), 4) if np.isfinite(v) and bf else None
                         for v, bf in zip(sample, both_finite.ravel()[pos])]
    if r.size:
        # the worst element: furthest out of tolerance, else furthest from the reference
        score = np.where(nonfinite_bad, np.inf, np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1), diff))
        flat = int(np.argmax(score))
        idx = np.unravel_index(flat, r.shape)
        out["worst_index"] = [int(i) for i in idx]
        out["worst_actual"] = _json_float(a64.ravel()[flat])
        out["worst_expected"] = _json_float(float(r.ravel()[flat]))
        out["worst_scale"] = float(np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape).ravel()[flat])
        out["worst_allowed"] = float(allowed.ravel()[flat])
    return out


def _plain_excess(diff: np.ndarray, allowed: np.ndarray) -> float | str:
    """max(diff / allowed): <= 1 passes. 0 / 0 counts as 0, d / 0 as inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1), np.where(diff > 0, np.inf, 0.0))
    return _json_float(float(ratio.max())) if ratio.size else 0.0


def _arrays(rng, shape, dtype: str, wp, nonfinite: bool, zeros: bool):
    ref = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3, shape)).astype(wp)
    actual = np.asarray(round_to(ref * (1 + 1e-3 * rng.standard_normal(shape)), dtype)).astype(np.float32 if
                                                                                           dtype != "float64" else np.float64)
    if zeros:
        ref.ravel()[::5] = 0
        actual.ravel()[::3] = np.asarray(ref).ravel()[::3]
    if nonfinite:
        actual.ravel()[1::7] = np.nan
        actual.ravel()[2::11] = np.inf
        ref.ravel()[3::13] = np.inf
        ref.ravel()[4::17] = info(dtype).max * 4  # overflows the dtype: inf expected
    return actual, ref


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (5, 9), (0, 4), (40, 300), (200, 300)])  # the last: atol in chunks
@pytest.mark.parametrize("nonfinite", [False, True])
@pytest.mark.parametrize("zeros", [False, True])
def test_array_metrics_equals_the_plain_formulas(dtype, shape, nonfinite, zeros):
    rng = np.random.default_rng(len(shape) * 100 + DTYPE_NAMES.index(dtype) + 10 * nonfinite + 20 * zeros)
    wp = np.longdouble if dtype == "float64" else np.float64
    actual, ref = _arrays(rng, shape, dtype, wp, nonfinite, zeros)
    nat = np.fmax(1.0, np.abs(rng.standard_normal(shape[:1] + (1,) * (len(shape) > 1))))
    mag = np.abs(np.asarray(ref, dtype=np.float64))
    others = {"a": 1e-3 * mag + 1e-5, "b": 1e-2 * nat * np.ones(shape) + 0 * mag, "c": 0 * mag}
    for kw in ({}, {"allowed": 1e-4 * mag}, {"allowed": np.zeros(shape)}):
        with np.errstate(all="ignore"):  # as the runner compares: inf and NaN on purpose
            got = array_metrics(actual, ref, dtype, 1e-6, 1e-6, nat, natural=nat, others=others, **kw)
            want = plain_array_metrics(actual, ref, dtype, 1e-6, 1e-6, nat, natural=nat, others=others, **kw)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_quantiles_from_order_statistics_are_numpys_bit_for_bit():
    rng = np.random.default_rng(7)
    for trial in range(600):
        n = int(rng.integers(1, 300)) if trial < 580 else int(rng.integers(40000, 120000))
        v = np.abs(rng.standard_normal(n)) * 10.0 ** int(rng.integers(-9, 3))
        if trial % 3 == 1:
            v = np.round(v * 2) / 2  # ties
        if trial % 5 == 2:
            v[rng.integers(0, n, n // 4 + 1)] = np.inf
        if trial % 7 == 3:
            v[rng.integers(0, n)] = np.nan
        shaped = v.reshape(-1, 1) if trial % 2 else v  # 2-D: the whole array's, as np.quantile
        with np.errstate(invalid="ignore"):  # inf - inf in the interpolation, in numpy's too
            want = [float(x) for x in np.quantile(shaped, (0.5, 0.99))]
            got = _q(shaped, (0.5, 0.99))
        assert json.dumps(got) == json.dumps(want), (trial, got, want)
    assert _q(np.zeros(0), (0.5, 0.99)) == [0.0, 0.0]


def test_presets_with_the_same_tolerance_share_one_allowed_array():
    from xentcheck.core.tolerances import allowances
    ref = np.linspace(-1, 1, 11)
    scale, bound = np.full(11, 2.0), np.full(11, 1e-9)
    mine, others = allowances(Tolerances(), "float32", "grad", ref, scale, bound)
    assert mine is others["xentcheck"]  # the default run's tolerance is that preset's
    assert np.array_equal(mine, 8 * 2.0 ** -24 * (scale + np.abs(ref)))
    assert set(others) == {"xentcheck", "torch", "jax", "tensorflow", "model"}
    assert np.array_equal(others["torch"], 1e-5 + 1.3e-6 * np.abs(ref))
    assert "model" not in allowances(Tolerances(), "float32", "grad", ref, scale, None)[1]


def test_ulp_by_table_equals_the_formula():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-320, 308, 5000),
                        [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, np.inf, -np.inf, np.nan,
                         1.7976931348623157e308, 1.0, 65504.0, 6e-8, 1e-45]])
    for name in DTYPE_NAMES:
        assert np.array_equal(ulp(x, name), _ulp_general(x, name), equal_nan=True)
        assert np.array_equal(ulp(x[:4998:3].reshape(-1, 2)[:, :1], name), _ulp_general(x[:4998:3].reshape(-1, 2)[:, :1], name),
                              equal_nan=True)
        assert ulp(np.float64(3.0), name).shape == ()


def test_error_model_bounds_are_computed_once_per_case():
    case = Case.from_id("scale1e+0_float32_16x10_index_mean")
    ref = reference(case, make_inputs(case, 0))
    tol = Tolerances("model")
    loss, grad = np.float32(ref.loss), ref.grad.astype(np.float32)
    first = judged(case, ref, loss, grad, None, None, tol)
    assert len(ref.derived) == 1 and "logits" not in ref.__dict__  # the float64 copies are let go
    bounds = next(iter(ref.derived.values()))
    assert judged(case, ref, loss, grad, None, None, tol) == first
    assert next(iter(ref.derived.values())) is bounds
