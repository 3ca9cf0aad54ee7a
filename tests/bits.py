"""Comparing the chunked reference with the whole-array formula, bit for bit where it must be."""

from __future__ import annotations

import numpy as np

from harness.cases import Case


def value_bits(a: np.ndarray) -> bytes:
    """The value bits: longdouble's 10 bytes of x87 value, not its padding."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.longdouble and a.dtype.itemsize == 16 and a.size:
        return a.view(np.uint8).reshape(-1, 16)[:, :10].tobytes()
    return a.tobytes()


def assert_grad_matches_whole_array(case: Case, got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, except an index-label mean whose N is not a power of two: there the chunked path
    rounds (1 + R) N, then e / that, where the formula rounds e / (1 + R), then / N: both within an
    ulp of the exact value, so within two ulps of each other in the working precision; undefined
    (NaN) entries are the same either way."""
    assert got.dtype == want.dtype and got.shape == want.shape
    n = case.rows
    if case.labels != "index" or case.reduction != "mean" or n & (n - 1) == 0:
        assert value_bits(got) == value_bits(want)
        return
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    bound = 2 * np.spacing(np.maximum(np.abs(got[ok]), np.abs(want[ok])))
    assert np.all(np.abs(got[ok] - want[ok]) <= bound)
