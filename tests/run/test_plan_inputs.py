"""--inputs in the run plan: which cases run, and run.json keeping each file case's path."""

import json

import numpy as np
import pytest

from xentcheck.run import plan as runplan


def _plan(path, n_cases=None, case_ids=()):
    return runplan.plan_from_options("numpy", (), "float32", 0, n_cases, case_ids, "cpu", "xentcheck", (), (), 300.0,
                                     input_files=(str(path),))


def test_inputs_alone_run_only_the_files_and_with_cases_after_them(tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, logits=np.ones((2, 3), np.float16), labels=np.array([0, 2]))
    alone = _plan(path)
    assert [c.id.split("-")[0] for c in alone.cases] == ["file"] and alone.cases[0].dtype == "float16"  # not --dtypes
    both = _plan(path, n_cases=2)
    assert [c.from_file for c in both.cases] == [False, False, True]
    data = json.loads(json.dumps(both.to_json()))
    assert data["inputs"] == {both.cases[2].id: str(path.resolve())}
    again = runplan.RunPlan.from_json(data)
    assert again == both and again.cases[2].source == str(path.resolve())
    assert "inputs" not in runplan.RunPlan(**{**vars(both), "cases": both.cases[:2]}).to_json()  # as before
    with pytest.raises(ValueError, match="holds a user's arrays: give its file with --inputs"):
        _plan(path, case_ids=(both.cases[2].id,))
