"""The reference of probability-input compositions (xentcheck.problems.ce.probs): Keras's clipped
from_logits=False by hand (the issue's 16.118 against -log softmax's 35.7) and against mpmath."""

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case, Inputs, make_inputs
from xentcheck.problems.ce.probs import clip_bounds
from xentcheck.problems.ce.reference import reference, reference_key


def _issue_inputs(dtype):
    x = np.array([[14.4, 50.1, 3.5]]).astype(Case("scale1e+0", dtype, 1, 3, "index", "none").dtype
                                             if dtype != "bfloat16" else np.float32)
    return Inputs(x, np.array([0]), np.array([0]))


def test_the_issue_example():
    """softmax([14.4, 50.1, 3.5]) with label 0: p_0 = e^-35.7 ~ 3e-16 clips to eps = 1e-7 (float32:
    1.00000001e-7), so Keras's loss is -log(eps) = 16.118095..., where the cross-entropy is 35.7;
    every p clips (p_1 = 1 - 3e-16 > 1 - 1e-7), so no gradient flows."""
    case = Case("scale1e+0", "float32", 1, 3, "index", "none")
    inputs = Inputs(np.array([[14.4, 50.1, 3.5]], dtype=np.float32), np.array([0]), np.array([0]))
    eps32 = float(np.float32(1e-7))
    plain = reference(case, inputs)
    assert plain.loss[0] == pytest.approx(35.7, abs=2e-6)  # float32 logits: 50.1 - 14.4 to within their rounding
    keras = reference(case, inputs, "keras_clip")
    assert keras.loss[0] == pytest.approx(-np.log(eps32), rel=1e-15)
    assert round(float(keras.loss[0]), 3) == 16.118
    assert not keras.grad.any()
    # TensorFlow's sparse form renormalises the clipped row: + log(2 eps + (1 - eps) rounded), ~ +1e-7
    tf_sparse = reference(case, inputs, "keras_clip_tf_sparse")
    hi = float(np.float32(1 - 1e-7))
    assert tf_sparse.loss[0] == pytest.approx(-np.log(eps32) + np.log(2 * eps32 + hi), rel=1e-15)
    assert not tf_sparse.grad.any()


def test_bounds_per_dtype():
    assert clip_bounds("float64") == (1e-7, 1 - 1e-7)
    assert clip_bounds("float32") == (float(np.float32(1e-7)), float(np.float32(1 - 1e-7)))
    lo16, hi16 = clip_bounds("float16")
    assert hi16 == 1.0 and lo16 == 2 * 2.0 ** -24  # 1e-7 rounds to two float16 subnormal steps
    assert clip_bounds("bfloat16")[1] == 1.0


def test_unclipped_rows_are_the_cross_entropy():
    """Logits within a few units: no p near eps or 1 - eps, so the clipped composition's loss and
    gradient are the plain ones (its gradient's formula p sum(r u) - r u with u = 1)."""
    case = Case.from_id("scale1e+0_float64_16x10_soft_mean")
    inputs = make_inputs(case, 0)
    plain, clipped = reference(case, inputs, "keras"), reference(case, inputs, "keras_clip")
    np.testing.assert_allclose(clipped.loss, plain.loss, rtol=1e-15)
    np.testing.assert_allclose(clipped.grad, plain.grad, rtol=1e-13, atol=1e-18)


def _mp_clipped(x, r, semantics, lo, hi):
    """One row of the clipped composition in mpmath, written from keras/src/backend/*/nn.py."""
    m = max(v for v in x)
    e = [mpmath.exp(mpmath.mpf(v) - m) for v in x]
    s = mpmath.fsum(e)
    p = [v / s for v in e]
    c = [min(max(v, lo), hi) for v in p]
    u = [1 if lo < v < hi else 0 for v in p]
    big_q = mpmath.fsum(r)
    loss = -mpmath.fsum(rj * mpmath.log(cj) for rj, cj in zip(r, c) if rj)
    sru = mpmath.fsum(rj * uj for rj, uj in zip(r, u))
    grad = [pk * sru - rk * uk for pk, rk, uk in zip(p, r, u)]
    if semantics == "keras_clip_tf_sparse":
        big_c = mpmath.fsum(c)
        sup = mpmath.fsum(uj * pj for uj, pj in zip(u, p))
        loss += big_q * mpmath.log(big_c)
        grad = [g + big_q / big_c * (uk * pk - pk * sup) for g, uk, pk in zip(grad, u, p)]
    return loss, grad


@pytest.mark.parametrize("semantics", ["keras_clip", "keras_clip_tf_sparse"])
@pytest.mark.parametrize("case_id", ["scale1e+1_float32_16x10_soft_none", "dominant_float64_8x50_unnorm_none",
                                     "scale1e+2_float16_16x10_index_none"])
def test_against_mpmath(semantics, case_id):
    """Random rows (some p below eps, the dominant rows' top p above 1 - eps) against mpmath."""
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs, semantics)
    x = inputs.logits.astype(np.float64)
    r = ref.q
    lo, hi = clip_bounds(case.dtype)
    clipped = 0
    with mpmath.workdps(50):
        for i in range(case.rows):
            loss, grad = _mp_clipped(x[i], [mpmath.mpf(v) for v in r[i]], semantics, mpmath.mpf(lo), mpmath.mpf(hi))
            assert ref.loss[i] == pytest.approx(float(loss), rel=1e-14, abs=1e-300)
            # within 1e-16 of the row's scale max(1, sum r) = 1 (the renormalisation term cancels in float64)
            np.testing.assert_allclose(ref.grad[i], [float(g) for g in grad], rtol=1e-12, atol=1e-16 * max(1, float(r[i].sum())))
            p = np.exp(x[i] - x[i].max()) / np.exp(x[i] - x[i].max()).sum()
            clipped += int(((p < lo) | (p > hi)).any())
    assert clipped  # the cases do reach the clip


def test_references_are_cached_per_clipped_composition():
    case = Case.from_id("scale1e+1_float32_16x10_soft_none")
    assert reference_key(case, "keras_clip") == "keras_clip"
    assert reference_key(case, "keras") == "plain"  # no options: every reading is the plain one
