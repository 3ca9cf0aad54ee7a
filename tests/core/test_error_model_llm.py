"""The model tolerance and the default preset on the LLM-training options: a careful
implementation computed in the tested dtype stays within both on every option and every
combination of llm_cases(full=True); each broken one falls outside."""

from dataclasses import replace

import numpy as np
import pytest

from tests.core.llm_emulation import BROKEN, careful
from tests.helpers.judge import judged
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import DTYPE_NAMES, info
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.cases import llm_cases
from xentcheck.problems.ce.error_model import bounds, options_of, transform
from xentcheck.problems.ce.reference import reference

CASES = [c.id for c in llm_cases(DTYPE_NAMES, full=True)]


@pytest.mark.parametrize("case_id", CASES)
def test_careful_implementation_in_the_dtype_is_within_both_tolerances(case_id):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    loss, grad = careful(case, inputs)
    for preset in ("model", "xentcheck"):
        ref = reference(case, inputs, "torch")
        r = _judged(case, ref, loss, grad, preset)
        assert r["verdict"] in ("pass", "nonfinite"), (preset, r["reasons"])
        if r["verdict"] == "nonfinite":  # only where an intermediate overflows the dtype
            assert _overflows(case, ref), r["reasons"]


def _judged(case, ref, loss, grad, preset: str) -> dict:
    """evaluate()'s record of rows (M,) / (M, K) given back in the case's shape."""
    loss = loss.reshape(case.loss_shape) if case.reduction == "none" else loss
    return judged(case, ref, loss, grad.reshape(case.shape), None, None, Tolerances(preset))


def _overflows(case, ref) -> bool:
    """Whether the dtype overflows computing the case: logits near its maximum, or lse^2."""
    big = info(case.dtype).max
    x = np.abs(ref.logits)
    return bool(np.nanmax(np.where(np.isinf(x), 0, x)) * max(1.0, case.logit_scale or 1.0) > big / 4
                or (case.zloss and np.nanmax(ref.lse) ** 2 > big))


# each broken variant on a case with the option it breaks, where its error is larger than what
# the dtype's rounding can explain: a z-loss of 1e-4 adds 2e-4 lse p to the gradient, below the
# resolution of p in 16-bit dtypes unless lse is large (offset1e+4: 2 p); x tanh(x / c) instead of
# c tanh(x / c) moves a mean loss by less than bfloat16 resolves at |o| = 30, a sum's by far more
BROKEN_CASES = {
    "softcap_x_tanh": "scale1e+2_{}_16x10_index_sum_opt-cap30",
    "softcap_missing": "scale1e+2_{}_16x10_onehot_sum_opt-cap30",
    "zloss_grad_halved": "scale1e+2_{}_16x10_soft_none_opt-z0.01",
    "zloss_when_disabled": "offset1e+4_{}_16x10_index_sum",
    "cotangent_first_row": "scale1e+1_{}_16x10_index_none_opt-ct",
    "cotangent_sign": "scale1e+1_{}_16x10_index_none_opt-z1e-4+ct",
    "scale_missing_in_grad": "scale1e+1_{}_16x10_soft_mean_opt-s3",
}


@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_each_broken_implementation_is_out_of_both_tolerances(broken, dtype):
    case = Case.from_id(BROKEN_CASES[broken].format(dtype))
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs, "torch")
    loss, grad = careful(case, inputs, broken=broken)
    for preset in ("model", "xentcheck"):
        r = _judged(case, ref, loss, grad, preset)
        # a z-loss of lse ~ 1e4 overflows float16's lse^2: NaN/inf where the loss is finite
        assert r["verdict"] in ("fail", "nonfinite"), (preset, r["reasons"])
        good = _judged(case, ref, *careful(case, inputs), preset)
        assert good["verdict"] == "pass", (preset, good["reasons"])


