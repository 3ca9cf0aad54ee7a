"""The CLI end to end: outputs, exit codes 0 / 1 / 2, backends listing. A clean run, the usage errors
and the listing run as `python -m xentcheck` processes; the other runs in this process (run_here),
their backends' workers in their own as ever."""

import json

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli, run_here

FILES = ("results.jsonl", "summary.json", "report.md", "results.csv")


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_clean_run_exits_0_and_writes_the_four_files(tmp_path):
    out = tmp_path / "o"
    res = run_cli("run", "--backends", "numpy", "--dtypes", "float32,float64", "--cases", "12", "--out", str(out))
    assert res.returncode == 0, res.stderr
    for name in FILES:
        assert (out / name).stat().st_size > 0
    recs = _records(out)
    assert len(recs) == 12 and {r["verdict"] for r in recs} == {"pass"}
    assert {r["dtype"] for r in recs} == {"float32", "float64"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_status"] == 0 and summary["counts"]["pass"] == 12
    assert summary["backends"][0]["name"] == "numpy" and summary["backends"][0]["status"] == "ok"
    assert len(pd.read_csv(out / "results.csv")) == 12
    report = (out / "report.md").read_text()
    assert "Pass rates per backend and dtype" in report and "OK: every result within tolerance" in report
    assert "12 results" in res.stdout


def test_a_wrong_gradient_is_found_and_exits_1(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/wrong_gradient.py"),
                  "--dtypes", "float32", "--cases", "11", "--out", str(out))
    assert res.returncode == 1, res.stderr
    recs = _records(out)
    by_reduction = {}
    for r in recs:
        if r["n"] > 1:  # with one row the bug is invisible
            by_reduction.setdefault(r["reduction"], set()).add(r["verdict"])
    assert by_reduction["mean"] == {"fail"}  # gradient N times too large
    assert by_reduction.get("sum", {"pass"}) == {"pass"} and by_reduction.get("none", {"pass"}) == {"pass"}
    bad = next(r for r in recs if r["reduction"] == "mean" and r["n"] > 1)
    assert "gradient:" in bad["reasons"][0] and "out of tolerance" in bad["reasons"][0]
    assert bad["loss"]["n_exceed"] == 0
    report = (out / "report.md").read_text()
    assert "DISCREPANCIES FOUND" in report and bad["case_id"].replace("_", "\\_") in report


def test_skipped_dtypes_do_not_fail_the_run(tmp_path):
    res = run_here("run", "--backend-file", str(ROOT / "examples/my_backend.py"), "--dtypes", "float16",
                  "--cases", "3", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    recs = _records(tmp_path / "o")
    assert {r["verdict"] for r in recs} == {"skipped"}
    assert "does not support dtype float16" in recs[0]["reasons"][0]


def test_inputs_modified_in_place_are_reported(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/inplace_kernel.py"), "--dtypes", "float64",
                  "--case", "scale1e+0_float64_4x10_index_mean", "--case", "scale1e+0_float64_4x10_soft_mean",
                  "--out", str(out))
    assert res.returncode == 0, res.stderr
    recs = _records(out)
    assert recs[0]["verdict"] == "pass" and recs[0]["inputs_modified"] == ["logits"]
    assert recs[1]["verdict"] == "skipped"
    assert "modified their inputs" in (out / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["run", "--backends", "nosuch"], "unknown backend 'nosuch'"),
    (["run", "--dtypes", "float8"], "unknown dtype 'float8'"),
    (["run", "--seed", "-1"], "--seed"),
    (["run", "--cases", "0"], "--cases"),
    (["run", "--rtol", "abc"], "--rtol value 'abc' is not a number"),
    (["run", "--case", "bogus"], "malformed case id"),
    (["run", "--backend-file", "/nonexistent.py"], "backend file not found"),
    (["frobnicate"], "No such command"),
])
def test_usage_errors_exit_2_with_one_line(args, message, tmp_path):
    res = run_cli(*args, "--out", str(tmp_path / "o")) if args[0] == "run" else run_cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xentcheck: error:") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_all_four_frameworks_end_to_end(tmp_path):
    """A short run of every built-in backend: each starts, reports its version and computes."""
    out = tmp_path / "o"
    res = run_here("run", "--cases", "11", "--dtypes", "float32", "--out", str(out))
    assert res.returncode in (0, 1), res.stderr
    summary = json.loads((out / "summary.json").read_text())
    names = [b["name"] for b in summary["backends"]]
    assert names[:4] == ["numpy", "torch", "tensorflow", "jax"]
    recs = _records(out)
    assert len(recs) == 44
    for b in summary["backends"]:
        mine = [r for r in recs if r["backend"] == b["name"]]
        if b["status"] == "ok":
            assert all(r["verdict"] in ("pass", "fail", "nonfinite") for r in mine)
        else:  # a framework missing here is a skip with a reason, never a crash
            assert b["status"] == "missing" and {r["verdict"] for r in mine} == {"skipped"}


def test_backends_lists_availability_versions_and_dtypes():
    res = run_cli("backends", "--json")
    assert res.returncode == 0
    infos = {i["name"]: i for i in json.loads(res.stdout)}
    assert set(infos) >= {"numpy", "torch", "tensorflow", "jax"}
    assert infos["numpy"]["status"] == "ok" and infos["numpy"]["version"]
    assert infos["numpy"]["dtypes"] == ["float16", "bfloat16", "float32", "float64"]
    for i in infos.values():
        assert i["status"] == "ok" or i["reason"]
