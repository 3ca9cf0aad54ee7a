"""Keras's clipped forward KL (semantics "keras_clip", xentcheck.problems.distill.clip): by hand on
a 1x3 row, against mpmath at 50 digits where the clip acts on both distributions, equal to the
forward-KL reference to the bit where it does not, its properties on the suites' forward-KL
cases, and the clip's undecidable edge."""

import math

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.problems.distill import clip
from xentcheck.problems.distill.cases import DistillInputs, distill_cases, make_inputs, parse
from xentcheck.problems.distill.reference import distill_reference

mpmath.mp.dps = 50


def _mpf(x) -> mpmath.mpf:
    return mpmath.mpf(np.format_float_scientific(x, unique=True))


def test_epsilon_is_rounded_to_the_dtype():
    assert clip.epsilon("float16") == 2.0 ** -23  # two subnormal spacings
    assert clip.epsilon("bfloat16") == pytest.approx(1.0011717677116394e-07, rel=0, abs=0)
    assert clip.epsilon("float32") == float(np.float32(1e-7)) != 1e-7
    assert clip.epsilon("float64") == 1e-7


def test_a_1x3_row_by_hand():
    """z_s = (0, 0, -30), z_t = (0, -30, 0): the student's third and the teacher's second
    probability (e^-30 / D, D = 2 + e^-30) are clipped to eps."""
    case = Case.from_id("scale1e+0_float32_1x3_kd-fkl_soft_sum")
    zs, zt = np.array([[0, 0, -30]], np.float32), np.array([[0, -30, 0]], np.float32)
    ref = distill_reference(case, DistillInputs(zs, zt, None), "keras_clip")
    e, q = clip.epsilon("float32"), math.exp(-30)
    d = 2 + q
    loss = e * (math.log(e) + math.log(d)) + (-math.log(d) - math.log(e)) / d  # 1/D log 1 + eps log(eps D) + 1/D log(1/(D eps))
    s = 1 / d + e  # the kept teacher's mass: classes 0 and 1
    grad = [-1 / d + s / d, -e + s / d, q / d * s]
    assert float(ref.loss) == pytest.approx(loss, rel=1e-15)
    np.testing.assert_allclose(ref.grad.astype(np.float64)[0], grad, rtol=1e-14, atol=0)  # the float64 arithmetic here
    assert float(ref.grad[0, 0]) == pytest.approx(-0.25 + e / 2, rel=1e-12)  # D ~ 2: (-1/2 + eps) / 2
    assert not ref.tgrad.any()
    plain = distill_reference(case, DistillInputs(zs, zt, None))
    assert float(plain.loss) == pytest.approx(15, rel=1e-12)  # unclipped: 30 / D on the teacher's third class
    assert float(ref.loss) == pytest.approx(7.7125, rel=1e-4)


def _mp_loss(spec, zs, zt, eps, reduction):
    """The clipped forward KL from Keras's definition (mpmath numbers in), reduced."""
    t, rows = mpmath.mpf(spec.temperature), []
    for a, b in zip(zs, zt):
        def probs(z):
            lse = mpmath.log(mpmath.fsum(mpmath.exp(x / t) for x in z))
            return [mpmath.exp(x / t - lse) for x in z]
        cs = [max(p, eps) for p in probs(a)]
        ct = [max(p, eps) for p in probs(b)]
        rows.append(mpmath.fsum(y * mpmath.log(y / x) for y, x in zip(ct, cs)) * mpmath.mpf(spec.factor))
    return rows if reduction == "none" else mpmath.fsum(rows) / ({"batchmean": len(rows)}.get(reduction, 1))


CLIPPED = [
    "scale1e+2_float32_3x8_kd-fkl+t3+sq_soft_none",
    "scale1e+1_bfloat16_3x6_kd-fkl+t0.5_soft_sum",
    "scale1e+0_float64_2x8_kd-fkl+peak_soft_batchmean",
    "scale1e+0_float16_2x8_kd-fkl+t2+peak_soft_batchmean",
]


@pytest.mark.parametrize("case_id", CLIPPED)
def test_clipped_reference_matches_mpmath_to_a_hundredth_ulp(case_id):
    case = Case.from_id(case_id)
    spec = parse(case.spec)
    inputs = make_inputs(case, 3)
    ref = distill_reference(case, inputs, "keras_clip")
    eps, e = clip.epsilon(case.dtype), mpmath.mpf(clip.epsilon(case.dtype))
    zs = [[mpmath.mpf(float(v)) for v in row] for row in inputs.student.astype(np.float64)]
    zt = [[mpmath.mpf(float(v)) for v in row] for row in inputs.teacher.astype(np.float64)]
    # the clip acts: on the teacher always, on the student where the logits spread
    for z in (inputs.teacher, *([inputs.student] if not spec.teacher == "peak" else [])):
        x = z.astype(np.float64) / spec.temperature
        p = np.exp(x - x.max(axis=1, keepdims=True))
        assert (p / p.sum(axis=1, keepdims=True) < eps).any(), case_id
    u = info(case.dtype).eps
    want = _mp_loss(spec, zs, zt, e, case.reduction)
    got = np.asarray(ref.loss, dtype=np.longdouble).ravel()
    scale = np.broadcast_to(ref.scales["loss"], got.shape).ravel()
    for g, w, s in zip(got, want if isinstance(want, list) else [want], scale):
        assert abs(_mpf(g) - w) <= 0.01 * u * s, (float(g), float(w))
    for i in range(case.n):
        for j in range(case.k):
            def f(x, i=i, j=j):
                zz = [list(r) for r in zs]
                zz[i][j] = x
                out = _mp_loss(spec, zz, zt, e, case.reduction)
                return mpmath.fsum(out) if isinstance(out, list) else out
            d = mpmath.diff(f, zs[i][j])
            assert abs(_mpf(ref.grad[i, j]) - d) <= 0.01 * u * float(np.ravel(ref.scales["grad"])[i]), \
                (i, j, float(ref.grad[i, j]), float(d))


