"""`xentcheck compare`: two real runs that differ in one numerics setting, identical runs, and the
matching rules on hand-made records."""

import json
from dataclasses import replace

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.records import Result
from xentcheck.reports.compare_runs import compare_runs

SLOPPY = str(ROOT / "tests/helpers/toy_backends/env_sloppy.py")


def _run(out, sloppy: bool):
    res = run_here("run", "--backend-file", SLOPPY, "--dtypes", "float32", "--cases", "9", "--out", str(out),
                  "--no-progress", env={"XENTCHECK_TEST_SLOPPY": "1" if sloppy else "0"})
    assert res.returncode in (0, 1), res.stderr
    return res


def test_a_setting_that_changes_numerics_is_a_regression_and_identical_runs_are_not(tmp_path):
    base, same, new = tmp_path / "base", tmp_path / "same", tmp_path / "new"
    assert _run(base, False).returncode == 0
    _run(same, False)
    assert _run(new, True).returncode == 1

    ok = run_here("compare", str(base), str(same), "--json", str(tmp_path / "same.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "**No regression**" in ok.stdout
    same_json = json.loads((tmp_path / "same.json").read_text())
    assert same_json["matched"] == 9 and not same_json["regressions"] and not same_json["new"]

    res = run_here("compare", str(base), str(new), "--json", str(tmp_path / "c.json"),
                  "--markdown", str(tmp_path / "c.md"))
    assert res.returncode == 1, res.stdout + res.stderr
    c = json.loads((tmp_path / "c.json").read_text())
    regressed = {r["key"][0] for r in c["regressions"]}
    # the sloppy formula loses u * |x|: the large-offset cases with index labels break
    assert "offset1e+8_float32_128x1000_index_mean" in regressed
    assert all(r["base_verdict"] == "pass" and r["new_verdict"] == "fail" for r in c["regressions"])
    md = (tmp_path / "c.md").read_text()
    assert "REGRESSIONS FOUND" in md and "offset1e+8\\_float32\\_128x1000\\_index\\_mean" in md
    # the fingerprint fields that differ, not the many that are the same
    env = md.split("## Environments")[1]
    assert "| backends.env-sloppy.settings.XENTCHECK\\_TEST\\_SLOPPY | 0 | 1 |" in env
    assert "| python |" not in env and "fingerprint fields differ" in env
    # the reverse direction is an improvement, not a regression
    back = run_here("compare", str(new), str(base), "--json", str(tmp_path / "r.json"))
    assert back.returncode == 0
    assert {r["key"][0] for r in json.loads((tmp_path / "r.json").read_text())["improvements"]} == regressed


def _rec(case, verdict="pass", ulp=1.0, backend="b", dtype="float32"):
    return Result.from_dict({"case_id": case, "backend": backend, "impl": "i", "mode": "eager", "dtype": dtype,
                             "verdict": verdict, "loss": {"ulp_err": ulp, "rel_err": 0.0, "abs_err": 0.0},
                             "grad": {"ulp_err": 0.5, "rel_err": 0.0, "abs_err": 0.0}})


def test_error_growth_verdict_changes_new_and_missing():
    base = [_rec("a", ulp=1.5), _rec("b", ulp=1.5), _rec("c", "fail"), _rec("d"), _rec("e", "nonfinite"),
            _rec("f", ulp=0.2), replace(_rec("g", "known"), original_verdict="nonfinite"),
            replace(_rec("h", "known"), original_verdict="fail")]
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


def _folder(path, summary_changes: dict | None = None, records: bool = True, preset: str = "xentcheck"):
    """A hand-written results folder: two real records and the summary.json context of a run."""
    from tests.helpers.report_records import CASES, context, record

    ctx = context(["numpy"], preset)
    ctx["config"].update({"suite": "default"}, **(summary_changes or {}))
    path.mkdir()
    lines = [json.dumps(record(c, "numpy", preset=preset).to_dict()) + "\n" for c in CASES[:2]] if records else []
    (path / "results.jsonl").write_text("".join(lines))
    (path / "summary.json").write_text(json.dumps(ctx))
    return str(path)


def _warnings(res) -> list[str]:
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert all(line.startswith("xentcheck: warning: ") for line in lines), res.stderr
    return [line.removeprefix("xentcheck: warning: ") for line in lines]


def test_runs_of_other_settings_are_compared_with_a_warning_naming_both_values(tmp_path):
    base = _folder(tmp_path / "base")
    new = _folder(tmp_path / "new", {"seed": 7, "suite": "full", "dtypes": ["float32"], "device": "cuda"}, preset="torch")
    res = run_here("compare", base, new, "--markdown", str(tmp_path / "c.md"), "--json", str(tmp_path / "c.json"))
    assert res.returncode == 0, res.stderr
    expected = ["the runs differ in seed: base 0, new 7 (the same case ids held other inputs)",
                "the runs differ in suite: base default, new full (other implementations and modes were checked)",
                "the runs differ in dtypes: base float16,float32,float64, new float32 (other dtypes were tested)",
                "the runs differ in tolerances: base xentcheck, new torch (the verdicts were judged by other tolerances)",
                "the runs differ in device: base cpu, new cuda (the backends ran on another device)"]
    assert _warnings(res) == expected
    md = (tmp_path / "c.md").read_text()
    assert "**No regression**" in md and "**Warning**: matched results may not be comparable:" in md
    assert "- the runs differ in seed: base 0, new 7 (the same case ids held other inputs)" in md
    assert "- the runs differ in tolerances: base xentcheck, new torch" in md
    settings = json.loads((tmp_path / "c.json").read_text())["settings"]
    assert [(s["setting"], s["base"], s["new"]) for s in settings][0] == ("seed", 0, 7)


def test_tolerance_values_set_by_rtol_are_named_per_dtype_and_same_settings_warn_nothing(tmp_path):
    from xentcheck.core.tolerances import Tolerances

    base, same = _folder(tmp_path / "base"), _folder(tmp_path / "same")
    tol = Tolerances("xentcheck")
    tol.override("rtol", "float32=1e-05")
    new = _folder(tmp_path / "new", {})
    summary = json.loads((tmp_path / "new" / "summary.json").read_text())
    (tmp_path / "new" / "summary.json").write_text(json.dumps({**summary, "tolerances": tol.as_dict()}))
    res = run_here("compare", base, new)
    assert res.returncode == 0, res.stderr
    u8 = repr(8 * 2.0 ** -24)  # 8 units of roundoff of float32
    assert _warnings(res) == [
        f"the runs differ in tolerances float32 {out} rtol: base {u8}, new 1e-05 (the verdicts were judged by other "
        "tolerances)" for out in ("loss", "grad")]
    assert f"- the runs differ in tolerances float32 loss rtol: base {u8}, new 1e-05" in res.stdout
    ok = run_here("compare", base, same)
    assert ok.returncode == 0 and ok.stderr == "" and "Warning" not in ok.stdout


def test_a_side_without_results_is_a_warning(tmp_path):
    res = run_here("compare", _folder(tmp_path / "base"), _folder(tmp_path / "new", records=False))
    assert res.returncode == 0, res.stderr
    assert _warnings(res) == ["the new run holds no results: nothing of it was compared"]
    assert "2 missing" in res.stdout


def test_two_real_runs_of_other_seeds_warn(tmp_path):
    for seed in ("0", "3"):
        done = run_here("run", "--backends", "numpy", "--cases", "4", "--seed", seed, "--out", str(tmp_path / seed),
                       "--no-progress")
        assert done.returncode == 0, done.stderr
    res = run_here("compare", str(tmp_path / "0"), str(tmp_path / "3"))
    assert res.returncode == 0, res.stderr
    assert _warnings(res) == ["the runs differ in seed: base 0, new 3 (the same case ids held other inputs)"]
    assert "4 results matched" in res.stdout and "- the runs differ in seed: base 0, new 3" in res.stdout


def _linear(dw_ulps: float) -> Result:
    """A real linear-CE result (xentcheck.core.evaluate, torch's tolerances): the reference in float64,
    dW moved by `dw_ulps` float64 ULPs of each entry's natural scale; loss, dh and db exact."""
    import numpy as np

    from xentcheck.core.cases import Case, make_inputs
    from xentcheck.core.evaluate import Subject, VariantOutput, evaluate
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems import problem_of

    case = Case.from_id("scale1e+0_float64_32x100_lin16_index_mean_opt-b")
    ref = problem_of(case).reference(case, make_inputs(case, 0), "plain")
    arrays = {k: np.asarray(a, dtype=np.float64) for k, a in problem_of(case).reference_arrays(case, ref).items()}
    arrays["dw"] = arrays["dw"] + dw_ulps * np.spacing(np.asarray(ref.scales["dw"], dtype=np.float64))
    out = VariantOutput("ok", inputs_modified=[], loss=arrays.pop("loss"), grads=arrays)
    return evaluate(case, Subject(backend="toy-linear", impl="fused", mode="eager"), out, Tolerances("torch"),
                    reference=ref)


def test_a_dw_error_that_grows_16x_is_a_regression_while_both_pass():
    base, new = _linear(4.0), _linear(64.0)
    assert base.verdict == new.verdict == "pass"
    c = compare_runs([base], [new], factor=2.0)
    assert [(r["key"][0], r["output"]) for r in c["regressions"]] == [(base.case_id, "dw")]
    assert 12 < c["regressions"][0]["ratio"] < 20  # 16x, give or take the reference's last-bit rounding
    back = compare_runs([new], [base], factor=2.0)
    assert [r["output"] for r in back["improvements"]] == ["dw"] and not back["regressions"]


def test_two_runs_of_a_linear_plugin_whose_dw_error_grows_16x(tmp_path):
    """End to end: two `xentcheck run`s of a toy linear-CE plugin whose dW has a relative error of
    1e-9, then 1.6e-8 (both within torch's float64 rtol 1e-7), and `xentcheck compare` of the two."""
    toy, case = str(ROOT / "tests/helpers/toy_backends/linear_dw_drift.py"), "scale1e+0_float64_32x100_lin16_index_mean_opt-b"
    for name, error in (("base", "1e-9"), ("new", "1.6e-8")):
        done = run_cli("run", "--backend-file", toy, "--case", case, "--tolerance", "torch", "--out",
                       str(tmp_path / name), "--no-progress", env={"XENTCHECK_TOY_DW_ERROR": error})
        assert done.returncode == 0, done.stdout + done.stderr
        [line] = (tmp_path / name / "results.jsonl").read_text().splitlines()
        assert json.loads(line)["verdict"] == "pass"
    res = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "new"), "--json", str(tmp_path / "c.json"))
    assert res.returncode == 1, res.stdout + res.stderr
    [regression] = json.loads((tmp_path / "c.json").read_text())["regressions"]
    assert regression["key"][0] == case and regression["output"] == "dw"
    assert regression["base_verdict"] == regression["new_verdict"] == "pass"
    assert 15 < regression["ratio"] < 17  # 1.6e-8 / 1e-9, the reference's own rounding aside
    assert "dw" in res.stdout.lower() and "linear-dw-drift" in res.stdout
