"""The GRPO reference (the clipped objective reduced by its loss type, and its gradient w.r.t. the
new policy's logits) against mpmath at 50 digits, what its inputs hold, and its case grammar."""

import math

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.problems.grpo.cases import grpo_cases, log_probs64, make_inputs, parse
from xentcheck.problems.grpo.reference import grpo_reference

mpmath.mp.dps = 50
ALL = ["float16", "bfloat16", "float32", "float64"]


def _mpf(x) -> mpmath.mpf:
    """An output (float64 or long double) as mpmath: its shortest round-trip digits."""
    return mpmath.mpf(np.format_float_scientific(x, unique=True))


def _mp_loss(z, inputs, s, loss_type):
    """The reduced loss at logits z (nested lists of mpf), written from the definition: min, clip,
    the k3 penalty and the loss type's mean, with no derivative in sight."""
    b, seq = inputs.mask.shape
    lo, hi = 1 - mpmath.mpf(s.eps_low), 1 + mpmath.mpf(s.eps_high)
    t = mpmath.mpf(s.temperature)
    total, per_seq = mpmath.mpf(0), []
    for i in range(b):
        a_i = mpmath.mpf(float(inputs.advantages[i]))
        row = mpmath.mpf(0)
        for j in range(seq):
            if not inputs.mask[i, j]:
                continue
            a = [v / t for v in z[i][j]]
            logp = a[int(inputs.labels[i, j])] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
            r = mpmath.exp(logp - mpmath.mpf(float(inputs.old_logp[i, j])))
            loss = -min(r * a_i, min(max(r, lo), hi) * a_i)
            if s.beta:
                d = mpmath.mpf(float(inputs.ref_logp[i, j])) - logp
                loss += mpmath.mpf(s.beta) * (mpmath.exp(d) - d - 1)
            row += loss
        per_seq.append(row)
        total += row
    counts = inputs.mask.sum(axis=1)
    if loss_type == "grpo":
        return mpmath.fsum(r / max(1, int(c)) for r, c in zip(per_seq, counts)) / b
    if loss_type == "bnpo":
        return total / max(1, int(counts.sum()))
    return total / (b * seq)


@pytest.mark.parametrize("case_id", ["scale1e+1_float32_2x5x3_grpo-clip0.2+hi0.28+kl0.04+t0.7_index_grpo",
                                     "scale1e+0_float64_2x4x4_grpo-clip0.2_index_bnpo",
                                     "scale1e+0_bfloat16_4x3x2_grpo-clip0.3+kl0.1_index_drgrpo",
                                     "scale1e+0_float16_4x4x3_grpo-clip0.2+t1.5_index_grpo"])
def test_reference_matches_mpmath_to_a_hundredth_ulp(case_id):
    case = Case.from_id(case_id)
    s = parse(case.spec)
    inputs = make_inputs(case, 3)
    ref = grpo_reference(case, inputs)
    eps = info(case.dtype).eps
    z = [[[mpmath.mpf(float(v)) for v in inputs.logits[i, j].astype(np.float64)] for j in range(case.extra[0])]
         for i in range(case.n)]
    loss = _mp_loss(z, inputs, s, case.reduction)
    assert abs(_mpf(ref.loss) - loss) <= 0.01 * eps * ref.scales["loss"]
    for i in range(case.n):
        for j in range(case.extra[0]):
            for c in range(case.k):
                def f(x, i=i, j=j, c=c):
                    zz = [[list(row) for row in seq] for seq in z]
                    zz[i][j][c] = x
                    return _mp_loss(zz, inputs, s, case.reduction)
                # a one-sided difference would straddle nothing: the ratios keep off the clip's ends
                g = mpmath.diff(f, z[i][j][c])
                assert abs(_mpf(ref.grad[i, j, c]) - g) <= 0.01 * eps * ref.scales["grad"][i, j, 0] + 1e-40, \
                    (i, j, c)


