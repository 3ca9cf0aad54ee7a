"""LLM-training options (z-loss, softcap, logit scale, upstream cotangent): their id tokens, their
inputs, and the reference against an independent mpmath computation at 50 digits (hand cases,
every option family on generated cases, and a central finite difference of the loss)."""

import mpmath
import numpy as np
import pytest

from xentcheck.core import dtypes as dtypes_mod
from xentcheck.core.cases import (
    COTANGENT_EXPONENTS,
    IGNORE_INDEX,
    Case,
    Inputs,
    default_suite,
    format_param,
    full_suite,
    make_inputs,
    parse_option,
)
from xentcheck.problems.ce import reference as ref_mod
from xentcheck.problems.ce.cases import THIRD, llm_cases
from xentcheck.problems.ce.reference import reference

BASE = "scale1e+0_float32_16x10_index_mean"


# --- ids ---------------------------------------------------------------------------------

def test_params_round_trip_exactly_and_are_canonical():
    rng = np.random.default_rng(5)
    # random bit patterns: every finite float64 has exactly one text, which gives it back
    values = rng.integers(0, 2**63 - 1, 2000, dtype=np.int64).view(np.float64)
    values = [float(v) for v in values if np.isfinite(v)] + [1e-4, 30.0, 0.5, 3.0, 1024.0, 1 / 3, 1e-3, 1e6, 5e-324]
    for v in values:
        text = format_param(v)
        assert float(text) == v and all(ch in "0123456789.-e" for ch in text), (v, text)
        assert parse_option(f"cap{text}") == ("cap", v) if v > 0 else parse_option(f"ct{text}") == ("ct", v)
    assert [format_param(v) for v in (1e-4, 30.0, 0.5, 3.0, 1024.0, 2.5e-7, 1e6, 999999.0)] == \
        ["1e-4", "30", "0.5", "3", "1024", "2.5e-7", "1e6", "999999"]
    assert THIRD == "0.3333333333333333" and float(THIRD) == 1 / 3


def test_option_tokens_parse_to_typed_parameters():
    case = Case.from_id("scale1e+0_float32_16x10_index_none_opt-w+ign+ls+s0.5+cap30+z1e-4+ct")
    assert case.option_set == {"w", "ign", "ls", "s", "cap", "z", "ct"}  # names: what a backend declares
    assert (case.logit_scale, case.softcap, case.zloss, case.cotangent, case.cotangent_rows) == \
        (0.5, 30.0, 1e-4, None, True)
    assert case.llm and not Case.from_id(f"{BASE}_opt-w+ls").llm
    scalar = Case.from_id(f"{BASE}_opt-s3+ct{THIRD}")
    assert (scalar.logit_scale, scalar.cotangent, scalar.cotangent_rows, scalar.softcap, scalar.zloss) == \
        (3.0, 1 / 3, False, None, None)
    assert Case.from_id(f"{BASE}_opt-ct-1024").cotangent == -1024.0
    plain = Case.from_id(BASE)
    assert (plain.logit_scale, plain.softcap, plain.zloss, plain.cotangent, plain.option_set) == \
        (None, None, None, None, frozenset())


@pytest.mark.parametrize("opts", [
    "z0.0001", "cap30.0", "s1", "s", "z", "cap", "z0", "z-1e-4", "cap-30", "s-2", "ct1", "ct0", "w3", "ls0.1",
    "zz", "z1e-4+s0.5", "z1e-4+z1e-3", "oor+z1e-4", "cap1e+1", "z1E-4", "s1e400", "s.5", "s05", "ct",
])
def test_bad_option_tokens_are_refused(opts):
    with pytest.raises(ValueError):
        Case.from_id(f"{BASE}_opt-{opts}")  # BASE is a mean: "ct" (per element) needs none


def test_cotangent_kinds_match_the_reduction():
    for good in ["scale1e+0_float32_4x5_soft_none_opt-ct", "scale1e+0_float32_4x5_soft_sum_opt-ct1024",
                 f"scale1e+0_float32_4x5_onehot_mean_opt-ct{THIRD}"]:
        assert Case.from_id(good).id == good
    for bad in ["scale1e+0_float32_4x5_soft_mean_opt-ct", "scale1e+0_float32_4x5_soft_sum_opt-ct",
                "scale1e+0_float32_4x5_soft_none_opt-ct1024"]:
        with pytest.raises(ValueError, match="cotangent"):
            Case.from_id(bad)
    with pytest.raises(ValueError, match="index labels"):
        Case.from_id("scale1e+0_float32_4x5_soft_mean_opt-ign+z1e-4")


