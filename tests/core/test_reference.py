"""The reference against hand-checked numbers and against mpmath at 50 digits."""

import mpmath
import numpy as np
import pytest

from tests.helpers.bits import assert_grad_matches_whole_array, assert_loss_matches_whole_array, value_bits
from xentcheck.core import dtypes
from xentcheck.core.cases import ALL_LABEL_FORMS, FAMILIES, Case, Inputs, default_suite, make_inputs
from xentcheck.problems.ce.reference import label_matrix, reference


def _case(labels="index", reduction="mean", dtype="float32", n=1, k=3):
    return Case("scale1e+0", dtype, n, k, labels, reduction)


def test_hand_checked_seed_case():
    # logits [1, 2, 3], label 2, mean over N=1 (the numbers)
    case = _case()
    ref = reference(case, Inputs(np.array([[1, 2, 3]], np.float32), np.array([2]), np.array([2])))
    assert float(ref.loss) == pytest.approx(0.40760596444438, rel=1e-12)
    np.testing.assert_allclose(ref.grad, [[0.09003057317038, 0.24472847105479, -0.33475904422517]], rtol=1e-11)


def test_mean_sum_none_relations():
    x = np.array([[0.2, 0.3, 0.5], [0.5, 0.2, 0.3]], np.float64)
    t = np.array([2, 1])
    refs = {r: reference(_case(reduction=r, dtype="float64", n=2), Inputs(x, t, t)) for r in ("mean", "sum", "none")}
    rows = np.array([np.log(np.exp(x[i]).sum()) - x[i, t[i]] for i in range(2)])
    np.testing.assert_allclose(refs["none"].loss, rows, rtol=1e-15)
    assert float(refs["sum"].loss) == pytest.approx(rows.sum(), rel=1e-15)
    assert float(refs["mean"].loss) == pytest.approx(rows.mean(), rel=1e-15)
    np.testing.assert_allclose(refs["mean"].grad * 2, refs["sum"].grad, rtol=1e-15)


def test_soft_labels_not_summing_to_one_use_p_times_sum_q_minus_q():
    x = np.array([[1.0, -1.0, 0.5]])
    q = np.array([[0.5, 0.25, 0.5]])  # sums to 1.25
    ref = reference(_case(labels="soft", reduction="sum", dtype="float64"), Inputs(x, q, np.array([0])))
    p = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(ref.grad, p * 1.25 - q, rtol=1e-14)
    assert float(ref.loss) == pytest.approx(-(q * np.log(p)).sum(), rel=1e-14)


def test_guide_example_where_naive_log_softmax_plus_eps_fails():
    # GUIDE.md: a naive log(softmax + eps) gives 22.16 where the truth is 9395.016
    x = np.array([[-4885.46, 4878.03]])
    q = np.array([[0.962, 0.038]])
    ref = reference(_case(labels="soft", reduction="sum", dtype="float64", k=2), Inputs(x, q, np.array([0])))
    # the guide prints rounded labels; with these exact ones the truth is 0.962 * (4878.03 + 4885.46)
    assert float(ref.loss) == pytest.approx(0.962 * (4878.03 + 4885.46), rel=1e-14)
    p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    naive = float(-(q * np.log(p + 1e-10)).sum())
    assert naive == pytest.approx(22.16, abs=0.01)  # what the naive reference would have said


def test_masked_class_with_zero_label_contributes_nothing():
    x = np.array([[0.0, -np.inf, 1.0]])
    q = np.array([[0.25, 0.0, 0.75]])
    ref = reference(_case(labels="soft", reduction="sum", dtype="float64"), Inputs(x, q, np.array([2])))
    p = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    assert float(ref.loss) == pytest.approx(-(0.25 * np.log(p[0]) + 0.75 * np.log(p[1])), rel=1e-14)
    assert ref.grad[0, 1] == 0.0 and np.isfinite(ref.grad).all()


def test_dominant_logit_gradient_keeps_relative_accuracy():
    # p_target - 1 = -e^-50 / (1 + e^-50): float64 subtraction would give exactly 0
    x = np.array([[50.0, 0.0]])
    ref = reference(_case(dtype="float64", k=2, reduction="sum"), Inputs(x, np.array([0]), np.array([0])))
    expected = -mpmath.exp(-50) / (1 + mpmath.exp(-50))
    assert float(ref.grad[0, 0]) == pytest.approx(float(expected), rel=1e-15)
    assert float(ref.loss) == pytest.approx(float(mpmath.log1p(mpmath.exp(-50))), rel=1e-15)


# --- against mpmath on every default family ---------------------------------------------

def _mp_rows(x: np.ndarray, q: np.ndarray) -> tuple[list, list, list]:
    """Per-row loss, gradient and the gradient's term scale max(p*Q, q), at 50 digits."""
    losses, grads, scales = [], [], []
    with mpmath.workdps(50):
        for xr, qr in zip(x, q):
            xs = [mpmath.mpf(float(v)) for v in xr]
            qs = [mpmath.mpf(float(v)) for v in qr]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
            big_q = mpmath.fsum(qs)
            losses.append(mpmath.fsum(qj * (lse - v) for qj, v in zip(qs, xs) if qj != 0))
            p = [mpmath.exp(v - lse) for v in xs]
            grads.append([pj * big_q - qj for pj, qj in zip(p, qs)])
            scales.append([max(abs(pj * big_q), abs(qj)) for pj, qj in zip(p, qs)])
    return losses, grads, scales


