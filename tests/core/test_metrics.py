"""Error metrics and verdicts on hand-made arrays."""

import numpy as np
import pytest

from tests.helpers.judge import judged
from xentcheck.core.cases import Case
from xentcheck.core.dtypes import ulp
from xentcheck.core.metrics import array_metrics
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.reference import Reference


def test_ulp_of_each_dtype_at_one_and_below_normal():
    assert ulp(np.array(1.0), "float32") == 2.0 ** -23
    assert ulp(np.array(1.5), "float16") == 2.0 ** -10
    assert ulp(np.array(1.0), "bfloat16") == 2.0 ** -7
    assert ulp(np.array(1.0), "float64") == 2.0 ** -52
    assert ulp(np.array(0.0), "float32") == 2.0 ** -149  # subnormal spacing
    assert ulp(np.array(1e-42), "float32") == 2.0 ** -149


def test_abs_rel_ulp_errors():
    ref = np.array([1.0, -2.0, 0.5])
    act = np.array([1.0 + 2 ** -22, -2.0, 0.5], dtype=np.float32)
    m = array_metrics(act, ref, "float32", rtol=0.0, atol=0.0)
    assert m["abs_err"] == 2 ** -22
    assert m["rel_err"] == 2 ** -22
    assert m["ulp_err"] == 2.0
    assert m["n_exceed"] == 1 and m["worst_index"] == [0]


def test_nan_never_passes_against_a_finite_value():
    m = array_metrics(np.array([np.nan, 0.0]), np.array([0.0, 0.0]), "float32", rtol=1.0, atol=1.0)
    assert m["n_nonfinite_mismatch"] == 1 and m["worst_index"] == [0]


def test_inf_is_expected_where_the_true_value_overflows_the_dtype():
    m = array_metrics(np.array([np.inf], np.float16), np.array([70000.0]), "float16", rtol=1e-3, atol=0)
    assert m["n_nonfinite_mismatch"] == 0
    m = array_metrics(np.array([np.inf], np.float16), np.array([60000.0]), "float16", rtol=1e-3, atol=0)
    assert m["n_nonfinite_mismatch"] == 1
    m = array_metrics(np.array([-np.inf], np.float32), np.array([np.inf]), "float32", rtol=1, atol=1)
    assert m["n_nonfinite_mismatch"] == 1


def test_scaled_atol():
    ref, act = np.array([1e-6]), np.array([2e-6])
    assert array_metrics(act, ref, "float32", 0.0, 1e-6, scale=1.0)["n_exceed"] == 0
    assert array_metrics(act, ref, "float32", 0.0, 1e-6, scale=0.5)["n_exceed"] == 1


def _ref(case, grad):
    return Reference(np.asarray(0.5), np.asarray(grad, dtype=np.float64), "float64",
                     np.full(case.n, 0.5), np.ones(case.n))


@pytest.mark.parametrize("preset", ["xentcheck", "torch", "jax"])
def test_verdicts(preset):
    case = Case("scale1e+0", "float32", 1, 2, "index", "mean")
    tol = Tolerances(preset)
    ref = _ref(case, [[0.25, -0.25]])
    ok = judged(case, ref, np.float32(0.5), np.array([[0.25, -0.25]], np.float32), None, None, tol)
    assert ok["verdict"] == "pass" and ok["reasons"] == []
    bad = judged(case, ref, np.float32(0.5), np.array([[0.26, -0.25]], np.float32), None, None, tol)
    assert bad["verdict"] == "fail" and "greatest absolute difference" in bad["reasons"][0]
    assert "at index [0, 0]" in bad["reasons"][0]
    nan = judged(case, ref, np.float32(np.nan), np.array([[0.25, -0.25]], np.float32), None, None, tol)
    assert nan["verdict"] == "nonfinite"
    dt = judged(case, ref, np.float64(0.5), np.array([[0.25, -0.25]]), None, None, tol)
    assert dt["verdict"] == "widened" and "loss computed in float64, wider than the requested float32" in dt["reasons"]
    narrow = judged(case, ref, np.float16(0.5), np.array([[0.25, -0.25]], np.float16), None, None, tol)
    assert narrow["verdict"] == "fail" and "loss computed in float16, requested float32" in narrow["reasons"]
    shape = judged(case, ref, np.float32(0.5), np.array([0.25, -0.25], np.float32), None, None, tol)
    assert shape["verdict"] == "fail" and "gradient shape [2], expected [1, 2]" in shape["reasons"]


def test_xentcheck_preset_is_eight_units_of_roundoff_at_the_natural_scale():
    tol = Tolerances()
    assert tol.get("float32", "grad") == (8 * 2.0 ** -24, 8 * 2.0 ** -24)
    case = Case("scale1e+0", "float32", 4, 2, "index", "mean")  # gradient scale 1/4
    ref = _ref(case, np.zeros((4, 2)))
    within = judged(case, ref, np.float32(0.5), np.full((4, 2), 7.9 * 2 ** -24 / 4, np.float32), None, None, tol)
    beyond = judged(case, ref, np.float32(0.5), np.full((4, 2), 8.5 * 2 ** -24 / 4, np.float32), None, None, tol)
    assert within["verdict"] == "pass" and beyond["verdict"] == "fail"


def test_overrides_and_bad_specs():
    tol = Tolerances("torch")
    tol.override("rtol", "float16=1e-2,float32=1e-6")
    tol.override("atol", "0")
    assert tol.get("float16", "loss") == (1e-2, 0.0) and tol.get("float32", "grad") == (1e-6, 0.0)
    assert tol.get("bfloat16", "loss") == (1.6e-2, 0.0)
    assert "overridden" in tol.origin["float16"]
    for bad in ["", "x", "-1", "inf", "float8=1", "float16=", "float16=abc"]:
        with pytest.raises(ValueError):
            tol.override("rtol", bad)