def test_llm_cases_round_trip_and_are_in_the_suites():
    small, full = llm_cases(), llm_cases(full=True)
    assert set(small) <= set(full) and len(set(full)) == len(full)
    for case in full:
        assert Case.from_id(case.id) == case and case.llm
    for name in ("z", "cap", "s", "ct"):  # each option in the default list, in every dtype
        for dt in ("float16", "bfloat16", "float32", "float64"):
            assert any(name in c.option_set and c.dtype == dt for c in small), (name, dt)
    assert any(c.cotangent_rows for c in small) and {c.cotangent for c in small} >= {1024.0, 1 / 3}
    assert {c.logit_scale for c in small} >= {0.5, 3.0}
    default, whole = default_suite(), full_suite()
    # the small list follows the plain cases (which keep their places); the full suite has all
    i = default.index(small[0])
    assert default[i:i + len(small)] == small and not any(c.llm for c in default[:i])
    assert set(full) <= set(whole) and len(set(whole)) == len(whole)


# --- inputs ------------------------------------------------------------------------------

def test_per_element_cotangent_is_seeded_rounded_and_spread():
    case = Case.from_id("scale1e+0_bfloat16_64x10_index_none_opt-ign+ct")
    a, b = make_inputs(case, 3), make_inputs(case, 3)
    v = a.cotangent
    assert v.dtype == a.logits.dtype and v.shape == (64,) and v.tobytes() == b.cotangent.tobytes()
    assert v.tobytes() != make_inputs(case, 4).cotangent.tobytes()
    f = v.astype(np.float64)
    nonzero = np.abs(f[f != 0])
    assert (f == 0).sum() >= 1 and f[-1] == 0 and (f > 0).sum() >= 10 and (f < 0).sum() >= 10
    lo, hi = COTANGENT_EXPONENTS
    assert nonzero.min() >= 2.0**lo and nonzero.max() < 2.0 ** (hi + 1)
    assert nonzero.max() / nonzero.min() > 1e3  # orders of magnitude apart
    assert len(set(f[:8])) > 4  # not one value for every row


def test_scalar_cotangent_is_rounded_to_the_dtype():
    assert make_inputs(Case.from_id(f"scale1e+0_bfloat16_4x5_soft_mean_opt-ct{THIRD}"), 0).cotangent \
        .astype(np.float64) == 0.333984375  # 1/3 in bfloat16, what the backend is fed
    got = make_inputs(Case.from_id("scale1e+0_float16_4x5_soft_sum_opt-ct1024"), 0).cotangent
    assert got.shape == () and got.dtype == np.float16 and float(got) == 1024.0
    assert make_inputs(Case.from_id(BASE), 0).cotangent is None


def test_options_before_the_cotangent_keep_their_draws():
    # ct's draws come after every other option's: the same id less "+ct" stream-shares nothing,
    # but within one id the weights and ignored rows come first, as for the other options
    case = Case.from_id("scale1e+0_float32_16x10_index_none_opt-w+ign+ct")
    inp = make_inputs(case, 0)
    assert inp.weights.shape == (10,) and (inp.labels == IGNORE_INDEX).any() and inp.cotangent.shape == (16,)


# --- an independent reference in mpmath (torch's documented formula, written per row) ------

def _mp(v) -> mpmath.mpf:
    return mpmath.mpf(float(v))


