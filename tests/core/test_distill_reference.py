"""The distillation reference against mpmath at 50 digits (the loss from its definition, the
gradients by mpmath's numerical differentiation of it), its properties, and the case grammar."""

import math

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.problems import problem_of
from xentcheck.problems.distill.cases import DistillInputs, distill_cases, make_inputs, parse
from xentcheck.problems.distill.reference import distill_reference

mpmath.mp.dps = 50


def _mpf(x) -> mpmath.mpf:
    """A float64 or long double exactly (its shortest round-trip digits)."""
    return mpmath.mpf(np.format_float_scientific(x, unique=True))


def _mp_loss(spec, zs, zt, counted, reduction):
    """The reduced loss from the definitions (mpmath numbers in, an mpf out)."""
    t = mpmath.mpf(spec.temperature)
    total, k = mpmath.mpf(0), len(zs[0])
    rows = []
    for a, b, keep in zip(zs, zt, counted):
        def logp(z):
            finite = [x / t for x in z if x != -mpmath.inf]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in finite))
            return [x / t - lse if x != -mpmath.inf else -mpmath.inf for x in z]
        ls, lt = logp(a), logp(b)
        ps = [mpmath.exp(v) if v != -mpmath.inf else mpmath.mpf(0) for v in ls]
        pt = [mpmath.exp(v) if v != -mpmath.inf else mpmath.mpf(0) for v in lt]

        def kl(p, lp, lq):
            return mpmath.fsum(pi * (x - y) for pi, x, y in zip(p, lp, lq) if pi != 0)
        if spec.divergence == "fkl":
            row = kl(pt, lt, ls)
        elif spec.divergence == "rkl":
            row = kl(ps, ls, lt)
        else:
            beta = mpmath.mpf(spec.beta)
            m = [beta * x + (1 - beta) * y for x, y in zip(pt, ps)]
            lm = [mpmath.log(v) if v != 0 else -mpmath.inf for v in m]
            row = beta * kl(pt, lt, lm) + (1 - beta) * kl(ps, ls, lm)
        row *= mpmath.mpf(spec.factor)
        rows.append(row if keep else mpmath.mpf(0))
        total += rows[-1]
    n = sum(bool(c) for c in counted)
    denom = {"batchmean": n, "mean": n * k}.get(reduction, 1)
    return rows if reduction == "none" else total / denom


CASES = [
    "scale1e+0_float32_3x5_kd-fkl_soft_batchmean",
    "scale1e+1_float32_3x6_kd-rkl+t2+sq+tg_index_sum",
    "scale1e+0_float32_2x5_kd-jsd0.3+t0.7+tg_soft_mean",
    "scale1e+0_float64_3x6_kd-jsd0.5+tg+mask_soft_batchmean",
    "offset-1e+4_float64_2x6_kd-jsd0.8+t3+disj_index_sum",
    "scale1e+0_float64_3x5_kd-fkl+t0.5+tg+peak_soft_batchmean",
    "scale1e+1_bfloat16_3x5_kd-rkl+t0.9+sq_soft_none",
]


@pytest.mark.parametrize("case_id", CASES)
def test_reference_matches_mpmath_to_a_hundredth_ulp(case_id):
    case = Case.from_id(case_id)
    spec = parse(case.spec)
    inputs = make_inputs(case, 3)
    ref = distill_reference(case, inputs)
    zs = [[mpmath.mpf(float(v)) for v in row] for row in inputs.student.astype(np.float64)]
    zt = [[mpmath.mpf(float(v)) for v in row] for row in inputs.teacher.astype(np.float64)]
    counted = inputs.counted()
    eps = info(case.dtype).eps
    want = _mp_loss(spec, zs, zt, counted, case.reduction)
    got = np.asarray(ref.loss, dtype=np.longdouble).ravel()
    want_v = want if isinstance(want, list) else [want]
    scale = np.broadcast_to(ref.scales["loss"], got.shape).ravel()
    for g, w, s in zip(got, want_v, scale):
        assert abs(_mpf(g) - w) <= 0.01 * eps * s, (float(g), float(w))
    # the gradients: mpmath's derivative of the summed loss at each finite logit
    for which, z, name in ((0, zs, "grad"), (1, zt, "tgrad")):
        arr = getattr(ref, name)
        for i in range(case.n):
            for j in range(case.k):
                if z[i][j] == -mpmath.inf:
                    assert arr[i, j] == 0
                    continue
                if name == "tgrad" and not spec.teacher_grad:
                    assert arr[i, j] == 0
                    continue

                def f(x, i=i, j=j, z=z, which=which):
                    zz = [list(r) for r in z]
                    zz[i][j] = x
                    out = _mp_loss(spec, *((zz, zt) if which == 0 else (zs, zz)), counted, case.reduction)
                    return mpmath.fsum(out) if isinstance(out, list) else out
                d = mpmath.diff(f, z[i][j])
                row_scale = float(np.ravel(ref.scales[name])[i])
                assert abs(_mpf(arr[i, j]) - d) <= 0.01 * eps * row_scale, \
                    (name, i, j, float(arr[i, j]), float(d))