@pytest.mark.parametrize("case_id", ["scale1e+0_float32_16x100_kd-fkl_soft_none",
                                     "scale1e+0_float64_8x32_kd-fkl+t2+sq_soft_batchmean",
                                     "scale1e+0_bfloat16_8x32_kd-fkl+same_soft_sum"])
def test_without_the_clip_it_is_forward_kl_to_the_bit(case_id):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    for z in (inputs.student, inputs.teacher):
        x = z.astype(np.float64) / parse(case.spec).temperature
        p = np.exp(x - x.max(axis=1, keepdims=True))
        assert (p / p.sum(axis=1, keepdims=True)).min() > 10 * clip.epsilon(case.dtype)
    a, b = distill_reference(case, inputs, "keras_clip"), distill_reference(case, inputs)
    for name in ("loss", "grad", "tgrad", "row_loss"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("loss", "grad"):
        assert np.array_equal(a.scales[name], b.scales[name]), name


def test_properties_on_the_keras_cases_of_the_full_suite():
    """Not a KL: a row is at least -K eps (and can be below 0), 0 for an equal teacher; the
    student-gradient rows still sum to 0."""
    seen, negative = 0, 0
    for case in distill_cases(["float16", "bfloat16", "float32", "float64"], full=True):
        spec = parse(case.spec)
        if spec.divergence != "fkl" or spec.teacher_grad or case.labels != "soft":
            continue
        ref = distill_reference(case, make_inputs(case, 0), "keras_clip")
        rows = np.asarray(ref.row_loss, dtype=np.float64)
        assert (rows >= -case.k * clip.epsilon(case.dtype)).all(), case.id
        negative += int((rows < 0).sum())
        if spec.teacher == "same":
            assert (rows == 0).all(), case.id
        g, scale = np.asarray(ref.grad, dtype=np.float64), np.asarray(ref.scales["grad"], dtype=np.float64)
        assert (np.abs(g.sum(axis=1))[:, None] <= 1e-14 * scale * case.k).all(), case.id
        seen += 1
    assert seen >= 20
    # below 0: both third classes clipped to eps, where the teacher's first two hold 2e-8 less than
    # the student's (e^-17 / 2 against e^-40 / 2): L ~ -2e-8
    zs, zt = np.array([[0, 0, -40.0]]), np.array([[0, 0, -17.0]])  # p_s,3 ~ 2e-18, p_t,3 ~ 2e-8
    row = distill_reference(Case.from_id("scale1e+0_float64_1x3_kd-fkl_soft_sum"), DistillInputs(zs, zt, None),
                            "keras_clip").row_loss[0]
    assert -3e-7 < row < 0


def test_only_forward_kl_with_a_detached_teacher_is_modelled():
    for spec in ("kd-rkl", "kd-jsd0.5", "kd-fkl+tg"):
        case = Case.from_id(f"scale1e+0_float32_2x4_{spec}_soft_sum")
        with pytest.raises(ValueError, match="forward KL with a detached teacher"):
            distill_reference(case, make_inputs(case, 0), "keras_clip")


def test_a_probability_at_the_clip_is_undecidable_only_where_its_flip_matters():
    """p_s,3 = 2 eps e^(a - log 2 eps) / (2 + ...) lies within float32's softmax error of eps: the
    dtype cannot say whether Keras passes its gradient. That moves the gradient by c(p_t,3): by
    0.99 for a teacher that puts its mass there (skipped), by eps for one that does not (judged)."""
    case = Case.from_id("scale1e+0_float32_1x3_kd-fkl_soft_sum")
    e = clip.epsilon("float32")
    zs = np.array([[0, 0, math.log(2 * e)]], np.float32)
    why = clip.undecidable(case, DistillInputs(zs, np.array([[0, 0, 5]], np.float32), None))
    assert why is not None and "(row 0, class 2)" in why and "clip at 1e-07" in why
    assert clip.undecidable(case, DistillInputs(zs, np.array([[0, 0, -30]], np.float32), None)) is None
    # away from the band (x 1.01, 100 times the softmax's error): decided, whatever the teacher
    far = np.array([[0, 0, math.log(2 * e) + 0.01]], np.float32)
    assert clip.undecidable(case, DistillInputs(far, np.array([[0, 0, 5]], np.float32), None)) is None
    # float16: eps is two subnormal spacings s; p within s of it is undecided, p = 4e-18 is not (it
    # rounds to 0 or to s, both below eps)
    case16 = Case.from_id("scale1e+0_float16_1x3_kd-fkl_soft_sum")
    teacher = np.array([[0, 0, 5]], np.float16)
    for p, undecided in ((1.5e-7, True), (7e-8, True), (4e-18, False), (3e-7, False)):
        near = np.array([[0, 0, math.log(2 * p)]], np.float16)
        assert bool(clip.undecidable(case16, DistillInputs(near, teacher, None))) is undecided, p