def _mp_loss(x, case: Case, inputs: Inputs, semantics: str = "torch"):
    """v . loss at the logits x (rows of mpf), from torch's documentation and the issue's
    options: CE(c tanh(s x / c)) + z lse^2 per kept row; mean: CE over the weights' sum, z-loss
    over the kept rows' count."""
    k, e = case.k, _mp(inputs.smoothing)
    w = [_mp(v) for v in inputs.weights] if inputs.weights is not None else [mpmath.mpf(1)] * k
    s, c, z = case.logit_scale, case.softcap, case.zloss
    ce, zl, denom, kept = [], [], mpmath.mpf(0), 0
    for n, row in enumerate(x):
        o = [v * _mp(s) if s else v for v in row]
        o = [_mp(c) * mpmath.tanh(v / _mp(c)) for v in o] if c else o
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in o))
        nll = [lse - v for v in o]
        if case.labels == "index":
            t = int(inputs.labels[n])
            if t == IGNORE_INDEX:
                ce.append(mpmath.mpf(0)), zl.append(mpmath.mpf(0))
                continue
            ce.append((1 - e) * w[t] * nll[t] + e / k * mpmath.fsum(w[j] * nll[j] for j in range(k)))
            denom += w[t]
        else:
            q = [(1 - e) * _mp(v) + e / k if inputs.smoothing else _mp(v) for v in inputs.labels[n]]
            ce.append(mpmath.fsum(w[j] * q[j] * nll[j] for j in range(k)))
            denom += 1
        zl.append(_mp(z) * lse**2 if z else mpmath.mpf(0))
        kept += 1
    if semantics == "plain":
        denom, kept = len(x), len(x)
    if case.reduction == "mean":
        loss = mpmath.fsum(ce) / denom + mpmath.fsum(zl) / kept
    elif case.reduction == "sum":
        loss = mpmath.fsum(ce) + mpmath.fsum(zl)
    else:
        loss = [a + b for a, b in zip(ce, zl)]
    if inputs.cotangent is None:
        return loss, mpmath.fsum(loss) if case.reduction == "none" else loss
    v = inputs.cotangent.astype(np.float64)
    if case.reduction == "none":
        return loss, mpmath.fsum(_mp(vi) * li for vi, li in zip(v, loss))
    return loss, _mp(v) * loss


def _mp_check(case: Case, inputs: Inputs, semantics: str = "torch", rel: float = 1e-13):
    """The reference's loss against _mp_loss at 50 digits, and its gradient against a central
    difference of v . loss in mpmath at 70 digits (h = 1e-25: truncation ~h^2, rounding ~1e-45 of
    the loss, so entries down to ~1e-40 of the loss are resolved, as the reference resolves them)."""
    ref = reference(case, inputs, semantics)
    with mpmath.workdps(50):
        x = [[_mp(v) for v in row] for row in inputs.logits.astype(np.float64)]
        loss, total = _mp_loss(x, case, inputs, semantics)
        want = np.array([float(v) for v in loss]) if case.reduction == "none" else float(loss)
        floor = 1e-40 * max(1.0, abs(float(total)))
    with mpmath.workdps(70):
        h = mpmath.mpf("1e-25")
        grad = np.zeros(inputs.logits.shape)
        for i in range(len(x)):
            for j in range(len(x[0])):
                keep = x[i][j]
                x[i][j] = keep + h
                up = _mp_loss(x, case, inputs, semantics)[1]
                x[i][j] = keep - h
                down = _mp_loss(x, case, inputs, semantics)[1]
                x[i][j] = keep
                grad[i, j] = float((up - down) / (2 * h))
    np.testing.assert_allclose(ref.loss, want, rtol=rel, atol=0)
    np.testing.assert_allclose(ref.grad, grad, rtol=rel, atol=max(floor, rel * np.abs(grad).max()))
    return ref, grad


X = np.array([[0.2, 0.3, 0.5], [0.5, 0.2, 0.3], [-1.5, 2.0, 0.25]])
W = np.array([2.0, 4.0, 6.0])


def _hand(options: str, reduction: str = "mean", labels=(2, 1, 0), form: str = "index", x=X, dtype="float64",
          weights=None, smoothing=0.0, cotangent=None) -> tuple[Case, Inputs]:
    case = Case.from_id(f"scale1e+0_{dtype}_{x.shape[0]}x{x.shape[1]}_{form}_{reduction}_opt-{options}")
    lab = np.asarray(labels) if form == "index" else np.asarray(labels, dtype=np.float64).astype(x.dtype)
    cot = None if cotangent is None else np.asarray(cotangent, dtype=x.dtype)
    return case, Inputs(x.astype(dtype), lab, np.zeros(x.shape[0], dtype=np.int64), weights, smoothing, cot)


def test_zloss_by_hand():
    case, inp = _hand("z0.01", "sum")
    ref, _ = _mp_check(case, inp)
    lse = np.log(np.exp(X).sum(axis=1))
    plain = lse - X[[0, 1, 2], [2, 1, 0]]
    assert float(ref.loss) == pytest.approx((plain + 1e-2 * lse**2).sum(), rel=1e-14)
    np.testing.assert_allclose(ref.lse, lse, rtol=1e-15)
    # rows of the gradient sum to 2 z lse (no longer 0)
    np.testing.assert_allclose(ref.grad.sum(axis=1), 2 * 0.01 * lse, rtol=1e-12)


