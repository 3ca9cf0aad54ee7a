"""`xentcheck repro` on a result it cannot compute again (a backend that no longer loads, a
changed inputs file): one line and status 2, no traceback, no library warning before it."""

import json
import warnings

import numpy as np
import pytest

from tests.conftest import run_cli
from xentcheck.core.records import Result
from xentcheck.core.user_inputs import load
from xentcheck.regress import repro

PLUGIN = """
import os, warnings
from xentcheck.backends.numpy_backend import NumpyBackend
if os.environ.get("XENTCHECK_TEST_BREAK"):
    warnings.warn("plugin user warning")
    raise RuntimeError("plugin broke")
class Mine(NumpyBackend):
    name = "mine"
"""


def test_a_backend_that_fails_to_load_is_one_line_without_its_warnings(tmp_path, monkeypatch):
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("XENTCHECK_TEST_BREAK", "1")
    record = Result(case_id="scale1e+0_float32_16x10_index_mean", backend="mine", seed=0, verdict="pass")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(repro.ReproError) as err:
            repro.rerun(record, f"file:{plugin}", {})
    assert str(err.value) == (f"backend file:{plugin} cannot be loaded here: {plugin} failed to import: "
                              "RuntimeError: plugin broke")
    assert caught == []


def test_a_changed_inputs_file_is_one_line(tmp_path):
    path = tmp_path / "batch.npz"
    np.savez(path, logits=np.array([[1.0, 2.0, 3.0]], np.float32), labels=np.array([2]))
    case, _ = load(path)
    np.savez(path, logits=np.array([[1.0, 2.0, 4.0]], np.float32), labels=np.array([2]))
    record = Result.from_dict({**case.as_dict(), "backend": "numpy", "impl": "analytic", "mode": "eager",
                               "verdict": "pass", "seed": 0})
    with pytest.raises(repro.ReproError, match=f"^{path}: the file changed since case {case.id}"):
        repro.rerun(record, "numpy", {})


def test_the_command_exits_2_with_one_line(tmp_path):
    plugin, out = tmp_path / "mine.py", tmp_path / "out"
    plugin.write_text(PLUGIN)
    res = run_cli("run", "--backend-file", str(plugin), "--dtypes", "float32", "--cases", "1", "--out", str(out),
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    case_id = json.loads((out / "results.jsonl").read_text().splitlines()[0])["case_id"]
    res = run_cli("repro", f"mine__{case_id}", "--from", str(out), env={"XENTCHECK_TEST_BREAK": "1"})
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"xentcheck: error: backend file:{plugin} cannot be loaded here: {plugin} "
                                       "failed to import: RuntimeError: plugin broke"]
