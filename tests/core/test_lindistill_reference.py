"""The linear distillation reference (the distillation divergence of h_s W_s^T against h_t W_t^T,
and the student's dh and dW) against mpmath at 50 digits, and its case grammar."""

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.core.dtypes import info
from xentcheck.problems.distill.cases import parse as parse_kd
from xentcheck.problems.lindistill.cases import kd_case, lindistill_cases, make_inputs, parse
from xentcheck.problems.lindistill.reference import lindistill_reference

mpmath.mp.dps = 50
ALL = ["float16", "bfloat16", "float32", "float64"]


def _mpf(x) -> mpmath.mpf:
    return mpmath.mpf(np.format_float_scientific(x, unique=True))


def _mat(a) -> list:
    return [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(a).astype(np.float64)]


def _loss(hs, ws, ht, wt, labels, s, reduction):
    """The loss from the definition: logits by their sums, log-softmax, the divergence's sum."""
    t = mpmath.mpf(s.temperature)
    beta = {"fkl": 0, "rkl": 1}.get(s.divergence, mpmath.mpf(s.beta))
    total, counted = mpmath.mpf(0), 0
    for n in range(len(hs)):
        if labels is not None and labels[n] == IGNORE_INDEX:
            continue
        counted += 1
        rows = []
        for h, w in ((hs[n], ws), (ht[n], wt)):
            z = [mpmath.fsum(a * b for a, b in zip(h, wv)) / t for wv in w]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
            rows.append([v - lse for v in z])
        ls, lt = rows
        if beta == 0:
            row = mpmath.fsum(mpmath.exp(b) * (b - a) for a, b in zip(ls, lt))
        elif beta == 1:
            row = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(ls, lt))
        else:
            lm = [mpmath.log(beta * mpmath.exp(b) + (1 - beta) * mpmath.exp(a)) for a, b in zip(ls, lt)]
            row = beta * mpmath.fsum(mpmath.exp(b) * (b - m) for b, m in zip(lt, lm)) + \
                (1 - beta) * mpmath.fsum(mpmath.exp(a) * (a - m) for a, m in zip(ls, lm))
        total += row
    total *= mpmath.mpf(s.factor)
    return total / counted if reduction == "batchmean" else total


@pytest.mark.parametrize("case_id", ["scale1e+0_float32_3x5_lkd-d2+jsd0.25+t2+sq_index_batchmean",
                                     "scale1e+1_float64_2x4_lkd-d3+fkl+t0.7_soft_sum",
                                     "scale1e+0_bfloat16_3x4_lkd-d2+rkl_soft_batchmean"])
def test_reference_matches_mpmath_to_a_hundredth_ulp(case_id):
    case = Case.from_id(case_id)
    s = parse_kd(kd_case(case).spec)
    inputs = make_inputs(case, 4)
    ref = lindistill_reference(case, inputs)
    eps = info(case.dtype).eps
    hs, ws, ht, wt = (_mat(getattr(inputs, a)) for a in inputs.ARRAYS[:4])
    labels = inputs.labels
    assert abs(_mpf(ref.loss) - _loss(hs, ws, ht, wt, labels, s, case.reduction)) <= 0.01 * eps * ref.scales["loss"]
    for name, m in (("dh", hs), ("dw", ws)):
        for i in range(len(m)):
            for j in range(len(m[0])):
                def f(x, i=i, j=j, name=name):
                    a = [list(r) for r in (hs if name == "dh" else ws)]
                    a[i][j] = x
                    return _loss(a, ws, ht, wt, labels, s, case.reduction) if name == "dh" else \
                        _loss(hs, a, ht, wt, labels, s, case.reduction)
                g = mpmath.diff(f, m[i][j])
                assert abs(_mpf(getattr(ref, name)[i, j]) - g) <= 0.01 * eps * ref.scales[name][i, j], (name, i, j)


def test_grammar_and_inputs():
    for case in lindistill_cases(ALL, full=True):
        assert Case.from_id(case.id) == case and case.kind == "lindistill"
        assert parse(case.spec).d == make_inputs(case, 0).student_hidden.shape[1]
    for bad in ("lkd-d64", "lkd-d064+fkl", "lkd-d0+fkl", "lkd-d8+jsd0.5+tg", "lkd-d8+fkl+peak", "lkd-8+fkl"):
        with pytest.raises(ValueError):
            Case.from_id(f"scale1e+0_float32_4x10_{bad}_index_batchmean")
    with pytest.raises(ValueError, match="reduction"):
        Case.from_id("scale1e+0_float32_4x10_lkd-d8+fkl_index_mean")
    case = lindistill_cases(["float32"])[0]
    a, b = make_inputs(case, 1), make_inputs(case, 1)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in a.ARRAYS)
    assert not np.array_equal(a.student_hidden, a.teacher_hidden)  # two streams


def test_xentcheck_reference_takes_a_callers_hidden_states_and_weights():
    import xentcheck
    case = Case.from_id("scale1e+0_float32_6x50_lkd-d8+jsd0.5+t2_index_batchmean")
    i = make_inputs(case, 2)
    got = xentcheck.reference({"student_hidden": i.student_hidden, "student_weight": i.student_weight,
                               "teacher_hidden": i.teacher_hidden, "teacher_weight": i.teacher_weight,
                               "labels": i.labels, "kd_spec": "kd-jsd0.5+t2"})
    want = lindistill_reference(case, i)
    assert set(got.outputs) == {"loss", "dh", "dw"} and float(got.loss) == float(want.loss)
    assert np.array_equal(got.outputs["dw"], want.dw)


def test_a_dw_rounded_once_passes_where_the_true_entries_underflow():
    """Peaked rows at scale 50 / T 0.7 give dW entries far below float32's subnormals (the true
    value rounds to 0, correctly): the floor of the natural scales judges that rounding in bound,
    while an error of a subnormal spacing's thousands stays out of it."""
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.distill.metrics import metrics_of

    case = Case.from_id("scale5e+1_float32_6x665_lkd-d43+rkl+t0.7+sq_index_sum")
    ref = lindistill_reference(case, make_inputs(case, 0))
    dw = np.asarray(ref.dw, dtype=np.float64)
    tiny = 2.0 ** info("float32").min_exp
    underflow = (dw != 0) & (np.abs(dw) < 2.0 ** -149)  # below the smallest subnormal: rounds to 0
    assert underflow.sum() > 100 and np.all(np.asarray(ref.scales["dw"]) >= tiny)
    tol = Tolerances()
    once = metrics_of(case, "dw", "grad", dw.astype(np.float32), ref.dw, ref.scales["dw"], tol)
    assert once["n_exceed"] == 0
    at_floor = underflow & (np.asarray(ref.scales["dw"]) < 2 * tiny)  # no other term in the scale
    off = dw.astype(np.float32)
    off[at_floor] = np.float32(2.0 ** -149 * 1000)
    assert at_floor.sum() > 100
    assert metrics_of(case, "dw", "grad", off, ref.dw, ref.scales["dw"], tol)["n_exceed"] == at_floor.sum()
