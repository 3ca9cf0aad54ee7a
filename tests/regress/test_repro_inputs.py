"""Reproducing and shrinking a user file's case (--inputs): the record's inputs_file leads to the arrays."""

import numpy as np

from xentcheck.core.user_inputs import load
from xentcheck.regress import repro


def test_rerun_reads_the_file_the_record_names(tmp_path):
    path = tmp_path / "batch.npz"
    np.savez(path, logits=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 9.0]], np.float32), labels=np.array([2, 0]),
             reduction="sum")  # numpy's analytic loss takes no class weights or smoothing
    case, inputs = load(path)
    record = {**case.as_dict(), "backend": "numpy", "impl": "analytic", "mode": "eager", "verdict": "pass", "seed": 0}
    assert record["inputs_file"] == str(path.resolve())
    outcome = repro.rerun(record, "numpy", {})
    assert outcome["verdict"] == "pass" and outcome["case"].id == case.id
    assert np.array_equal(outcome["inputs"].logits, inputs.logits)
    x = inputs.logits.astype(np.float64)
    expected = np.sum(np.log(np.exp(x).sum(axis=1)) - x[[0, 1], [2, 0]])  # the file's arrays' loss
    np.testing.assert_allclose(float(outcome["ref"].loss), expected, rtol=1e-12)


def test_halving_the_spread_keeps_the_options_arrays(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, logits=np.array([[1.0, 5.0, 3.0]], np.float32), labels=np.array([2]),
             weight=np.array([1.0, 2.0, 3.0], np.float32), label_smoothing=0.2)
    _, inputs = load(path)
    half = repro._halve_spread(inputs)
    assert half.logits.tolist() == [[3.0, 5.0, 4.0]]
    assert half.weights.tolist() == [1.0, 2.0, 3.0] and half.smoothing == 0.2
