"""A result computed in a wider dtype than requested is `widened` (judged at the requested dtype's
tolerance); a narrower one stays a failure; reports keep the two apart."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.conftest import ROOT, run_here
from tests.helpers.judge import judged
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import wider
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.reference import reference

TOYS = ROOT / "tests/helpers/toy_backends"
F16, F64 = "scale1e+0_float16_16x10_index_mean", "scale1e+0_float64_16x10_index_mean"


def test_wider_holds_every_value_of_the_requested_dtype():
    assert wider("float32", "float16") and wider("float32", "bfloat16") and wider("float64", "float32")
    assert wider("float64", "float16") and wider("float64", "bfloat16")
    assert not wider("float32", "float64") and not wider("float16", "float32") and not wider("float32", "float32")
    # float16 has more precision, bfloat16 more range: neither holds the other
    assert not wider("float16", "bfloat16") and not wider("bfloat16", "float16")
    assert not wider("int64", "float16") and not wider("float64", "int32")


def _float64_output(case: Case):
    """The numpy adapter's loss and gradient of the case, computed in float64."""
    inputs = make_inputs(case, 0)
    out = NumpyBackend().compute(case, inputs.__class__(inputs.logits.astype(np.float64), inputs.labels, inputs.target),
                                 "cpu")
    return inputs, np.asarray(out.loss), np.asarray(out.grad)


def test_a_float16_request_computed_in_float64_is_widened_and_judged_in_float16():
    case = Case.from_id(F16)
    inputs, loss, grad = _float64_output(case)
    ref, tol = reference(case, inputs), Tolerances()
    r = judged(case, ref, loss, grad, None, None, tol)
    assert r["verdict"] == "widened"
    assert r["reasons"] == ["loss computed in float64, wider than the requested float16",
                            "grad computed in float64, wider than the requested float16"]
    # ULPs of float16: a float64 result is well inside half a float16 ULP
    assert r["loss"]["ulp_err"] < 0.5 and r["grad"]["n_exceed"] == 0
    assert r["tolerance"]["grad"]["rtol"] == tol.get("float16", "grad")[0]
    # widened but wrong: the values decide the verdict, the widening is still said (last)
    bad = grad.copy()
    bad[0, 0] += 0.01
    r = judged(case, ref, loss, bad, None, None, tol)
    assert r["verdict"] == "fail" and "out of tolerance" in r["reasons"][0]
    assert r["reasons"][-1] == "grad computed in float64, wider than the requested float16"


def test_a_narrower_result_stays_a_failure_even_within_tolerance():
    case = Case.from_id(F64)
    inputs, loss, grad = _float64_output(case)
    ref = reference(case, inputs)
    loose = Tolerances()
    loose.override("rtol", "1e-2")  # values within tolerance: the dtype alone fails it
    loose.override("atol", "1e-2")
    r = judged(case, ref, loss.astype(np.float32), grad.astype(np.float32), None, None, loose)
    assert r["verdict"] == "fail" and r["loss"]["n_exceed"] == 0 and r["grad"]["n_exceed"] == 0
    assert r["reasons"] == ["loss computed in float32, requested float64", "grad computed in float32, requested float64"]
    bf16 = Case.from_id("scale1e+0_bfloat16_16x10_index_mean")
    inputs = make_inputs(bf16, 0)
    out = NumpyBackend().compute(bf16, inputs.__class__(inputs.logits.astype(np.float16), inputs.labels, inputs.target),
                                 "cpu")
    r = judged(bf16, reference(bf16, inputs), out.loss, out.grad, None, None, Tolerances())
    assert r["verdict"] == "fail" and r["reasons"][0] == "loss computed in float16, requested bfloat16"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("widened")
    res = run_here("run", "--backend-file", str(TOYS / "widens.py"), "--backend-file", str(TOYS / "narrows.py"),
                  "--case", F16, "--case", F64, "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stdout + res.stderr  # the narrowed result fails the run
    return out


def test_reports_count_and_table_widened_apart_from_narrowed(toy_run):
    recs = {(r["backend"], r["case_id"]): r for r in map(json.loads, (toy_run / "results.jsonl").read_text().splitlines())}
    assert {k: r["verdict"] for k, r in recs.items()} == {
        ("widens", F16): "widened", ("widens", F64): "pass", ("narrows", F16): "pass", ("narrows", F64): "fail"}
    summary = json.loads((toy_run / "summary.json").read_text())
    assert summary["counts"]["widened"] == 1 and summary["counts"]["fail"] == 1 and summary["counts"]["pass"] == 2
    widens_f16 = next(p for p in summary["pass_rates"] if p["backend"] == "widens" and p["dtype"] == "float16")
    assert (widens_f16["pass"], widens_f16["widened"], widens_f16["ran"]) == (0, 1, 1)

    md = (toy_run / "report.md").read_text()
    findings = md.split("## Findings")[1].split("## Computed in a wider dtype")[0]
    wide = md.split("## Computed in a wider dtype")[1].split("\n## ")[0]
    assert "loss computed in float16, requested float64" in findings and "wider than" not in findings
    assert "| widens | analytic | loss computed in float64, wider than the requested float16 | 1 |" in wide
    assert "narrows" not in wide
    assert "| widens | analytic | eager | 0 / 1, 1 widened |" in md  # the pass-rate cell, not bold: nothing failed

    suites = {s.get("name"): s for s in ET.parse(toy_run / "junit.xml").getroot()}
    widens, narrows = suites["xentcheck.widens"], suites["xentcheck.narrows"]
    assert (widens.get("failures"), narrows.get("failures")) == ("0", "1")
    tc = next(t for t in widens if t.get("name") == F16)
    assert tc.find("failure") is None and tc.find("properties/property").get("value") == "widened"
    assert "wider than the requested float16" in tc.find("system-out").text
