"""The linear-CE metamorphic checks catch kernels: a toy whose two chunk settings disagree fails
chunk_settings, one that disagrees with the materialised composition fails vs_composition, and
the careful one passes both (tests/helpers/toy_backends/linear_chunked.py)."""

import importlib.util

import pytest

from tests.conftest import ROOT
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.tolerances import Tol, Tolerances
from xentcheck.run.worker import compute

CASES = ("scale1e+0_float32_32x1000_lin64_index_mean_opt-b", "scale1e+1_float64_48x300_lin32_index_sum_opt-b")


def _backend():
    spec = importlib.util.spec_from_file_location("linear_chunked", ROOT / "tests/helpers/toy_backends/linear_chunked.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BACKEND()


def _properties(case_id: str) -> dict[str, dict]:
    backend = _backend()
    variants = backend.variants()
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    rtol, atol = Tolerances().get(case.dtype, "grad")
    tol = Tol(rtol, atol, True)
    out = {}
    for v in variants:
        res = compute(backend, v, case, inputs, "cpu", tol, variants)
        assert res.status == "ok", res.error
        out[v.impl] = {k: p["verdict"] for k, p in res.properties.items()} | {
            k + "_detail": p["detail"] for k, p in res.properties.items()}
    return out


@pytest.mark.parametrize("case_id", CASES)
def test_chunk_settings_and_composition_checks_catch_the_toys(case_id):
    props = _properties(case_id)
    assert props["toy_composed"]["vs_composition"] == "skipped"  # the composition itself
    assert props["toy_composed"]["chunk_settings"] == "skipped"  # no _c<chunk> sibling
    for c in ("c4", "c8"):
        careful, acc, g = props[f"careful_{c}"], props[f"bf16acc_{c}"], props[f"g_bf16_{c}"]
        assert careful["chunk_settings"] == "pass" and careful["vs_composition"] == "pass", careful
        assert acc["chunk_settings"] == "fail" and acc["vs_composition"] == "fail", acc
        assert "in dw" in acc["chunk_settings_detail"], acc  # the dW buffer is what differs
        assert g["chunk_settings"] == "pass", g  # rounding G does not depend on the chunk
        assert g["vs_composition"] == "fail" and "in dh" in g["vs_composition_detail"], g
    # the sibling of _c4 is _c8 and back
    assert "against bf16acc_c8" in props["bf16acc_c4"]["chunk_settings_detail"]
    assert "against bf16acc_c4" in props["bf16acc_c8"]["chunk_settings_detail"]


def test_equal_nan_and_inf_outputs_agree_and_a_nan_pattern_does_not():
    """An empty batch's mean is NaN in both APIs (and in the reference): that is agreement. A NaN
    gradient where the other API has zeros is not."""
    import numpy as np

    from xentcheck.problems.linear.properties import _agree
    from xentcheck.problems.linear.reference import linear_reference

    case = Case.from_id("scale1e+0_float32_8x100_lin8_index_mean_opt-allign")
    ref = linear_reference(case, make_inputs(case, 0), "torch")
    assert np.isnan(ref.loss) and not np.asarray(ref.dh).any()
    tol = Tol(*Tolerances().get("float32", "grad"), True)
    zeros = {"loss": np.float32(np.nan), "dh": np.zeros((8, 8), np.float32), "dw": np.zeros((100, 8), np.float32)}
    assert _agree(case, ref, zeros, dict(zeros), tol)["verdict"] == "pass"
    nan_dh = {**zeros, "dh": np.full((8, 8), np.nan, np.float32)}
    res = _agree(case, ref, nan_dh, zeros, tol)
    assert res["verdict"] == "fail" and "dh: NaN pattern differs" in res["detail"]
    off = {**zeros, "dw": np.full((100, 8), 1e-3, np.float32)}
    assert _agree(case, ref, off, zeros, tol)["verdict"] == "fail"


def test_a_compiled_composition_is_checked_against_its_eager_run():
    """A backend's composition in a compiled mode (here a toy "jit" that rounds G to bfloat16
    before G W) is compared with the same composition run eagerly: caught; eager itself: skipped."""
    import ml_dtypes

    from xentcheck.backends.base import Variant

    careful = type(_backend()).__mro__[1]  # linear_careful.CarefulLinear: run_variant applies self.breaks

    class Compiled(careful):
        def variants(self):
            return [Variant("toy_composed", m, ("index",), options=("b",), kind="linear") for m in ("eager", "jit")]

        def run_variant(self, variant, case, inputs, device):
            self.breaks = {"round_g": ml_dtypes.bfloat16} if variant.mode == "jit" else {}
            return super().run_variant(variant, case, inputs, device)

    b = Compiled()
    case = Case.from_id(CASES[0])
    inputs = make_inputs(case, 0)
    tol = Tol(*Tolerances().get(case.dtype, "grad"), True)
    eager, jit = b.variants()
    assert compute(b, eager, case, inputs, "cpu", tol, b.variants()).properties["vs_composition"]["verdict"] == "skipped"
    res = compute(b, jit, case, inputs, "cpu", tol, b.variants()).properties["vs_composition"]
    assert res["verdict"] == "fail" and res["detail"].startswith("against toy_composed (eager):") and "in dh" in res["detail"]
