"""API options: the reference's reading of each API's documented semantics (hand-checked numbers),
the adapters passing options through, unsupported combinations skipped, out-of-range labels."""

import importlib.util
import json

import numpy as np
import pytest

from tests.conftest import run_here
from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs, full_suite, make_inputs
from xentcheck.problems.ce.reference import reference

X = np.array([[0.2, 0.3, 0.5], [0.5, 0.2, 0.3]])
W = np.array([2.0, 4.0, 6.0])


def _ref(options, labels, semantics, form="index", reduction="mean", weights=None, smoothing=0.0):
    case = Case("scale1e+0", "float64", 2, 3, form, reduction, options)
    return reference(case, Inputs(X, np.asarray(labels), np.array([2, 1]), weights, smoothing), semantics)


def _row_losses():
    return np.log(np.exp(X).sum(axis=1)) - X[[0, 1], [2, 1]]


def test_torch_weighted_mean_divides_by_the_targets_weights():
    # the hand-checked number: logits [[0.2,0.3,0.5],[0.5,0.2,0.3]], targets [2,1], w [2,4,6]
    assert float(_ref("w", [2, 1], "torch", weights=W).loss) == pytest.approx(1.059831, abs=1e-6)
    rows = _row_losses()
    assert float(_ref("w", [2, 1], "torch", weights=W).loss) == pytest.approx((6 * rows[0] + 4 * rows[1]) / 10, rel=1e-14)


def test_torch_weights_ignore_and_smoothing_combined():
    # torch: (1-e) w_y (-log p_y) + (e/K) sum_c w_c (-log p_c), mean over the kept targets' w_y
    got = float(_ref("w+ign+ls", [IGNORE_INDEX, 1], "torch", weights=W, smoothing=0.1).loss)
    logp = X[1] - np.log(np.exp(X[1]).sum())
    expected = (0.9 * 4 * -logp[1] + 0.1 / 3 * -(W * logp).sum()) / 4
    assert got == pytest.approx(expected, rel=1e-14)
    assert got == pytest.approx(1.22983106084446, rel=1e-12)  # what torch 2.13 returns


def test_ignored_targets_and_an_all_ignored_batch():
    rows = _row_losses()
    assert float(_ref("ign", [IGNORE_INDEX, 1], "torch").loss) == pytest.approx(rows[1], rel=1e-14)
    assert float(_ref("ign", [IGNORE_INDEX, 1], "keras").loss) == pytest.approx(rows[1], rel=1e-14)
    torch_all = _ref("allign", [IGNORE_INDEX, IGNORE_INDEX], "torch")
    keras_all = _ref("allign", [IGNORE_INDEX, IGNORE_INDEX], "keras")
    assert np.isnan(float(torch_all.loss)) and float(keras_all.loss) == 0.0  # documented: 0/0 vs masked mean
    assert not torch_all.grad.any() and not keras_all.grad.any()


def test_label_smoothing_on_probability_targets():
    q = np.eye(3)[[2, 1]]
    got = float(_ref("ls", q, "keras", form="onehot", smoothing=0.1).loss)
    smoothed = 0.9 * q + 0.1 / 3
    logp = X - np.log(np.exp(X).sum(axis=1, keepdims=True))
    assert got == pytest.approx(-(smoothed * logp).sum(axis=1).mean(), rel=1e-14)
    assert got == pytest.approx(1.0914977275111268, rel=1e-12)  # what Keras returns
    # torch probability targets with weights: mean over N, not over the weights
    got_w = float(_ref("w+ls", q, "torch", form="onehot", weights=W, smoothing=0.1).loss)
    assert got_w == pytest.approx(-(W * smoothed * logp).sum(axis=1).mean(), rel=1e-14)


def test_option_ids_round_trip_and_validate():
    for case in full_suite(["float32"]):
        assert Case.from_id(case.id) == case
    assert Case.from_id("scale1e+0_float32_16x10_index_mean_opt-w+ign+ls").option_set == {"w", "ign", "ls"}
    for bad in ["scale1e+0_float32_16x10_soft_mean_opt-ign", "scale1e+0_float32_16x10_index_mean_opt-ls+w",
                "scale1e+0_float32_16x10_index_mean_opt-oor+w", "scale1e+0_float32_16x10_index_mean_opt-zz",
                "scale1e+0_float32_16x10_index_mean_opt-ign+allign"]:
        with pytest.raises(ValueError):
            Case.from_id(bad)


def test_option_inputs():
    inp = make_inputs(Case.from_id("scale1e+0_float32_16x10_index_mean_opt-w+ign+ls"), 0)
    assert inp.weights.shape == (10,) and inp.weights.dtype == np.float32 and inp.smoothing == 0.1
    assert (inp.labels == IGNORE_INDEX).any() and inp.labels[0] != IGNORE_INDEX
    assert (make_inputs(Case.from_id("scale1e+0_float32_8x10_index_mean_opt-allign"), 0).labels == IGNORE_INDEX).all()
    assert make_inputs(Case.from_id("scale1e+0_float32_16x10_index_mean_opt-oor"), 0).labels[8] == 10


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_adapter_passes_weights_ignore_and_smoothing():
    from xentcheck.backends.registry import create
    b = create("torch")
    b.load()
    v = next(v for v in b.variants() if v.impl == "cross_entropy_index" and v.mode == "eager")
    case = Case("scale1e+0", "float64", 2, 3, "index", "mean", "w+ign+ls")
    inputs = Inputs(X.copy(), np.array([IGNORE_INDEX, 1]), np.array([2, 1]), W.copy(), 0.1)
    out = b.run_variant(v, case, inputs, "cpu")
    ref = reference(case, inputs, "torch")
    assert float(out.loss) == pytest.approx(float(ref.loss), rel=1e-13)
    np.testing.assert_allclose(out.grad, ref.grad, rtol=1e-12, atol=1e-15)


def test_unsupported_options_are_skipped_and_out_of_range_labels_classified(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy,jax", "--suite", "full", "--no-properties",
                  "--case", "scale1e+0_float32_16x10_index_mean_opt-oor", "--case", "scale1e+0_float32_16x10_index_sum_opt-w",
                  "--out", str(out))
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    numpy_oor = next(r for r in recs if r["backend"] == "numpy" and r["case_id"].endswith("oor"))
    assert numpy_oor["verdict"] == "pass" and numpy_oor["reasons"][0].startswith("raised on the out-of-range class index")
    for r in recs:
        if r["backend"] == "jax" and r["case_id"].endswith("oor"):  # optax returns NaN without a word
            assert r["verdict"] == "fail" and "silently returned loss" in r["reasons"][0], r
        if r["case_id"].endswith("opt-w"):
            assert r["verdict"] == "skipped" and "takes no option w" in r["reasons"][0], r
