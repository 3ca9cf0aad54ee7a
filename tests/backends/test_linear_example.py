"""examples/linear_backend.py: a linear-CE plugin passes its cases, in this process through the
worker's compute and the one evaluation function."""

import importlib.util

import numpy as np

from tests.conftest import ROOT
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.evaluate import Subject, evaluate
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.linear.reference import linear_reference
from xentcheck.run.worker import compute


def _plugin():
    spec = importlib.util.spec_from_file_location("linear_backend", ROOT / "examples/linear_backend.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BACKEND()


def test_the_linear_example_passes_and_its_outputs_are_compared():
    backend = _plugin()
    (v,) = backend.variants()
    for case_id in ("scale1e+0_float32_32x1000_lin64_index_mean_opt-b", "scale1e+1_float64_20x77_lin16_index_sum_opt-ign",
                    "dominant_float32_16x2000_lin64_index_none_opt-ign+b"):
        case = Case.from_id(case_id)
        inputs = make_inputs(case, 0)
        out = compute(backend, v, case, inputs, "cpu")
        assert out.status == "ok", out.error
        r = evaluate(case, Subject("chunked-linear-ce", v.impl, v.mode), out, Tolerances(),
                     reference=linear_reference(case, inputs, "torch"))
        assert r.verdict == "pass", (case_id, r.reasons)
        assert r.metrics["dh"].size == case.n * case.d and r.metrics["dw"].size == case.k * case.d
        assert ("db" in r.metrics) == ("b" in case.option_set) and "grad" not in r.metrics


def test_a_wrong_gradient_is_caught_by_the_same_path():
    backend = _plugin()
    (v,) = backend.variants()
    case = Case.from_id("scale1e+0_float32_32x1000_lin64_index_mean_opt-b")
    inputs = make_inputs(case, 0)
    out = compute(backend, v, case, inputs, "cpu")
    out.grads["dw"] = out.grads["dw"] * np.float32(1 + 1e-4)  # 1e-4 relative: ~800 u of float32
    r = evaluate(case, Subject("x"), out, Tolerances(), reference=linear_reference(case, inputs, "torch"))
    assert r.verdict == "fail" and r.metrics["dw"].n_exceed > 0 and r.metrics["dh"].n_exceed == 0
    assert any(reason.startswith("dW (gradient of W)") for reason in r.reasons)