def _opts(**kw):
    from xentcheck.problems.ce.error_model import Options
    base = dict(scale=None, softcap=None, zloss=None, counted=np.ones(1, dtype=bool), denom=1.0, denom_z=1.0,
                cotangent=None)
    return Options(**{**base, **kw})


def test_scale_rounds_unless_a_power_of_two():
    u, x = 2.0 ** -24, np.array([[3.0, -10.0, 0.0]])
    np.testing.assert_array_equal(transform(x, _opts(scale=0.5), u, 0.0).a, 0.0)
    np.testing.assert_array_equal(transform(x, _opts(scale=3.0), u, 0.0).a, 2 * u * np.abs(3 * x))
    assert transform(x, _opts(scale=3.0), u, 0.0).magnitude[0] == 30.0


def test_softcap_far_beyond_c_leaves_the_cap_rounding_and_a_cancelled_chain_factor():
    u, c = 2.0 ** -11, 30.0
    t = transform(np.array([[1e4, -1e4, 0.0]]), _opts(softcap=c), u, 0.0)
    np.testing.assert_allclose(t.o[0], [c, -c, 0.0])
    np.testing.assert_allclose(t.a[0], [4 * u * c, 4 * u * c, 0.0])  # tanh is flat there: only o's own rounding
    np.testing.assert_allclose(t.chain_err[0, :2], 5 * u * (1 + 2 * u) ** 0, rtol=1e-3)  # 1 - t^2 cancels: ~5 u
    assert t.chain_err[0, 2] == pytest.approx(2 * u)  # at 0: t = 0, sech^2 = 1, only the subtraction


def test_spread_is_first_order_for_small_perturbations():
    from xentcheck.problems.ce.error_model import _spread
    p = np.array([[0.5, 0.3, 0.2]])
    a = np.array([[1e-6, 2e-6, 3e-6]])
    dev, b = _spread(p, a)
    assert b[0, 0] == pytest.approx((p * a).sum(), rel=1e-5)
    # o_j up by a_j, the others down: p_j (a_j + sum_{i != j} p_i a_i / (1 - p_j) (1 - p_j)) to first order
    first = p * (a * (1 - p) + (p * a).sum() - p * a)
    np.testing.assert_allclose(dev, first, rtol=1e-5)


def test_cotangent_scales_the_gradient_bound_and_zero_rows_get_none():
    case = Case.from_id("scale1e+1_float32_16x10_index_none_opt-ct")
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs, "torch")
    u, tiny = info("float32").eps, 2.0 ** info("float32").min_exp
    opts = options_of(case, ref)
    _, g = bounds(case, ref.logits, ref.q, u, tiny, opts)
    _, g0 = bounds(case, ref.logits, ref.q, u, tiny, replace(opts, cotangent=None))
    v = np.abs(inputs.cotangent.astype(np.float64))[:, None]
    assert (v == 0).any() and v.max() / v[v > 0].min() > 100
    # SAFETY (|v| G + 2 u |v g| + t), |g| <= 2 here (|p - q| <= 1 plus its perturbation)
    extra = g - v * g0
    assert np.all(extra >= 0) and np.all(extra <= 2 * (2 * u * v * 2 + tiny))
    assert np.all(g[v[:, 0] == 0] == 2 * tiny)  # v = 0: a zero row, allowed only a flushed value


def test_z_loss_adds_its_lse_rounding_to_the_gradient_bound():
    case = Case.from_id("offset1e+4_float32_16x10_index_sum_opt-z1e-4")
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs, "torch")
    u = info("float32").eps
    opts = options_of(case, ref)
    _, g = bounds(case, ref.logits, ref.q, u, 0.0, opts)
    _, g0 = bounds(case, ref.logits, ref.q, u, 0.0, replace(opts, zloss=None))
    p = np.exp(ref.logits - ref.logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # at least SAFETY 2 z p (u |lse|): lse ~ 1e4 is rounded at its own magnitude
    assert np.all(g - g0 >= 2 * 2 * 1e-4 * p * u * np.abs(ref.lse)[:, None] * (1 - 1e-9))