def test_every_suite_case_clips_on_both_sides_with_both_signs_and_keeps_off_the_ends():
    """Each case's counted tokens with a nonzero advantage have ratios inside the range and past
    both ends; the min picks the clipped term for positive and for negative advantages; every
    ratio (from the rounded old log-probability) is 0.05 or more in log from either end, where a
    16-bit log p is off by far less, so no kernel's verdict hangs on a rounding at the clip."""
    cases = grpo_cases(ALL, full=True)
    assert len(cases) >= 40 and {c.reduction for c in cases} == {"grpo", "bnpo", "drgrpo"}
    for case in cases:
        s = parse(case.spec)
        inputs = make_inputs(case, 0)
        ref = grpo_reference(case, inputs)
        delta = log_probs64(inputs.logits, inputs.labels, s.temperature) - inputs.old_logp.astype(np.float64)
        lo, hi = math.log1p(-s.eps_low), math.log1p(s.eps_high)
        assert np.minimum(abs(delta - lo), abs(delta - hi)).min() >= 0.05, case.id
        adv = np.broadcast_to(inputs.advantages.astype(np.float64)[:, None], delta.shape)
        live = inputs.mask.astype(bool) & (adv != 0)
        if case.k < 1000:  # K = 32,000 cases have 2 x 4 tokens: too few to hold every combination
            assert (live & (delta < lo)).any() and (live & (delta > hi)).any(), case.id
            assert (live & (delta > lo) & (delta < hi)).any(), case.id
            assert (ref.clipped & live & (adv > 0)).any() and (ref.clipped & live & (adv < 0)).any(), case.id
            assert (~ref.clipped & live & ((delta < lo) | (delta > hi))).any(), case.id  # outside, yet the min picks r A
        g = np.asarray(ref.grad, dtype=np.float64)
        assert (g[ref.clipped & (s.beta == 0)] == 0).all() and (g[~inputs.mask.astype(bool)] == 0).all(), case.id
        assert (np.abs(g.sum(axis=-1)) <= 1e-13 * ref.scales["grad"][..., 0] * case.k).all(), case.id


def test_inputs_are_a_function_of_seed_and_id():
    case = grpo_cases(["float32"])[0]
    a, b, c = make_inputs(case, 5), make_inputs(case, 5), make_inputs(case, 6)
    for name in a.ARRAYS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.logits.tobytes() != c.logits.tobytes()
    assert a.mask[3].sum() == 0 and a.mask[:2].all()  # an empty completion and full ones


def test_grammar():
    for case in grpo_cases(ALL, full=True):
        assert Case.from_id(case.id) == case and case.kind == "grpo"
    for bad in ("grpo-clip0.2+hi0.2", "grpo-clip0.20", "grpo-kl0.1", "grpo-clip0.2+t1", "grpo-clip0.01",
                "grpo-clip0.2+t0.7+kl0.1", "grpo-clip0.2+x1"):
        with pytest.raises(ValueError):
            Case.from_id(f"scale1e+0_float32_4x10x3_{bad}_index_grpo")
    with pytest.raises(ValueError, match="reduction"):
        Case.from_id("scale1e+0_float32_4x10x3_grpo-clip0.2_index_mean")
    with pytest.raises(ValueError, match="extra"):
        Case.from_id("scale1e+0_float32_4x10_grpo-clip0.2_index_grpo")
    with pytest.raises(ValueError, match="one completion"):
        Case.from_id("scale1e+0_float32_0x10x3_grpo-clip0.2_index_grpo")
    with pytest.raises(ValueError, match="scale"):
        Case.from_id("offset1e+4_float32_4x10x3_grpo-clip0.2_index_grpo")


def test_xentcheck_reference_takes_a_grpo_callers_arrays():
    """A dict with old_logps is GRPO's (before RL's, whose keys it also holds); its settings come as
    `spec` and `loss_type`; an RL dict still gives RL's outputs."""
    import xentcheck
    case = Case.from_id("scale1e+1_float32_6x100x8_grpo-clip0.2+hi0.28+kl0.04+t0.7_index_bnpo")
    i = make_inputs(case, 1)
    got = xentcheck.reference({"policy_logits": i.logits, "tokens": i.labels, "old_logps": i.old_logp,
                               "ref_logps": i.ref_logp, "advantages": i.advantages, "completion_mask": i.mask,
                               "spec": case.spec, "loss_type": "bnpo"})
    want = grpo_reference(case, i)
    assert set(got.outputs) == {"loss", "grad"} and float(got.loss) == float(want.loss)
    assert np.array_equal(got.outputs["grad"], want.grad)
    rl = xentcheck.reference({"policy_logits": i.logits[0], "tokens": i.labels[0], "advantages": i.old_logp[0]})
    assert set(rl.outputs) == {"loss", "entropy", "grad", "egrad"}
    with pytest.raises(ValueError, match="B, L, K"):
        xentcheck.reference({"policy_logits": i.logits[0], "tokens": i.labels[0], "old_logps": i.old_logp[0],
                             "advantages": i.advantages})
