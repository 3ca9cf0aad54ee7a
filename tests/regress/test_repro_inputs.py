"""Reproducing and shrinking a user file's case (--inputs): the record's inputs_file leads to the arrays."""

import numpy as np

from xentcheck.core.records import Result
from xentcheck.core.user_inputs import load
from xentcheck.problems.ce import repro as ce_repro
from xentcheck.regress import repro


def test_rerun_reads_the_file_the_record_names(tmp_path):
    path = tmp_path / "batch.npz"
    np.savez(path, logits=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 9.0]], np.float32), labels=np.array([2, 0]),
             reduction="sum")  # numpy's analytic loss takes no class weights or smoothing
    case, inputs = load(path)
    record = Result.from_dict({**case.as_dict(), "backend": "numpy", "impl": "analytic", "mode": "eager",
                               "verdict": "pass", "seed": 0})
    assert record.inputs_file == str(path.resolve())
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
    half = ce_repro._halve_spread(inputs)
    assert half.logits.tolist() == [[3.0, 5.0, 4.0]]
    assert half.weights.tolist() == [1.0, 2.0, 3.0] and half.smoothing == 0.2


def test_known_differences_match_a_file_case_by_its_name(tmp_path):
    from xentcheck.regress import known

    path = tmp_path / "step41200.npz"
    np.savez(path, logits=np.array([[-np.inf, 0, 0]], np.float32), labels=np.array([[0, 1, 0]], np.float32))
    case, _ = load(path)
    record = Result.from_dict({**case.as_dict(), "backend": "torch", "impl": "cross_entropy_probs", "mode": "eager",
                               "verdict": "nonfinite", "reasons": ["loss: NaN"]})
    entry = {"id": "nan-probs", "reason": "0 * -inf", "link": "https://example.org", "case": "file-step41200-*",
             "labels": "onehot"}
    records, info = known.apply([record], [entry])
    assert records[0].verdict == "known" and records[0].original_verdict == "nonfinite"
    assert records[0].inputs_file == str(path.resolve()) and info["matched"] == {"nan-probs": 1}
    other = {**entry, "case": "file-other-*"}
    assert known.apply([record], [other])[0][0].verdict == "nonfinite"


def test_the_rerun_command_of_a_file_case_gives_the_file():
    from xentcheck.reports.junit import repro as command

    record = Result(case_id="file-my-batch-0123456789_float32_1x3_index_mean", backend="torch", seed=0,
                    inputs_file="/data/my batch.npz")
    assert command(record) == "xentcheck run --backends torch --inputs '/data/my batch.npz'"
    generated = Result(case_id="scale1e+0_float32_16x10_index_mean", backend="torch", seed=3)
    assert command(generated) == "xentcheck run --backends torch --case scale1e+0_float32_16x10_index_mean --seed 3"
