"""A small real run writes every report; `report DIR` re-renders them from results.jsonl alone;
results.jsonl and summary.json follow their published schemas; Parquet holds the same rows."""

import json

import pytest

from xentcheck.reports.files import read_results
from xentcheck.reports.schemas import load
from xentcheck.reports.write_all import FILES

jsonschema = pytest.importorskip("jsonschema")

RERENDERED_SAME = ("summary.json", "report.md", "results.csv", "junit.xml", "tolerance.md", "tolerance.json",
                   "discrepancy.json")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.conftest import run_here

    out = tmp_path_factory.mktemp("run") / "out"
    done = run_here("run", "--backends", "numpy", "--cases", "8", "--out", str(out), "--no-progress",
                    "--tolerance", "model", figures=True)
    assert done.returncode == 0, done.stderr
    return out


def test_run_writes_every_report(run_dir):
    for name in ("results.jsonl", *FILES):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tolerances"]["preset"] == "model"  # --tolerance is an alias of --tolerances
    assert (run_dir / "report.html").read_text().count('<img src="data:image/png;base64,') >= 3  # the run's figures


def test_results_and_summary_follow_the_published_schemas(run_dir):
    for name, docs in (("results", [r.to_dict() for r in read_results(run_dir / "results.jsonl")]),
                       ("summary", [json.loads((run_dir / "summary.json").read_text())])):
        schema = load(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for doc in docs:
            errors = [e.message for e in validator.iter_errors(doc)]
            assert not errors, errors


def test_schema_rejects_a_malformed_record(run_dir):
    record = read_results(run_dir / "results.jsonl")[0].to_dict()
    validator = jsonschema.Draft202012Validator(load("results"))
    assert not list(validator.iter_errors(record))
    for broken in ({**record, "verdict": "maybe"}, {k: v for k, v in record.items() if k != "case_id"},
                   {**record, "loss": {**record["loss"], "n_exceed": -1}}):
        assert list(validator.iter_errors(broken))


def test_report_command_rerenders_identical_reports_without_running(run_dir):
    from tests.conftest import run_here

    before = {n: (run_dir / n).read_text() for n in RERENDERED_SAME}
    for n in FILES:
        (run_dir / n).unlink()
    (run_dir / "summary.json").write_text(before["summary.json"])  # the run's context lives there
    done = run_here("report", str(run_dir), figures=True)
    assert done.returncode == 0, done.stderr
    assert "reports rewritten" in done.stdout
    for n in RERENDERED_SAME:
        assert (run_dir / n).read_text() == before[n], n
    assert (run_dir / "report.html").stat().st_size > 10_000


def test_parquet_has_one_typed_row_per_result(run_dir):
    import pandas as pd

    df = pd.read_parquet(run_dir / "results.parquet")
    records = read_results(run_dir / "results.jsonl")
    assert len(df) == len(records)
    assert list(df["case_id"]) == [r.case_id for r in records]
    assert df["grad.ulp_err"].dtype.kind == "f" and df["n"].dtype.kind == "i"


def test_report_on_a_folder_without_results_is_a_usage_error(tmp_path):
    from tests.conftest import run_cli

    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2 and "no results.jsonl" in done.stderr
