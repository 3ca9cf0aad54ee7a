"""The error-model tolerance: sound for a max-shifted implementation computed in the dtype itself,
failing an implementation that loses u |max logit| by not shifting, and scaled by u."""

import numpy as np
import pytest

from tests.helpers.judge import judged
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import info
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.error_model import bounds
from xentcheck.problems.ce.reference import reference

CASES = ("scale1e+4_float32_64x100_soft_mean", "offset1e+8_float32_16x10_index_none", "dominant_float64_16x10_onehot_sum",
         "neartie_bfloat16_64x100_index_mean", "masked_float16_16x10_soft_sum", "scale1e+1_float32_4x50000_index_sum",
         "offset1e+4_float64_3x5_soft_none")


@pytest.mark.parametrize("case_id", CASES)
def test_shifted_implementation_in_the_dtype_is_within_the_bound(case_id):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    out = NumpyBackend().compute(case, inputs, "cpu")
    r = judged(case, reference(case, inputs), out.loss, out.grad, None, None, Tolerances("model"))
    assert r["verdict"] == "pass", r["reasons"]


def _unshifted_loss(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """lse(x) - x_t with lse = max + log(sum exp(x - max)) rounded at the magnitude of max: the
    shift-variant formula of optax's integer-label loss."""
    m = x.max(axis=1)
    lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
    return lse - x[np.arange(len(t)), t]


def test_unshifted_loss_at_a_large_offset_is_out_of_bound():
    case = Case.from_id("offset1e+4_float32_16x10_index_none")
    inputs = make_inputs(case, 0)
    good = NumpyBackend().compute(case, inputs, "cpu")
    loss = _unshifted_loss(inputs.logits, inputs.labels).astype(np.float32)
    r = judged(case, reference(case, inputs), loss, good.grad, None, None, Tolerances("model"))
    assert r["verdict"] == "fail" and r["reasons"][0].startswith("loss:")
    assert "error-model bound" in r["reasons"][0]


def test_bound_scales_with_unit_roundoff_and_the_mean_divides_by_n():
    case = Case.from_id("scale1e+0_float32_64x100_soft_sum")
    ref = reference(case, make_inputs(case, 0))
    lo32, g32 = bounds(case, ref.logits, ref.q, info("float32").eps)
    lo64, g64 = bounds(case, ref.logits, ref.q, info("float64").eps)
    assert float(lo32 / lo64) == pytest.approx(2.0 ** 29)
    np.testing.assert_allclose(g32 / g64, 2.0 ** 29)
    mean = Case(case.family, case.dtype, case.n, case.k, case.labels, "mean")
    lm, gm = bounds(mean, ref.logits, ref.q, info("float32").eps)
    np.testing.assert_allclose(gm * case.n, g32, rtol=1e-12)
    # the sum's bound already counts one final rounding, which for the mean is its division
    assert float(lm) == pytest.approx(float(lo32) / case.n, rel=1e-12)


def test_tighter_than_the_fixed_tables_on_gradients_of_a_mean():
    case = Case.from_id("scale1e+0_float32_128x1000_index_mean")
    ref = reference(case, make_inputs(case, 0))
    _, g = bounds(case, ref.logits, ref.q, info("float32").eps)
    torch_allowed = 1e-5 + 1.3e-6 * np.abs(ref.grad)
    assert np.median(g / torch_allowed) < 0.01
