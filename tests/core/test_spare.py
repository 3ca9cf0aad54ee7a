"""The reference's spare gradient buffer (harness/core/spare.py): reused only when nothing holds it."""

import numpy as np
import pytest

from xentcheck.core import spare
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems.ce.reference import reference


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(spare, "MIN_BYTES", 1024)
    return spare.SpareBuffer(max_bytes=1 << 20)


def test_a_free_buffer_of_the_same_size_is_handed_out_again(small):
    a = small.empty((8, 100), np.float64)
    address = a.ctypes.data
    del a
    b = small.empty((8, 100), np.float64)
    assert b.ctypes.data == address and small.reused == 1
    assert b.shape == (8, 100) and b.dtype == np.float64 and b.flags.c_contiguous and b.flags.writeable
    c = small.empty((4, 200), np.float64)  # same bytes, another shape
    assert not np.shares_memory(b, c)  # b still holds the buffer


def test_a_buffer_still_held_by_a_view_is_not_handed_out(small):
    a = small.empty((8, 100), np.float64)
    a[...] = 7.0
    row = a[3]  # a view: it holds the buffer, not `a`
    del a
    b = small.empty((8, 100), np.float64)
    b[...] = -1.0
    assert not np.shares_memory(row, b) and small.reused == 0
    assert np.all(row == 7.0)


def test_other_sizes_and_arrays_outside_the_limits_are_plain(small):
    a = small.empty((8, 100), np.float64)
    del a
    b = small.empty((8, 101), np.float64)  # another size: a new buffer, kept in place of the old
    assert small.reused == 0
    big = small.empty((1 << 18,), np.float64)  # 2 MiB, over max_bytes
    tiny = small.empty((10,), np.float64)  # 80 bytes, under MIN_BYTES
    del big, tiny, b
    assert small.empty((8, 101), np.float64) is not None and small.reused == 1
    small.release()
    small.empty((8, 101), np.float64)
    assert small.reused == 1


def test_references_computed_into_a_reused_gradient_are_right(monkeypatch):
    monkeypatch.setattr(spare, "MIN_BYTES", 1024)
    monkeypatch.setattr(spare, "SPARE", spare.SpareBuffer(max_bytes=1 << 30))
    import xentcheck.problems.ce.reference as ref_mod
    monkeypatch.setattr(ref_mod, "SPARE", spare.SPARE)
    case = Case("scale1e+0", "float32", 64, 1000, "index", "mean")
    first = reference(case, make_inputs(case, 0))
    want = first.grad.copy()
    other = Case("scale1e+1", "float32", 64, 1000, "index", "mean")
    held = reference(other, make_inputs(other, 1))  # first is held: a buffer of its own
    assert not np.shares_memory(first.grad, held.grad)
    np.testing.assert_array_equal(first.grad, want)  # untouched by the second reference
    address = held.grad.ctypes.data
    del held
    again = reference(case, make_inputs(case, 0))  # into the second's buffer, now free
    assert again.grad.ctypes.data == address and spare.SPARE.reused == 1
    np.testing.assert_array_equal(again.grad, want)
