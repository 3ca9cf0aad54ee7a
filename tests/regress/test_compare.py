"""`xentcheck compare`: two real runs that differ in one numerics setting, identical runs, and the
matching rules on hand-made records."""

import json

from xentcheck.reports.compare_runs import compare_runs
from tests.conftest import ROOT, run_cli

SLOPPY = str(ROOT / "tests/helpers/toy_backends/env_sloppy.py")


def _run(out, sloppy: bool):
    res = run_cli("run", "--backend-file", SLOPPY, "--dtypes", "float32", "--cases", "9", "--out", str(out),
                  "--no-progress", env={"XENTCHECK_TEST_SLOPPY": "1" if sloppy else "0"})
    assert res.returncode in (0, 1), res.stderr
    return res


def test_a_setting_that_changes_numerics_is_a_regression_and_identical_runs_are_not(tmp_path):
    base, same, new = tmp_path / "base", tmp_path / "same", tmp_path / "new"
    assert _run(base, False).returncode == 0
    _run(same, False)
    assert _run(new, True).returncode == 1

    ok = run_cli("compare", str(base), str(same), "--json", str(tmp_path / "same.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "**No regression**" in ok.stdout
    same_json = json.loads((tmp_path / "same.json").read_text())
    assert same_json["matched"] == 9 and not same_json["regressions"] and not same_json["new"]

    res = run_cli("compare", str(base), str(new), "--json", str(tmp_path / "c.json"),
                  "--markdown", str(tmp_path / "c.md"))
    assert res.returncode == 1, res.stdout + res.stderr
    c = json.loads((tmp_path / "c.json").read_text())
    regressed = {r["key"][0] for r in c["regressions"]}
    # the sloppy formula loses u * |x|: the large-offset cases with index labels break
    assert "offset1e+8_float32_128x1000_index_mean" in regressed
    assert all(r["base_verdict"] == "pass" and r["new_verdict"] == "fail" for r in c["regressions"])
    md = (tmp_path / "c.md").read_text()
    assert "REGRESSIONS FOUND" in md and "offset1e+8\\_float32\\_128x1000\\_index\\_mean" in md
    # both fingerprints side by side, the differing setting in bold
    assert "| **backends.env-sloppy.settings.XENTCHECK\\_TEST\\_SLOPPY** | **0** | **1** |" in md
    # the reverse direction is an improvement, not a regression
    back = run_cli("compare", str(new), str(base), "--json", str(tmp_path / "r.json"))
    assert back.returncode == 0
    assert {r["key"][0] for r in json.loads((tmp_path / "r.json").read_text())["improvements"]} == regressed


def _rec(case, verdict="pass", ulp=1.0, backend="b", dtype="float32"):
    return {"case_id": case, "backend": backend, "impl": "i", "mode": "eager", "dtype": dtype, "verdict": verdict,
            "loss": {"ulp_err": ulp, "rel_err": 0.0, "abs_err": 0.0}, "grad": {"ulp_err": 0.5, "rel_err": 0.0, "abs_err": 0.0}}


def test_error_growth_verdict_changes_new_and_missing():
    base = [_rec("a", ulp=1.5), _rec("b", ulp=1.5), _rec("c", "fail"), _rec("d"), _rec("e", "nonfinite"),
            _rec("f", ulp=0.2), {**_rec("g", "known"), "original_verdict": "nonfinite"},
            {**_rec("h", "known"), "original_verdict": "fail"}]
    new = [_rec("a", ulp=4.0), _rec("b", ulp=2.5), _rec("c", "pass"), _rec("x"), _rec("e", "crashed"),
           _rec("f", ulp=0.9), _rec("g", "pass"), _rec("h", "fail")]
    c = compare_runs(base, new, factor=2.0)
    assert [(r["key"][0], r["kind"], r["output"]) for r in c["regressions"]] == [("a", "error", "loss")]
    assert c["regressions"][0]["ratio"] == 4.0 / 1.5
    # b grew 1.67x only; f stays under the floor; g was a known NaN; h fails as before, --known or not
    assert [r["key"][0] for r in c["improvements"]] == ["c", "g"]
    assert [r["key"][0] for r in c["changed"]] == ["e"]
    assert [k[0] for k in c["new"]] == ["x"] and [k[0] for k in c["missing"]] == ["d"]
    assert compare_runs(base, new, factor=3.0)["regressions"] == []
    # another backend name (e.g. numpy@old) is another result, never matched with numpy
    assert compare_runs([_rec("a", backend="numpy")], [_rec("a", backend="numpy@old")])["matched"] == 0


def test_compare_usage_errors_exit_2(tmp_path):
    res = run_cli("compare", str(tmp_path), str(tmp_path))
    assert res.returncode == 2 and "is not a results folder" in res.stderr