def test_softcap_by_hand_and_far_beyond_the_cap():
    case, inp = _hand("cap2", "none")
    ref, _ = _mp_check(case, inp)
    o = 2 * np.tanh(X / 2)
    p = np.exp(o) / np.exp(o).sum(axis=1, keepdims=True)
    g = (p - np.eye(3)[[2, 1, 0]]) * (1 - np.tanh(X / 2) ** 2)
    np.testing.assert_allclose(ref.grad, g, rtol=1e-14)
    # |x| >> c, in float32: capped logits stay finite, the chain factor underflows to its true value
    big = np.array([[3e38, -3e38, 5.0, 1e30], [-1e20, 0.0, 40.0, 1e3]], dtype=np.float32)
    case, inp = _hand("cap30", "sum", labels=(0, 2), x=big, dtype="float32")
    ref, grad = _mp_check(case, inp)
    assert np.isfinite(ref.loss) and np.isfinite(ref.grad).all()
    assert ref.grad[0, 0] == 0 and ref.grad[0, 3] == 0 and ref.grad[1, 2] != 0
    # the known wrong form x tanh(x / c) is far from the reference
    wrong = X * np.tanh(X / 2)
    assert not np.allclose(np.log(np.exp(wrong).sum(axis=1)) - wrong[[0, 1, 2], [2, 1, 0]],
                           reference(*_hand("cap2", "none")).loss, rtol=1e-2)


def test_logit_scale_by_hand_and_with_huge_logits():
    for s in ("0.5", "3"):
        case, inp = _hand(f"s{s}", "sum")
        ref, _ = _mp_check(case, inp)
        y = float(s) * X
        p = np.exp(y) / np.exp(y).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(ref.grad, float(s) * (p - np.eye(3)[[2, 1, 0]]), rtol=1e-14)
    # the JAX report: CE(x / 3) at [1e12, 5e11, 0], label 0: loss and gradient are 0 to float64, not NaN
    x = np.array([[1e12, 5e11, 0.0]], dtype=np.float32)
    case, inp = _hand(f"s{THIRD}", "mean", labels=(0,), x=x, dtype="float32")
    ref = reference(case, inp)
    assert float(ref.loss) == 0.0 and np.all(ref.grad == 0) and not np.signbit(ref.loss)
    # s x beyond float64's range (float64 case): exact where the truth is finite
    x = np.array([[1.5e308, 1.4e308, 0.0]])
    case, inp = _hand("s3", "none", labels=(1,), x=x)
    ref = reference(case, inp)
    assert float(ref.loss[0]) == pytest.approx(3 * (1.5e308 - 1.4e308), rel=1e-15)
    assert ref.grad[0].tolist() == pytest.approx([3.0, -3.0, 0.0], rel=1e-15)


def test_cotangents_by_hand():
    case, inp = _hand("ct", "none", cotangent=[0.5, -1024.0, 0.0])
    ref, _ = _mp_check(case, inp)
    plain = reference(Case.from_id("scale1e+0_float64_3x3_index_none"), Inputs(X, np.array([2, 1, 0]),
                                                                               np.zeros(3, dtype=np.int64)))
    np.testing.assert_allclose(ref.grad, plain.grad * np.array([[0.5], [-1024.0], [0.0]]), rtol=1e-15)
    np.testing.assert_allclose(ref.loss, plain.loss, rtol=1e-15)  # the cotangent is the backward's input only
    for reduction, v in (("mean", 1 / 3), ("sum", 1024.0)):
        case, inp = _hand(f"ct{format_param(v)}", reduction, cotangent=v)
        ref, _ = _mp_check(case, inp)
        base = reference(Case.from_id(f"scale1e+0_float64_3x3_index_{reduction}"),
                         Inputs(X, np.array([2, 1, 0]), np.zeros(3, dtype=np.int64)))
        np.testing.assert_allclose(ref.grad, v * base.grad, rtol=1e-15)


