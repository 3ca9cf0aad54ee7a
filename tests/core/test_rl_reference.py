"""The RL reference (token log-probabilities, entropy, their gradients with per-token cotangents)
against mpmath at 50 digits, its properties, and its case grammar."""

import math

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.problems.rl.cases import make_inputs, parse, rl_cases
from xentcheck.problems.rl.reference import rl_reference

mpmath.mp.dps = 50


def _mpf(x) -> mpmath.mpf:
    """An output (float64 or long double) as mpmath: its shortest round-trip digits."""
    return mpmath.mpf(np.format_float_scientific(x, unique=True))


def _mp_row(z, y, t):
    a = [v / t for v in z]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
    lp = [v - lse for v in a]
    p = [mpmath.exp(v) for v in lp]
    h = -mpmath.fsum(pi * v for pi, v in zip(p, lp))
    return lp[y], h


@pytest.mark.parametrize("case_id", ["scale1e+1_float32_3x6_rl-lp+t0.7_index_none",
                                     "offset-1e+4_float64_2x5_rl-lp_index_none",
                                     "scale1e+0_bfloat16_4x5_rl-lp+t0.6+peak_index_none",
                                     "offset1e+8_float64_2x4_rl-lp+t1.5_index_none"])
def test_reference_matches_mpmath_to_a_hundredth_ulp(case_id):
    case = Case.from_id(case_id)
    t = mpmath.mpf(parse(case.spec).temperature)
    inputs = make_inputs(case, 2)
    ref = rl_reference(case, inputs)
    eps = info(case.dtype).eps
    for i in range(case.n):
        z = [mpmath.mpf(float(v)) for v in inputs.logits[i].astype(np.float64)]  # exactly
        y = int(inputs.labels[i])
        logp, h = _mp_row(z, y, t)
        assert abs(_mpf(ref.loss[i]) - logp) <= 0.01 * eps * ref.scales["loss"][i]
        assert abs(_mpf(ref.entropy[i]) - h) <= 0.01 * eps * ref.scales["entropy"][i]
        adv, coef = (mpmath.mpf(float(v[i])) for v in (inputs.advantages, inputs.coefficients))
        for j in range(case.k):
            def f(x, j=j, which=0, z=z, y=y):
                zz = list(z)
                zz[j] = x
                return _mp_row(zz, y, t)[which]
            dlogp = adv * mpmath.diff(f, z[j])
            dh = coef * mpmath.diff(lambda x, j=j: f(x, j, 1), z[j])
            assert abs(_mpf(ref.grad[i, j]) - dlogp) <= 0.01 * eps * ref.scales["grad"][i, 0]
            assert abs(_mpf(ref.egrad[i, j]) - dh) <= 0.01 * eps * ref.scales["egrad"][i, 0]


def test_properties_on_the_full_suite():
    """0 <= H <= log K; log p_y <= 0; the log-probability gradient's rows sum to 0 (and to A_n at y)."""
    cases = rl_cases(["float32", "float64"], full=True)
    assert len(cases) >= 20
    for case in cases:
        inputs = make_inputs(case, 0)
        ref = rl_reference(case, inputs)
        h = np.asarray(ref.entropy, dtype=np.float64)
        assert (h >= 0).all() and (h <= math.log(case.k) * (1 + 1e-15)).all(), case.id
        assert (np.asarray(ref.loss, dtype=np.float64) <= 0).all(), case.id
        g = np.asarray(ref.grad, dtype=np.float64)
        assert (np.abs(g.sum(axis=1)) <= 1e-14 * ref.scales["grad"][:, 0] * case.k).all(), case.id
        eg = np.asarray(ref.egrad, dtype=np.float64)
        assert (np.abs(eg.sum(axis=1)) <= 1e-13 * ref.scales["egrad"][:, 0] * case.k).all(), case.id


def test_grammar():
    for case in rl_cases(["float16", "bfloat16", "float32", "float64"], full=True):
        assert Case.from_id(case.id) == case and case.kind == "rl"
    for bad in ("rl-lp+t1", "rl-lp+peak+t2", "rl-lp+t0.70", "rl-kl"):
        with pytest.raises(ValueError):
            Case.from_id(f"scale1e+0_float32_4x10_{bad}_index_none")
    with pytest.raises(ValueError, match="reduction"):
        Case.from_id("scale1e+0_float32_4x10_rl-lp_index_mean")
    with pytest.raises(ValueError, match="index labels"):
        Case.from_id("scale1e+0_float32_4x10_rl-lp_soft_none")
