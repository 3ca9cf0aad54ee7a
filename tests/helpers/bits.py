"""Comparing the chunked reference with the whole-array formula: bit for bit where both run the
same operations, within a stated bound where the C kernel computes the rows."""

from __future__ import annotations

import numpy as np

import xentcheck.problems.ce.reference as ref_mod
from xentcheck.core.cases import Case
from xentcheck.problems.ce.reference import working_precision

U = 2.0 ** -53  # float64's unit roundoff


def value_bits(a: np.ndarray) -> bytes:
    """The value bits: longdouble's 10 bytes of x87 value, not its padding."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.longdouble and a.dtype.itemsize == 16 and a.size:
        return a.view(np.uint8).reshape(-1, 16)[:, :10].tobytes()
    return a.tobytes()


def kernel_rows(case: Case) -> bool:
    """Whether the chunked reference computes `case`'s rows in the C kernel."""
    return working_precision(case.dtype) == "float64" and ref_mod.kernel_rows(case, np.float64)


def kernel_bound(case: Case, want: np.ndarray, scale: float) -> np.ndarray:
    """How far the kernel's rows may lie from the formula's. Both share exp's bits; they differ in
    R = sum exp: pairs of terms into a compensated sum (within a few ulps) vs NumPy's pairwise sum
    (within about log2(K) + 8 ulps in the worst case), and in multiplying by 1 / ((1 + R) N) (an
    ulp more) instead of dividing. R's relative error moves each entry by at most as much relative
    to p_j, and the label's entry p_y - 1 and the loss log1p(R) by as much in absolute terms at the
    row's scale (1 / N for a mean's gradient, 1 for a loss): so
    |difference| <= (log2(K) + 12) u (|want| + scale)."""
    return (np.log2(max(case.k, 2)) + 12) * U * (np.abs(want) + scale)


def _close(case: Case, got: np.ndarray, want: np.ndarray, scale: float) -> None:
    """Non-finite entries (undefined rows' NaN, a -inf label logit's +inf loss) equal, the rest within the bound."""
    fin = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), fin)
    assert np.array_equal(got[~fin], want[~fin], equal_nan=True)
    assert np.all(np.abs(got[fin] - want[fin]) <= kernel_bound(case, want[fin], scale))


def assert_loss_matches_whole_array(case: Case, got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, or within kernel_bound where the C kernel computed the rows."""
    got, want = np.asarray(got), np.asarray(want).astype(np.asarray(got).dtype)
    if not kernel_rows(case):
        assert value_bits(got) == value_bits(want)
        return
    with np.errstate(invalid="ignore"):
        _close(case, got.astype(np.float64), want.astype(np.float64), 1.0)


def assert_grad_matches_whole_array(case: Case, got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, except
    - an index-label mean whose N is not a power of two: there the chunked path rounds (1 + R) N,
      then e / that, where the formula rounds e / (1 + R), then / N: both within an ulp of the
      exact value, so within two ulps of each other in the working precision;
    - rows the C kernel computed: within kernel_bound at the gradient's scale 1 / N (mean) or 1.
    Undefined (NaN) entries are the same either way."""
    assert got.dtype == want.dtype and got.shape == want.shape
    n = case.rows
    if kernel_rows(case):
        _close(case, got, want, 1.0 / n if case.reduction == "mean" and n else 1.0)
        return
    if case.labels != "index" or case.reduction != "mean" or n & (n - 1) == 0:
        assert value_bits(got) == value_bits(want)
        return
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    bound = 2 * np.spacing(np.maximum(np.abs(got[ok]), np.abs(want[ok])))
    assert np.all(np.abs(got[ok] - want[ok]) <= bound)