def test_every_option_with_weights_ignore_and_smoothing_torch_and_plain():
    for semantics, opts, weights in (("torch", "w+", W), ("plain", "", None)):  # plain APIs take no weights
        case, inp = _hand(f"{opts}ign+ls+s0.5+cap2+z0.01+ct", "none", labels=(2, IGNORE_INDEX, 0), weights=weights,
                          smoothing=0.1, cotangent=[3.0, 2.0, -0.25])
        ref, _ = _mp_check(case, inp, semantics)
        assert ref.loss[1] == 0 and not ref.grad[1].any()  # an ignored row: no CE, no z-loss
    # mean: CE over the kept targets' weights, z-loss over the kept rows' count
    case, inp = _hand("w+ign+cap2+z0.01+ct1024", "mean", labels=(2, IGNORE_INDEX, 0), weights=W, cotangent=1024.0)
    ref, _ = _mp_check(case, inp, rel=2e-13)
    lse = ref.lse
    ce = reference(*_hand("w+ign+cap2", "none", labels=(2, IGNORE_INDEX, 0), weights=W), "torch").loss
    assert float(ref.loss) == pytest.approx(ce.sum() / 8 + 1e-2 * (lse[0] ** 2 + lse[2] ** 2) / 2, rel=1e-14)
    # probability targets with smoothing and a scalar cotangent
    q = np.array([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0], [0.6, 0.3, 0.1]])
    _mp_check(*_hand(f"w+ls+s3+z0.01+ct{THIRD}", "mean", labels=q, form="soft", weights=W, smoothing=0.1,
                     cotangent=1 / 3))


def test_all_targets_ignored_under_zloss():
    case, inp = _hand("allign+z0.01", "mean", labels=(IGNORE_INDEX,) * 3)
    torch, keras = reference(case, inp, "torch"), reference(case, inp, "keras")
    assert np.isnan(float(torch.loss)) and float(keras.loss) == 0.0
    assert not torch.grad.any() and not keras.grad.any()


def test_undefined_rows_under_the_options():
    x = np.array([[np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0]])
    lab = (1, 0, 0, 2)
    capped = reference(*_hand("cap2", "none", labels=lab, x=x))
    # c tanh(+-inf / c) = +-c: only the NaN row is undefined under a softcap
    assert np.isnan(capped.loss).tolist() == [False, True, False, False]
    assert np.isfinite(capped.grad[[0, 2, 3]]).all() and np.isnan(capped.grad[1]).all()
    assert float(capped.loss[2]) == pytest.approx(np.log(3.0), rel=1e-15)  # three logits at -c: uniform
    scaled = reference(*_hand("s0.5+z0.01", "none", labels=lab, x=x))
    assert np.isnan(scaled.loss).tolist() == [True, True, True, False]
    assert np.isnan(float(reference(*_hand("s0.5", "sum", labels=lab, x=x)).loss))


def _small(case: Case) -> Case:
    return Case(case.family, case.dtype, min(case.n, 3), min(case.k, 5), case.labels, case.reduction, case.options,
                case.extra[:1] and (2,))


@pytest.mark.parametrize("case_id", sorted({_small(c).id for c in llm_cases(full=True)
                                            if c.family.startswith(("scale", "offset")) and c.n}))
def test_generated_cases_agree_with_mpmath(case_id):
    """Every LLM option family (and the full list's combinations) on a small generated case."""
    case = Case.from_id(case_id)
    inp = make_inputs(case, 11)
    _mp_check(case, inp, "torch", rel=1e-12)


def test_float64_cases_agree_across_working_precisions(monkeypatch):
    case = Case.from_id("scale1e+1_float64_4x6_index_mean_opt-w+ign+ls+s3+cap30+z1e-4+ct1024")
    inp = make_inputs(case, 2)
    wide = reference(case, inp, "torch")
    monkeypatch.setattr(dtypes_mod, "LONGDOUBLE_IS_WIDER", False)  # working_precision reads it there
    mp = reference(case, inp, "torch")
    assert (wide.precision, mp.precision) == ("longdouble" if ref_mod.np.finfo(np.longdouble).eps < 1e-18
                                              else "mpmath", "mpmath")
    np.testing.assert_allclose(mp.loss, wide.loss, rtol=1e-15)
    np.testing.assert_allclose(mp.grad, wide.grad, rtol=1e-15, atol=1e-18)
    np.testing.assert_allclose(mp.lse, wide.lse, rtol=1e-15)
