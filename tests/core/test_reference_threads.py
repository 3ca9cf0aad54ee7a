"""The chunked reference on several threads equals one thread's bit for bit, and its undefined rows
(found from each row's maximum, without another pass) are those undefined_rows finds."""

from __future__ import annotations

import numpy as np
import pytest

import xentcheck.problems.ce.reference as ref_mod
from tests.helpers.bits import assert_grad_matches_whole_array, assert_loss_matches_whole_array, value_bits
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems.ce.reference import label_matrix, reduce, reference, softmax_xent, undefined_rows, working_precision


@pytest.mark.parametrize("case_id", ["scale1e+1_float32_301x257_index_mean", "masked_bfloat16_97x64_soft_sum",
                                     "dominant_float64_65x40_index_none", "neartie_float16_50x33_onehot_mean",
                                     "scale1e+0_float32_0x10_index_sum"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_the_bits_of_one_thread(monkeypatch, reference_kernel, case_id, threads):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 5)
    wp = np.longdouble if working_precision(case.dtype) == "longdouble" else np.float64
    for name in ("CHUNK_ELEMENTS", "KERNEL_CHUNK_ELEMENTS"):  # many small chunks, a ragged last one
        monkeypatch.setattr(ref_mod, name, 1000)
    divisor = case.rows if case.reduction == "mean" else None
    one = ref_mod.chunked_softmax_xent(case, inputs, wp, divisor, threads=1)
    many = ref_mod.chunked_softmax_xent(case, inputs, wp, divisor, threads=threads)
    for a, b in zip(one, many):
        assert a.dtype == b.dtype and a.shape == b.shape and value_bits(a) == value_bits(b)


def test_large_cases_use_the_threads(monkeypatch):
    seen = []
    original = ref_mod._chunk

    def spy(*args):
        import threading
        seen.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(ref_mod, "_chunk", spy)
    monkeypatch.setattr(ref_mod, "THREADS", 2)
    monkeypatch.setattr(ref_mod, "THREAD_MIN_ELEMENTS", 1000)
    for name in ("CHUNK_ELEMENTS", "KERNEL_CHUNK_ELEMENTS"):
        monkeypatch.setattr(ref_mod, name, 500)
    case = Case.from_id("scale1e+0_float32_64x100_index_mean")
    reference(case, make_inputs(case, 0))
    assert len(seen) == 64 // 5 + 1 and all(name.startswith("xentcheck-reference") for name in seen)


@pytest.mark.parametrize("case_id", ["posinf_float32_6x12_index_mean", "nan_float16_6x12_index_sum",
                                     "rowmasked_bfloat16_6x12_index_none", "rowmasked_float64_6x12_soft_mean",
                                     "nan_float32_6x12_onehot_none", "posinf_float64_6x12_index_none"])
def test_undefined_rows_are_those_of_the_whole_array_formula(reference_kernel, case_id):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    wp = np.longdouble if working_precision(case.dtype) == "longdouble" else np.float64
    rows, grad, _ = softmax_xent(inputs.logits.astype(wp), label_matrix(case, inputs, wp))
    with np.errstate(all="ignore"):
        undefined_rows(inputs.logits, rows, grad)
        loss, grad = reduce(case, rows, grad)
        ref = reference(case, inputs)
    assert np.isnan(ref.row_loss).any()  # the family has an undefined row
    assert_loss_matches_whole_array(case, ref.loss, loss)
    assert_grad_matches_whole_array(case, ref.grad, grad)
