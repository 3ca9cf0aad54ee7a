"""examples/liger_backend.py end to end: Liger-Kernel's fused cross entropy on Triton's CPU
interpreter (where liger-kernel and triton are installed), and its report as not installed
(everywhere: the package is hidden from the run)."""

import importlib.util
import json

import pytest

from tests.conftest import ROOT, run_here

PLUGIN = str(ROOT / "examples/liger_backend.py")


def _records(out) -> dict:
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["backend"], r["case_id"]): r for r in recs}


def test_liger_runs_natively_with_its_options_and_writes_into_its_input(tmp_path):
    # looked up, not imported: torch and triton stay out of the test process
    for module, dist in (("triton", "triton"), ("liger_kernel", "liger-kernel")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{dist} not installed: pip install 'xentcheck[liger]'")
    fused = "scale1e+1_float32_16x10_index_mean_opt-w+ign+ls+cap30+z1e-4"
    per_row = "scale1e+1_float16_16x10_index_none_opt-ign+ct"
    offset = "offset1e+4_float32_16x10_index_none"  # loss = (m + log d) - x_y cancels at |x| ~ 1e4
    bf16 = "scale1e+1_bfloat16_16x10_index_mean_opt-z1e-4"
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", PLUGIN, "--backends", "numpy", "--out", str(out),
                  *(a for c in (fused, per_row, offset, bf16) for a in ("--case", c)))
    assert res.returncode == 1, res.stderr  # the offset case's loss is a finding
    recs = _records(out)
    for case in (fused, per_row):  # weights, ignored rows, smoothing, softcap, z-loss, cotangents
        r = recs[("liger", case)]
        assert r["verdict"] == "pass", r
        assert r["inputs_modified"] == ["logits"]  # the gradient was written into the logits
    r = recs[("liger", offset)]
    assert r["verdict"] == "fail" and r["reasons"][0].startswith("loss:"), r
    assert r["grad"]["n_exceed"] == 0 and r["loss"]["n_exceed"] == 16 and r["loss"]["ulp_err"] > 1000
    # numpy's worker got its own inputs: same case, untouched and within tolerance
    assert recs[("numpy", offset)]["verdict"] == "pass" and recs[("numpy", offset)]["inputs_modified"] == []
    r = recs[("liger", bf16)]
    assert r["verdict"] == "skipped" and "interpreter" in r["reasons"][0]
    report = (out / "report.md").read_text()
    assert "modified their inputs" in report


def test_without_liger_the_backend_is_reported_missing_with_the_reason(tmp_path):
    # A package named liger_kernel that fails to import, first on the path: the run's workers
    # see what a machine without liger-kernel sees, whether or not it is installed here.
    hidden = tmp_path / "hide"
    (hidden / "liger_kernel").mkdir(parents=True)
    (hidden / "liger_kernel/__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'liger_kernel'\", name='liger_kernel')\n")
    out = tmp_path / "o"
    case = "scale1e+1_float32_16x10_index_mean_opt-z1e-4"
    res = run_here("run", "--backend-file", PLUGIN, "--case", case, "--out", str(out),
                  env={"PYTHONPATH": str(hidden)})
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    r = _records(out)[("liger", case)]
    assert r["verdict"] == "skipped"
    # liger_kernel, or torch where even that is absent (a CI without frameworks)
    assert r["reasons"][0].startswith("liger: framework not installed (No module named "), r["reasons"]
    assert "pip install 'xentcheck[liger]'" in r["reasons"][0]
    summary = json.loads((out / "summary.json").read_text())
    assert [(b["name"], b["status"]) for b in summary["backends"]] == [("liger", "missing")]
