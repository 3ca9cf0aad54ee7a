"""The reference's C kernel (harness/core/_xent.c): its exp against long-double exp, its rows against
hand-checked values, mpmath and the NumPy formula, and the NumPy fallback when it is off."""

from __future__ import annotations

import shutil
import sys

import ml_dtypes
import mpmath
import numpy as np
import pytest

from tests.helpers.bits import kernel_bound
from xentcheck.core import kernel
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems.ce.reference import reference, softmax_xent

lib = kernel.library()
needs_kernel = pytest.mark.skipif(lib is None, reason="the C kernel is not built here")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and shutil.which("cc")),
                    reason="the kernel is optional where there is no C compiler")
def test_the_install_built_the_kernel():
    assert kernel.library() is not None and kernel.name() == "C (harness/core/_xent.c)"


def test_the_environment_variable_switches_to_numpy(monkeypatch):
    monkeypatch.setenv(kernel.ENV, "numpy")
    assert kernel.library() is None and kernel.name() == "NumPy"
    assert kernel.exp_nonpos(np.zeros(3)) is None
    assert kernel.index_rows(np.zeros((1, 3), np.float32), np.zeros(1, np.int64), None, np.empty((1, 3))) is None


@needs_kernel
def test_exp_within_an_ulp_of_long_double_exp():
    if np.finfo(np.longdouble).eps >= 1e-18:
        pytest.skip("long double is no wider than float64 here")
    rng = np.random.default_rng(7)
    z = np.concatenate([-rng.random(400_000) * 708, -rng.random(100_000) * 2, -rng.random(100_000) * 1e-6,
                        -np.arange(0, 708, 0.5), [-1e-300, -5e-324]])
    got = kernel.exp_nonpos(z)
    want = np.exp(z.astype(np.longdouble))
    ulps = np.abs(got.astype(np.longdouble) - want) / np.spacing(want.astype(np.float64)).astype(np.longdouble)
    assert ulps.max() <= 1.0  # 0.65 measured
    # subnormal results (z below -708.4): within a unit of the smallest subnormal
    zs = -708.4 - rng.random(100_000) * 37
    sub = kernel.exp_nonpos(zs).astype(np.longdouble) - np.exp(zs.astype(np.longdouble))
    assert np.abs(sub).max() <= 2.0 ** -1074


@needs_kernel
def test_exps_short_path_gives_the_full_paths_bits():
    """Four at a time, exp takes a shorter path where all four lie in [-700, 0] (results normal, no
    clamping): the same bits as the full path, which a block with one z below -700 takes."""
    rng = np.random.default_rng(11)
    z = np.concatenate([-rng.random(40_000) * 700, -rng.random(4_000) * 1e-3, -700 + rng.random(4_000) * 1e-3])
    alone = kernel.exp_nonpos(z)
    mixed = z.copy()
    mixed[::4] = -720.0
    got = kernel.exp_nonpos(mixed)
    keep = np.arange(z.size) % 4 != 0
    assert got[keep].tobytes() == alone[keep].tobytes()
    assert np.all(np.abs(got[::4] - np.exp(-720.0)) <= 1.5 * 2.0 ** -1074)  # subnormal


@needs_kernel
def test_exp_special_values():
    z = np.array([0.0, -0.0, -np.inf, np.nan, -746.0, -1e300, -1.0])
    got = kernel.exp_nonpos(z)
    assert got[:3].tolist() == [1.0, 1.0, 0.0]
    assert np.isnan(got[3]) and got[4] == 0.0 and got[5] == 0.0
    assert abs(got[6] - 0.36787944117144233) <= 2.0 ** -54  # exp(-1), to the last bit but one


@needs_kernel
def test_a_hand_checked_row():
    # logits (0, 0, 0), label 0 (tied with the others, the first is the argmax): R = 2, loss log 3,
    # gradient (1/3 - 1, 1/3, 1/3); and (ln 1, ln 2, ln 5), label 2: p = (1/8, 2/8, 5/8), loss log(8/5)
    x = np.array([[0, 0, 0], [0, np.log(2), np.log(5)]], dtype=np.float32)
    grad = np.empty((2, 3))
    loss = kernel.index_rows(x, np.array([0, 2]), None, grad)
    assert loss[0] == pytest.approx(np.log(3), rel=1e-15)
    assert grad[0] == pytest.approx([-2 / 3, 1 / 3, 1 / 3], rel=1e-15)
    e = np.exp(x[1].astype(np.float64))  # float32 logits: exp of the stored values, not of ln 2, ln 5
    p = e / e.sum()
    assert loss[1] == pytest.approx(np.log(e.sum() / e[2]), rel=1e-15)
    assert grad[1] == pytest.approx(p - [0, 0, 1], rel=1e-14)
    # a mean over N = 2 divides the gradient by 2 and leaves the row losses alone
    half = np.empty((2, 3))
    assert kernel.index_rows(x, np.array([0, 2]), 2, half).tolist() == loss.tolist()
    assert half.tolist() == (grad / 2).tolist()


def _mp_row(x: np.ndarray, y: int) -> tuple:
    with mpmath.workdps(50):
        xs = [mpmath.mpf(float(v)) for v in x]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        return lse - xs[y], [mpmath.exp(v - lse) - (j == y) for j, v in enumerate(xs)]


