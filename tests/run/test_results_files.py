"""results.jsonl and report files: atomic writes, torn last lines, clean appends after a resume."""

from __future__ import annotations

import json
import os

import pytest

from xentcheck.core.cases import default_suite
from xentcheck.core.records import Result
from xentcheck.reports.files import ResultsWriter, read_results, write_atomic
from xentcheck.run import plan as runplan
from xentcheck.run import resume

CASES = default_suite(["float32"])[:3]
PLAN = runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=CASES)


def rec(case, **fields) -> dict:
    """A record with every key the results schema requires, as the runner writes them."""
    return {**case.as_dict(), "seed": 0, "backend": "numpy", "impl": "analytic", "mode": "eager", "device": "cpu",
            "verdict": "pass", "reasons": [], **fields}


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
    good = json.dumps(rec(CASES[0])) + "\n"
    path.write_text(good + '{"case_id": "sca')
    assert read_results(path) == [Result.from_dict(json.loads(good))]
    path.write_text('{"case_id": "sca\n' + good)
    with pytest.raises(ValueError, match="results.jsonl:1: not a JSON line"):
        read_results(path)


def test_a_torn_tail_is_dropped_even_mid_character_and_a_whole_unterminated_record_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    first, second = rec(CASES[0], reasons=["é"]), rec(CASES[1])
    line = json.dumps(first, ensure_ascii=False).encode()
    cut = line.index("é".encode()) + 1  # inside the two bytes of é: the tail is not UTF-8
    path.write_bytes(line + b"\n" + line[:cut])
    assert read_results(path) == [Result.from_dict(first)]
    path.write_text(json.dumps(first) + "\n" + json.dumps(second))  # killed before the newline only
    assert read_results(path) == [Result.from_dict(first), Result.from_dict(second)]
    path.write_text("")
    assert read_results(path) == []  # killed before the first result


@pytest.mark.parametrize("lines, message", [
    ([b"{torn", b""], ':2: not a JSON line (column 2: Expecting property name'),  # a newline: not a kill
    ([b'{"case_id": "\xff"}', b""], ":2: not UTF-8 text (byte 0xff at column 14)"),
    ([b"[1, 2]", b""], ":2: not a result record (a JSON array, not an object)"),
    ([b"", b"null"], ":3: not a result record (a JSON null, not an object)"),  # JSON at the end: not torn
    ([b'{"case_id": "x", "backend": "numpy"}', b""], ":2: not a result record (no 'family', 'dtype',"),
])
def test_a_broken_line_names_the_file_the_line_and_the_fault(tmp_path, lines, message):
    path = tmp_path / "results.jsonl"
    good = json.dumps(rec(CASES[0])).encode()
    path.write_bytes(b"\n".join([good, *lines]))  # the line numbers count the good line 1
    with pytest.raises(ValueError) as exc:
        read_results(path)
    assert str(exc.value).startswith(f"{path}{message}")


def test_resume_rewrites_without_the_torn_line_and_appends_cleanly(tmp_path):
    records = [Result.from_dict(rec(c)) for c in CASES]
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
    records = [Result.from_dict(rec(CASES[0], backend="x<y>", loss={"abs_err": 1e-300, "rel_err": float("inf")},
                                    reasons=["é \"quoted\"\nnext"]))]
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
