"""A streamed dW (linear_reference above STREAM_DW_ENTRIES) is compared a vocabulary block at a
time; the merged metrics are the whole array's (quantiles to within their histogram's 2^-9).

The whole array is the streamed blocks put together (`_held`), not a held reference computed
apart: the two dW agree within the reference's error bound, not bit for bit (BLAS may order the
blocks' sums otherwise: tests/core/test_linear_reference.py), and the merging is exact only on
the same values."""

import dataclasses

import numpy as np
import pytest

import xentcheck.problems.linear.reference as lr
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import round_to
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.linear.metrics import _hist_quantiles, measure_linear


@pytest.fixture
def small_blocks():
    import xentcheck.problems.linear.metrics as lm
    old = lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES, lm.METRIC_BLOCK_ELEMENTS
    lm.METRIC_BLOCK_ELEMENTS = 10 * 64  # several parts a block (10 rows at D = 64, fewer at D = 16)
    yield
    lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES, lm.METRIC_BLOCK_ELEMENTS = old


def test_a_large_dh_is_measured_in_rows_as_a_whole_array(small_blocks, monkeypatch):
    """dh above WHOLE_ELEMENTS entries: a few rows at a time (StreamedMetrics), the whole array's
    metrics (p50/p99 within 2^-9), with errors in one row that fail."""
    import xentcheck.problems.linear.metrics as lm
    c = Case.from_id("scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls+b")
    ref = lr.linear_reference(c, make_inputs(c, 0), "torch")
    grads = {k: round_to(np.asarray(ref.get(k), dtype=np.float64), c.dtype) for k in ("dh", "dw", "db")}
    i = int(np.flatnonzero((np.asarray(ref.dh, dtype=np.float64) != 0).all(axis=1))[0])  # a counted row
    grads["dh"][i] += (1e-3 * ref.scales["dh"][i]).astype(np.float32)  # far past 8 u of the scale
    loss = round_to(np.asarray(ref.loss, dtype=np.float64), c.dtype)
    want = measure_linear(c, ref, loss, grads, Tolerances())
    monkeypatch.setattr(lm, "WHOLE_ELEMENTS", 10)
    lm.METRIC_BLOCK_ELEMENTS = 3 * c.d  # 8 parts of 3 rows
    got = measure_linear(c, ref, loss, grads, Tolerances())
    assert want["dh"]["n_exceed"] > 0 and want["dh"]["worst_index"][0] == i
    for key, value in want["dh"].items():
        if key.startswith(("p50_", "p99_")):
            assert abs(got["dh"][key] - value) <= 2.0 ** -9 * abs(value), key
        else:
            assert got["dh"][key] == value, key


def _held(streamed: lr.LinearReference) -> lr.LinearReference:
    """The streamed reference with its dW and dW's scale held: its blocks put together."""
    parts = list(streamed.dw_blocks())
    return dataclasses.replace(streamed, dw=np.concatenate([p[1] for p in parts]),
                               scales={**streamed.scales, "dw": np.concatenate([p[2] for p in parts])},
                               derived={}, stream=None)


@pytest.mark.parametrize("cid", ["scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls+b",
                                 "dominant_float16_16x200_lin64_index_none"])
@pytest.mark.parametrize("kind", ["close", "off", "nonfinite"])
@pytest.mark.parametrize("preset", ["xentcheck", "model"])
def test_streamed_dw_metrics_are_the_whole_arrays(small_blocks, cid, kind, preset):
    c = Case.from_id(cid)
    x = make_inputs(c, 0)
    lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES = 37 * c.d, 0
    streamed = lr.linear_reference(c, x, "torch")
    assert streamed.streamed and len(list(streamed.dw_blocks())) > 3
    held = _held(streamed)
    assert not held.streamed and held.dw.shape == (c.k, c.d)
    grads = {k: round_to(np.asarray(held.get(k), dtype=np.float64), c.dtype) for k in ("dh", "dw", "db")
             if held.get(k) is not None}
    dw = grads["dw"]
    if kind != "close":  # 1% off, and a row in a middle block 0.5 off: fails
        dw[:] = (dw * (1 + 0.01 * np.random.default_rng(1).standard_normal(dw.shape))).astype(dw.dtype)
        dw[100] += np.asarray(0.5, dtype=dw.dtype)
    if kind == "nonfinite":
        dw[90, 2], dw[-1, 0] = np.nan, np.inf
    loss = round_to(np.asarray(held.loss, dtype=np.float64), c.dtype)
    tol = Tolerances(preset=preset)
    want = measure_linear(c, held, loss, grads, tol)
    got = measure_linear(c, streamed, loss, grads, tol)
    assert list(got) == list(want) and list(got["dw"]) == list(want["dw"])
    for what in want:
        for key, value in want[what].items():
            if key.startswith(("p50_", "p99_")) and what == "dw":
                assert abs(got[what][key] - value) <= 2.0 ** -9 * abs(value), key
            else:
                assert got[what][key] == value, (what, key)
    assert (want["dw"]["n_exceed"] > 0) == (kind != "close")
    assert (want["dw"]["n_nonfinite_mismatch"] == 2) == (kind == "nonfinite")


def test_hist_quantiles_follow_numpys_linear_quantile():
    v = np.random.default_rng(0).lognormal(size=10001) * 1e-5
    v[:700] = 0.0
    hist = np.bincount((v.view(np.uint64) >> np.uint64(44)).astype(np.int64), minlength=1 << 20)
    for q, got in zip((0.05, 0.5, 0.99), _hist_quantiles(hist, (0.05, 0.5, 0.99))):
        want = float(np.quantile(v, q))
        assert abs(got - want) <= 2.0 ** -9 * want, q
    assert _hist_quantiles(hist, (0.05,)) == [0.0]  # in the zeros: exactly 0
    assert _hist_quantiles(np.zeros(1 << 20, dtype=np.int64), (0.5,)) == [0.0]


def test_metamorphic_agreement_takes_a_streamed_dw(small_blocks):
    """linear_properties._agree compares dW a block at a time when it is streamed: the same verdict
    and detail as with the held dW, and a dW off in one block is found."""
    from xentcheck.core.tolerances import Tol
    from xentcheck.problems.linear.properties import _agree
    c = Case.from_id("scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls+b")
    x = make_inputs(c, 0)
    lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES = 37 * c.d, 0
    streamed = lr.linear_reference(c, x, "torch")
    held = _held(streamed)
    one = {k: round_to(np.asarray(held.get(k), dtype=np.float64), c.dtype) for k in ("loss", "dh", "dw", "db")}
    other = {k: v.copy() for k, v in one.items()}
    other["dw"][400] = other["dw"][400] * np.float32(1.5)
    for b, verdict in ((one, "pass"), (other, "fail")):
        tol = Tol(rtol=0.0, atol=8 * 2.0 ** -24, scaled=True)
        want, got = _agree(c, held, one, b, tol), _agree(c, streamed, one, b, tol)
        assert got == want and got["verdict"] == verdict
    assert "in dw" in _agree(c, streamed, one, other, tol)["detail"]