def _family_cases():
    """One case per family x dtype x label form, shapes capped so mpmath stays quick."""
    seen, out = set(), []
    for c in default_suite():
        key = (c.family, c.dtype, c.labels)
        if key in seen or c.kind not in ("ce", "linear"):  # distillation and RL: their own reference tests
            continue
        seen.add(key)
        out.append(Case(c.family, c.dtype, min(c.n, 6), min(c.k, 300), c.labels, "none"))
    return out


def _to_mp(v) -> mpmath.mpf:
    """A float64 or longdouble value as an mpmath number; the shortest round-tripping decimal
    identifies the value (longdouble keeps magnitudes that float64 would flush to zero)."""
    return mpmath.mpf(np.format_float_scientific(v, unique=True))


@pytest.mark.parametrize("case", _family_cases(), ids=lambda c: c.id)
def test_reference_error_below_one_hundredth_ulp_against_mpmath(case):
    inputs = make_inputs(case, seed=3)
    ref = reference(case, inputs)
    q = label_matrix(case, inputs, np.float64)
    losses, grads, scales = _mp_rows(inputs.logits.astype(np.float64), q)
    with mpmath.workdps(50):
        for i in range(case.n):
            err = abs(_to_mp(ref.loss[i]) - losses[i])
            assert err <= mpmath.mpf(0.01) * float(dtypes.ulp(np.array(float(losses[i])), case.dtype)), (case.id, i)
            for j in range(case.k):
                err = abs(_to_mp(ref.grad[i, j]) - grads[i][j])
                # ULP at the larger of the two terms p*sum(q) and q: the scale at which the
                # dtype itself must round them before they cancel
                bound = mpmath.mpf(0.01) * float(dtypes.ulp(np.array(float(scales[i][j])), case.dtype))
                assert err <= bound, (case.id, i, j, float(err), bound)


def test_every_family_and_label_form_is_cross_checked():
    cases = _family_cases()
    assert {c.family for c in cases} == set(FAMILIES)
    assert {c.labels for c in cases} == set(ALL_LABEL_FORMS)  # unnorm: the p * sum(q) - q rows
    assert {c.dtype for c in cases} == set(dtypes.DTYPE_NAMES)


def test_large_k_row_against_mpmath():
    case = Case("scale1e+1", "float32", 1, 50000, "soft", "sum")
    inputs = make_inputs(case, seed=1)
    ref = reference(case, inputs)
    losses, _, _ = _mp_rows(inputs.logits.astype(np.float64), inputs.labels.astype(np.float64))
    assert abs(mpmath.mpf(float(ref.loss)) - losses[0]) <= 0.01 * float(dtypes.ulp(np.array(float(losses[0])), "float32"))


@pytest.mark.parametrize("case_id", ["masked_float32_37x50_soft_mean", "dominant_float64_33x20_index_sum",
                                     "neartie_bfloat16_19x64_onehot_none", "offset1e+8_float64_4x50000_index_mean",
                                     "scale1e+1_float32_37x50_index_mean", "dominant_float64_21x30_index_mean"])
@pytest.mark.parametrize("chunk", [1, 64, 1000])
def test_row_chunks_match_the_whole_array_formula(monkeypatch, reference_kernel, case_id, chunk):
    import xentcheck.problems.ce.reference as ref_mod
    from xentcheck.problems.ce.reference import reduce, softmax_xent, working_precision
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 3)
    wp = np.longdouble if working_precision(case.dtype) == "longdouble" else np.float64
    rows, grad, big_q = softmax_xent(inputs.logits.astype(wp), label_matrix(case, inputs, wp))
    loss, grad = reduce(case, rows, grad)
    for name in ("CHUNK_ELEMENTS", "KERNEL_CHUNK_ELEMENTS"):  # 1: a row per chunk; 64, 1000: ragged last chunks
        monkeypatch.setattr(ref_mod, name, chunk)
    ref = reference(case, inputs)
    assert_loss_matches_whole_array(case, ref.loss, loss)
    assert_grad_matches_whole_array(case, ref.grad, grad)
    assert value_bits(ref.label_sum) == value_bits(big_q.astype(np.float64))
    assert ref.logits.tobytes() == inputs.logits.astype(np.float64).tobytes()


@pytest.mark.parametrize("case_id", ["scale1e+0_float32_4x5_index_none_opt-ign",
                                     "scale1e+0_float32_4x5_index_mean_opt-ign",
                                     "scale1e+0_float32_4x5_index_none_opt-ign+z1e-4",
                                     "scale1e+0_float64_4x5_index_sum_opt-w+ign"])
def test_an_ignored_row_is_zero_whatever_its_logits(case_id):
    """torch masks an ignored target's row before reading it: a +inf or NaN logit there changes
    nothing (found by a fuzz campaign, where the reference gave NaN for such a row)."""
    from xentcheck.core.cases import IGNORE_INDEX, Case, make_inputs
    from xentcheck.problems.ce.reference import reference

    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    inputs.labels[:] = [1, IGNORE_INDEX, 3, IGNORE_INDEX]
    clean = reference(case, inputs, "torch")
    inputs.logits[1, 2], inputs.logits[3, 0] = np.inf, np.nan
    got = reference(case, inputs, "torch")
    np.testing.assert_array_equal(got.grad, clean.grad)
    np.testing.assert_array_equal(got.loss, clean.loss)
    assert np.all(got.grad[[1, 3]] == 0) and np.isfinite(got.loss).all()
    inputs.labels[1] = 0  # kept, its +inf logit makes the row undefined again
    assert np.isnan(reference(case, inputs, "torch").grad[1]).all()