def test_properties_on_the_full_suite():
    """KL >= 0 and 0 for a teacher equal to the student; JSD symmetric at beta = 1/2 and at most
    -b log b - (1 - b) log(1 - b) <= log 2, with equality for disjoint supports; student-gradient
    rows sum to 0."""
    seen = set()
    for case in distill_cases(["float32", "float64"], full=True):
        spec = parse(case.spec)
        inputs = make_inputs(case, 0)
        ref = distill_reference(case, inputs)
        rows = np.asarray(ref.row_loss, dtype=np.float64)
        assert (rows >= -1e-15).all(), case.id
        if spec.teacher == "same":
            assert (rows == 0).all(), case.id
        if spec.divergence == "jsd":
            b = spec.beta
            bound = -b * math.log(b) - (1 - b) * math.log1p(-b)
            assert (rows <= bound * (1 + 1e-14)).all() and bound <= math.log(2) + 1e-15, case.id
            if spec.teacher == "disj":
                np.testing.assert_allclose(rows, bound, rtol=1e-13)
            if b == 0.5:
                swapped = distill_reference(case, DistillInputs(inputs.teacher, inputs.student, inputs.labels))
                np.testing.assert_allclose(np.asarray(swapped.row_loss, dtype=np.float64), rows, rtol=1e-13, atol=1e-16)
        g = np.asarray(ref.grad, dtype=np.float64)
        scale = np.asarray(ref.scales["grad"], dtype=np.float64)
        assert (np.abs(g.sum(axis=1))[:, None] <= 1e-14 * scale * case.k).all(), case.id
        seen.add((spec.divergence, spec.teacher))
    assert len(seen) == 13  # 3 divergences x 5 teachers, disjoint supports for jsd only


def test_grammar_round_trips_and_refuses():
    for case in distill_cases(["float16", "bfloat16", "float32", "float64"], full=True):
        assert Case.from_id(case.id) == case and problem_of(case).kind == "distill"
    assert Case.from_id("scale1e+0_float32_16x10_index_mean").kind == "ce"  # plain ids unchanged
    for bad, why in (("kd-jsd1", "(0, 1)"), ("kd-jsd0.50", "write the number"), ("kd-fkl+t1", "not 1"),
                     ("kd-fkl+sq", "needs a temperature"), ("kd-rkl+disj", "disjoint"), ("kd-fkl+tg+t2", "order"),
                     ("kd-fkl0.5", "no parameter"), ("kd-kl", "divergence"), ("kd-fkl+warm", "unknown")):
        with pytest.raises(ValueError, match=why):
            Case.from_id(f"scale1e+0_float32_4x10_{bad}_soft_batchmean")
    with pytest.raises(ValueError, match="reduction"):
        Case.from_id("scale1e+0_float32_4x10_kd-fkl_soft_elementwise")
    with pytest.raises(ValueError, match="reduction"):
        Case.from_id("scale1e+0_float32_4x10_index_batchmean")  # batchmean is distillation's
    with pytest.raises(ValueError, match="labels"):
        Case.from_id("scale1e+0_float32_4x10_kd-fkl_onehot_sum")


def test_inputs_are_a_pure_function_of_seed_and_id():
    case = Case.from_id("scale1e+0_bfloat16_8x64_kd-jsd0.25+tg+mask_index_sum")
    a, b = make_inputs(case, 5), make_inputs(case, 5)
    assert a.student.tobytes() == b.student.tobytes() and a.teacher.tobytes() == b.teacher.tobytes()
    assert (a.labels == b.labels).all() and (a.labels == -100).any() and a.labels[0] != -100
    assert make_inputs(case, 6).student.tobytes() != a.student.tobytes()
    padded = np.isneginf(a.student.astype(np.float32))
    assert padded.any() and (padded == np.isneginf(a.teacher.astype(np.float32))).all()
