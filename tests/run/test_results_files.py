"""results.jsonl and report files: atomic writes, torn last lines, clean appends after a resume."""

from __future__ import annotations

import json
import os

import pytest

from xentcheck.run import resume, plan as runplan
from xentcheck.core.cases import default_suite
from xentcheck.reports.files import ResultsWriter, read_results, write_atomic

CASES = default_suite(["float32"])[:3]
PLAN = runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=CASES)


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    write_atomic(target, "old\n")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_torn_last_line_is_dropped_but_a_torn_middle_line_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    good = json.dumps({"case_id": CASES[0].id, "backend": "numpy"}) + "\n"
    path.write_text(good + '{"case_id": "sca')
    assert read_results(path) == [json.loads(good)]
    path.write_text('{"case_id": "sca\n' + good)
    with pytest.raises(ValueError, match="results.jsonl:1: not a JSON line"):
        read_results(path)


def test_resume_rewrites_without_the_torn_line_and_appends_cleanly(tmp_path):
    records = [{"case_id": c.id, "backend": "numpy", "verdict": "pass"} for c in CASES]
    path = tmp_path / "results.jsonl"
    path.write_text(resume.render_results(records[:2]) + '{"case_id": "tor')
    prior = resume.prior_results(tmp_path, PLAN)
    assert prior == records[:2]
    resume.rewrite_results(tmp_path, prior)
    writer = ResultsWriter(path, append=True)
    writer(records[2])
    writer.close()
    assert path.read_text() == resume.render_results(records)


def test_results_writer_lines_are_what_resume_renders(tmp_path):
    """The final rewrite of a resumed run must produce the bytes the writer would have."""
    records = [{"case_id": CASES[0].id, "backend": "x<y>", "loss": {"abs_err": 1e-300, "rel_err": float("inf")},
                "reasons": ["é \"quoted\"\nnext"]}]
    writer = ResultsWriter(tmp_path / "results.jsonl")
    writer(records[0])
    writer.close()
    text = (tmp_path / "results.jsonl").read_text()
    assert text == resume.render_results(records) == resume.render_results(read_results(tmp_path / "results.jsonl"))


def test_missing_results_file_means_nothing_done(tmp_path):
    assert resume.prior_results(tmp_path, PLAN) == []


def test_run_plan_saved_and_loaded(tmp_path):
    runplan.save(PLAN, tmp_path)
    assert runplan.load(tmp_path) == PLAN
    assert not [p for p in tmp_path.iterdir() if p.name != "run.json"]  # no temporary left behind