@needs_kernel
# 301: every other gradient row starts off a 16-byte boundary; 4099: a long row, 256 blocks of 16 and 3 left
@pytest.mark.parametrize("k", [300, 301, 4099])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])  # 1e4: rows spread beyond 700 take exp's full path
def test_rows_against_mpmath(scale, k):
    rng = np.random.default_rng(int(scale))
    x = (rng.standard_normal((6, k)) * scale).astype(np.float32)
    y = rng.integers(0, k, 6)
    y[0] = np.argmax(x[0])  # a label on the row's maximum: p_y - 1 ~ -R from the row's own values
    grad = np.empty(x.shape)
    loss = kernel.index_rows(x, y, None, grad)
    for i in range(6):
        mp_loss, mp_grad = _mp_row(x[i], y[i])
        assert abs(loss[i] - float(mp_loss)) <= 4 * 2.0 ** -53 * max(1.0, float(mp_loss))
        want = np.array([float(g) for g in mp_grad])
        assert np.all(np.abs(grad[i] - want) <= 4 * 2.0 ** -53 * np.maximum(np.abs(want), 2.0 ** -60)), i


@needs_kernel
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_sixteen_bit_logits_convert_exactly(dtype):
    x = (np.random.default_rng(2).standard_normal((5, 40)) * 4).astype(dtype)
    y = np.arange(5)
    g16, g32 = np.empty((5, 40)), np.empty((5, 40))
    l16 = kernel.index_rows(x, y, 5, g16)
    l32 = kernel.index_rows(x.astype(np.float32), y, 5, g32)
    assert l16.tobytes() == l32.tobytes() and g16.tobytes() == g32.tobytes()


@needs_kernel
def test_undefined_rows_are_nan_and_minus_inf_logits_give_zero():
    x = np.array([[0, np.nan, 1], [np.inf, 0, 1], [-np.inf] * 3, [-np.inf, 0, -np.inf], [0, 1, -np.inf]], dtype=np.float32)
    grad = np.empty((5, 3))
    loss = kernel.index_rows(x, np.array([0, 1, 2, 1, 2]), None, grad)
    assert np.isnan(loss[:3]).all() and np.isnan(grad[:3]).all()
    assert loss[3] == 0.0 and grad[3].tolist() == [0.0, 0.0, 0.0]  # one finite logit: p = (0, 1, 0)
    assert loss[4] == np.inf and grad[4, 2] == -1.0  # a label on a -inf logit: infinite loss


@needs_kernel
def test_a_scratch_row_given_or_not_gives_the_same_bits():
    x = (np.random.default_rng(6).standard_normal((9, 77)) * 5).astype(np.float32)
    y = np.arange(9)
    g1, g2 = np.empty((9, 77)), np.empty((9, 77))
    l1 = kernel.index_rows(x, y, 9, g1)
    l2 = kernel.index_rows(x, y, 9, g2, np.full(100, np.nan))  # longer than a row, its contents unused
    assert l1.tobytes() == l2.tobytes() and g1.tobytes() == g2.tobytes()


@needs_kernel
def test_out_of_range_labels_are_left_to_numpy():
    x = np.zeros((2, 3), dtype=np.float32)
    assert kernel.index_rows(x, np.array([0, 3]), None, np.empty((2, 3))) is None
    assert kernel.index_rows(x, np.array([-1, 0]), None, np.empty((2, 3))) is None


@pytest.mark.parametrize("case_id", ["scale1e+1_float32_64x1000_index_mean", "offset1e+8_float32_8x5000_index_sum",
                                     "dominant_bfloat16_16x64_index_none"])
@needs_kernel
def test_the_two_implementations_agree(monkeypatch, case_id):
    """The reference with the kernel and without it (XENTCHECK_REFERENCE_KERNEL=numpy): the same
    formula, within tests/helpers/bits.py's kernel_bound at the gradient's scale."""
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 4)
    calls = []
    original = kernel.index_rows
    monkeypatch.setattr(kernel, "index_rows", lambda *a: calls.append(original(*a)) or calls[-1])
    c = reference(case, inputs)
    assert calls and all(rows is not None for rows in calls)  # the kernel computed every chunk
    monkeypatch.setenv(kernel.ENV, "numpy")
    n = reference(case, inputs)
    scale = 1 / case.rows if case.reduction == "mean" else 1.0
    assert np.all(np.abs(c.grad - n.grad) <= kernel_bound(case, n.grad, scale))
    assert np.all(np.abs(c.row_loss - n.row_loss) <= kernel_bound(case, n.row_loss, 1.0))


def test_softmax_xent_exp_is_the_kernels(monkeypatch):
    """The whole-array formula's exp is the kernel's where it is built, so both paths share its bits."""
    x = np.random.default_rng(3).standard_normal((4, 50))
    q = np.eye(50)[:4]
    _, g1, _ = softmax_xent(x, q)
    monkeypatch.setenv(kernel.ENV, "numpy")
    _, g2, _ = softmax_xent(x, q)
    assert np.allclose(g1, g2, rtol=1e-14, atol=1e-17)
