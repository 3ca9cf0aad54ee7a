"""One evaluation function: the same output gets the same verdict and reasons through every path
(a real `xentcheck run`, `pytest --xentcheck`, `xentcheck repro`, and evaluate() itself), for an
out-of-range class index returned in silence, a NaN result and a known difference."""

import functools
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, run_here
from tests.regress.test_pytest_plugin import INSTALLED, NOT_OURS
from xentcheck.backends.registry import create
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.evaluate import Result, Subject, VariantOutput, evaluate
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.reference import reference
from xentcheck.regress import known as known_mod
from xentcheck.regress.repro import result_id
from xentcheck.run.worker import output_of

TOYS = ROOT / "tests/helpers/toy_backends"
# what -> (toy backend file, its name, case id, the verdict every path must give)
FINDINGS = {
    "out_of_range": ("silent_oor.py", "silent-oor", "scale1e+0_float32_16x10_index_sum_opt-oor", "fail"),
    "nan": ("unshifted.py", "unshifted", "scale1e+2_float32_16x10_index_sum", "nonfinite"),
    "known": ("wrong_gradient.py", "forgets-mean", "scale1e+0_float32_16x10_index_mean", "known"),
}
KNOWN = ('[[difference]]\nid = "fm"\nbackend = "forgets-mean"\nreason = "the gradient is not divided by N"\n'
         'link = "https://example.org/fm"\n')


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Each finding's (verdict, reasons) by path, with the run's record."""
    tmp = tmp_path_factory.mktemp("evaluate")
    known_file = tmp / "known.toml"
    known_file.write_text(KNOWN)
    toys = [str(TOYS / f) for f, *_ in FINDINGS.values()]
    case_ids = [c for *_, c, _ in FINDINGS.values()]
    out = tmp / "run"
    res = run_here("run", *[a for t in toys for a in ("--backend-file", t)], *[a for c in case_ids for a in ("--case", c)],
                  "--known", str(known_file), "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stdout + res.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 9  # every toy on every case

    junit = tmp / "junit.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load = [] if INSTALLED else ["-p", "xentcheck.pytest_plugin"]  # the entry point loads it when installed
    plugin = subprocess.run([sys.executable, "-m", "pytest", *load, *NOT_OURS, "-p", "no:cacheprovider",
                             "--xentcheck", "--xentcheck-backends", ",".join(toys),
                             *[a for c in case_ids for a in ("--xentcheck-case", c)],
                             "--xentcheck-known", str(known_file), f"--junitxml={junit}", "-q"],
                            capture_output=True, text=True, cwd=tmp, env=env, timeout=600)
    assert plugin.returncode == 1, plugin.stdout + plugin.stderr  # the NaN and out-of-range findings fail
    items = {tc.get("name"): tc for tc in ET.parse(junit).getroot().iter("testcase")}
    assert len(items) == 9

    entries = known_mod.load(known_file)
    found = {}
    for what, (toy, name, case_id, _) in FINDINGS.items():
        record = next(r for r in records if r["backend"] == name and r["case_id"] == case_id)
        by_path = {"run": (record["verdict"], record["reasons"])}

        item = items[f"test_{name}[default-eager-{case_id}]"]
        failure, skipped = item.find("failure"), item.find("skipped")
        if failure is not None:  # "CASE on SPEC: VERDICT: REASON; REASON"
            verdict, _, joined = failure.text.split(f"{case_id} on file:{TOYS / toy}: ", 1)[1].partition(": ")
            by_path["pytest"] = (verdict, joined)
        elif skipped is not None and skipped.get("type") == "pytest.xfail":
            head = f"known difference fm: https://example.org/fm ({record['original_verdict']}: "
            assert skipped.get("message").startswith(head) and skipped.get("message").endswith(")")
            by_path["pytest"] = ("known", skipped.get("message")[len(head):-1])
        else:
            by_path["pytest"] = ("pass", "")

        rep = run_cli("repro", result_id(Result.from_dict(record)), "--from", str(out))
        assert "Warning" not in rep.stderr, rep.stderr
        lines = rep.stdout.splitlines()
        head = f"{result_id(Result.from_dict(record))}: "
        verdict, recorded = lines[0][len(head):].split(" (recorded: ")
        assert recorded == record["verdict"] + ")"
        reasons = [ln[2:] for ln in lines[1:] if ln.startswith("  ") and not ln.startswith("  known difference")]
        by_path["repro"] = (verdict, reasons)
        found[what] = (record, by_path, rep)

        backend = create(f"file:{TOYS / toy}")
        backend.load()
        case = Case.from_id(case_id)
        inputs = make_inputs(case, 0)
        v = backend.variants()[0]
        subject = Subject(backend=backend.name, impl=v.impl, mode=v.mode)
        lazy = functools.partial(reference, case, inputs, v.semantics)  # never computed for an out-of-range case
        direct = evaluate(case, subject, output_of(backend, v, case, inputs, "cpu"), Tolerances(), reference=lazy,
                          known=entries)
        by_path["direct"] = (direct.verdict, direct.reasons)
    return found


@pytest.mark.parametrize("what", list(FINDINGS))
def test_every_path_gives_the_same_verdict_and_reasons(paths, what):
    record, by_path, _ = paths[what]
    want = FINDINGS[what][3]
    assert record["verdict"] == want and record["reasons"]
    for path, (verdict, reasons) in by_path.items():
        assert verdict == want, (path, verdict, reasons)
        if path == "pytest":
            assert reasons == "; ".join(record["reasons"]), path
        else:
            assert reasons == record["reasons"], path
    if what == "out_of_range":
        assert record["reasons"] == ["silently returned loss [nan] for an out-of-range class index (label 10 with K = 10)"]
    if what == "nan":
        assert record["reasons"][0].startswith("loss: 1 / 1 NaN/inf where the reference differs, e.g. inf vs")
    if what == "known":
        assert record["original_verdict"] == "fail" and record["known"]["id"] == "fm"
        assert "gradient: 160 / 160 out of tolerance" in record["reasons"][0]


def test_repro_of_an_out_of_range_finding_says_the_recorded_verdict_without_warnings(paths):
    record, _, rep = paths["out_of_range"]
    assert rep.returncode == 1  # the finding reproduces
    assert rep.stdout.splitlines()[:2] == [
        f"{result_id(Result.from_dict(record))}: fail (recorded: fail)",
        "  silently returned loss [nan] for an out-of-range class index (label 10 with K = 10)"]
    assert "RuntimeWarning" not in rep.stderr and "invalid value" not in rep.stderr, rep.stderr


def test_an_out_of_range_label_computes_no_reference():
    case = Case.from_id("scale1e+0_float32_16x10_index_sum_opt-oor")

    def no_reference():
        raise AssertionError("an out-of-range case must not compute its reference")

    raised = VariantOutput("error", {"impl": "x", "mode": "eager"}, error="IndexError: index 10 is out of bounds")
    r = evaluate(case, Subject(backend="b"), raised, Tolerances(), reference=no_reference)
    assert (r.verdict, r.reasons) == ("pass", ["raised on the out-of-range class index: IndexError: index 10 is out of bounds"])
    silent = VariantOutput("ok", loss=np.float32(2.5), grads={"grad": np.zeros((16, 10), np.float32)})
    r = evaluate(case, Subject(backend="b"), silent, Tolerances(), reference=no_reference)
    assert r.verdict == "fail" and r.reasons[0].startswith("silently returned loss [2.5] ")
    assert not r.metrics and r.tolerance is None  # nothing was compared


def test_known_turns_only_bad_verdicts_into_known():
    case = Case.from_id("scale1e+0_float32_3x5_index_mean")
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs)
    entries = [{"id": "all", "reason": "r", "link": "l", "backend": "b*"}]
    good = VariantOutput("ok", loss=np.float32(ref.loss), grads={"grad": ref.grad.astype(np.float32)})
    assert evaluate(case, Subject(backend="b1"), good, Tolerances(), reference=ref, known=entries).verdict == "pass"
    bad = VariantOutput("ok", loss=np.float32(ref.loss), grads={"grad": (2 * ref.grad).astype(np.float32)})
    r = evaluate(case, Subject(backend="b1"), bad, Tolerances(), reference=ref, known=entries)
    assert (r.verdict, r.original_verdict, r.known) == ("known", "fail", {"id": "all", "reason": "r", "link": "l"})
    other = evaluate(case, Subject(backend="c"), bad, Tolerances(), reference=ref, known=entries)
    assert (other.verdict, other.known) == ("fail", None)


def test_a_results_line_reads_and_writes_back_unchanged():
    line = {"case_id": "c", "family": "f", "dtype": "float32", "n": 1, "k": 2, "labels": "index", "reduction": "mean",
            "seed": 0, "backend": "b", "impl": "i", "mode": "eager", "api": "", "device": "cpu",
            "backend_version": "1", "loss_dtype": "float32", "grad_dtype": "float32",
            "loss": {"size": 1, "abs_err": 0.5, "worst_actual": "nan", "future_metric": 3},
            "verdict": "nonfinite", "reasons": ["x"], "timing": {"wall_seconds": 0.1}, "documented": "d",
            "a_future_field": [1, 2]}
    r = Result.from_dict(line)
    assert r.metrics["loss"].worst_actual == "nan" and r.other == {"a_future_field": [1, 2]}
    assert json.dumps(r.to_dict()) == json.dumps(line)  # the same keys, in the same order
    out = VariantOutput("ok", {"impl": "i", "mode": "eager", "semantics": "torch"}, seconds=0.5, loss_dtype="float32",
                        grad_dtype="float32", notes=["n"], properties={"determinism": {"verdict": "pass", "detail": ""}})
    back = VariantOutput.from_dict(json.loads(json.dumps(out.to_dict())))
    assert back == out and back.semantics == "torch"


def test_the_fields_only_some_cases_have_are_declared_and_keep_their_place():
    """d, part, spec and inputs_file (Case.as_dict) are Result fields, written after the outcome as
    results.jsonl has always had them; a known difference's recorded verdict is its original one."""
    case = Case.from_id("scale1e+0_float32_16x100_lin16_index_mean")
    r = Subject(backend="b", impl="i", mode="eager", seed=0).result(case, verdict="fail", reasons=["x"])
    assert r.d == 16 and r.other == {}
    line = json.dumps(r.to_dict())
    assert list(r.to_dict())[-1] == "d" and json.dumps(Result.from_dict(json.loads(line)).to_dict()) == line
    data = {**json.loads(line), "part": "tp2", "spec": "kd-fkl", "inputs_file": "/x.npz", "a_future_field": 1}
    typed = Result.from_dict(data)
    assert (typed.part, typed.spec, typed.inputs_file, typed.other) == ("tp2", "kd-fkl", "/x.npz", {"a_future_field": 1})
    assert list(typed.to_dict()) == list(data)
    assert r.recorded_verdict == "fail"
    r.original_verdict, r.verdict = "fail", "known"
    assert r.recorded_verdict == "fail"
