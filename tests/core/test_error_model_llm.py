"""The model tolerance and the default preset on the LLM-training options: a careful
implementation computed in the tested dtype stays within both on every option and every
combination of llm_cases(full=True); each broken one falls outside."""

import numpy as np
import pytest

from xentcheck.core.cases import Case, llm_cases, make_inputs
from xentcheck.core.dtypes import DTYPE_NAMES, info
from xentcheck.core.error_model import bounds, options_of, transform
from xentcheck.core.metrics import natural_scales
from xentcheck.core.reference import reference
from xentcheck.core.tolerances import Tolerances
from tests.core.llm_emulation import BROKEN, careful
from tests.helpers.judge import judged

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
