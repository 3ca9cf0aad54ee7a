"""Known differences: matched results are `known` and do not fail the run; unmatched entries are stale."""

import json

import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.evaluate import matches
from xentcheck.core.records import Result
from xentcheck.regress import known

WRONG = str(ROOT / "tests/helpers/toy_backends/wrong_gradient.py")
KNOWN = '''
[[difference]]
id = "forgets-mean"
backend = "forgets-*"
reduction = "mean"
verdict = "fail"
reason = "the fixture forgets to divide the gradient by N"
link = "https://example.org/forgets-mean"

[[difference]]
id = "never-matches"
backend = "no-such-backend"
reason = "a stale entry"
link = "https://example.org/stale"
'''


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_known_differences_pass_the_run_and_stale_entries_are_reported(tmp_path):
    kf = tmp_path / "known.toml"
    kf.write_text(KNOWN)
    plain = run_here("run", "--backend-file", WRONG, "--dtypes", "float32", "--cases", "11",
                    "--out", str(tmp_path / "plain"), "--no-progress")
    assert plain.returncode == 1
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", WRONG, "--dtypes", "float32", "--cases", "11", "--out", str(out),
                  "--known", str(kf), "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "known difference 'never-matches' matched no result (stale)" in res.stderr
    recs = _records(out)
    failed_before = {r["case_id"] for r in _records(tmp_path / "plain") if r["verdict"] == "fail"}
    assert failed_before and {r["case_id"] for r in recs if r["verdict"] == "known"} == failed_before
    k = next(r for r in recs if r["verdict"] == "known")
    assert k["original_verdict"] == "fail" and k["known"]["id"] == "forgets-mean"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_status"] == 0 and summary["counts"]["known"] == len(failed_before)
    assert summary["known_differences"]["stale"] == ["never-matches"]
    assert summary["known_differences"]["matched"]["forgets-mean"] == len(failed_before)
    report = (out / "report.md").read_text()
    assert "## Known differences" in report and "Stale entries" in report and "never-matches" in report
    assert not (out / "repro").exists()  # known differences are not failures: no repro written


def test_match_fields_and_lists():
    rec = {"case_id": "masked_float32_64x100_onehot_sum", "family": "masked", "dtype": "float32",
           "labels": "onehot", "reduction": "sum", "backend": "torch", "impl": "F.cross_entropy",
           "mode": "eager", "verdict": "nonfinite"}
    entry = {"id": "x", "reason": "r", "link": "l", "backend": ["tensorflow", "torch"], "labels": ["onehot", "soft"]}
    assert matches(entry, rec)
    assert not matches({**entry, "dtype": "float16"}, rec)
    assert matches({**entry, "case": "masked_*_sum"}, rec)
    result = Result.from_dict(rec)
    out, info = known.apply([result, Result.from_dict({**rec, "verdict": "pass"})], [entry])
    assert [r.verdict for r in out] == ["known", "pass"] and info["stale"] == []
    assert out[0].original_verdict == "nonfinite" and out[0].known == {"id": "x", "reason": "r", "link": "l"}
    assert result.verdict == "nonfinite"  # the caller's record is left as it was
    assert known.unapply(out[0]) == result  # re-applying (merge) starts from the original verdict


@pytest.mark.parametrize("text, message", [
    ("[[difference]]\nid='a'\nbackend='x'\n", "lacks reason, link"),
    ("[[difference]]\nid='a'\nreason='r'\nlink='l'\n", "matches everything"),
    ("[[difference]]\nid='a'\nreason='r'\nlink='l'\nbakend='x'\n", "unknown field(s) bakend"),
    ("not toml [", "not valid TOML"),
])
def test_malformed_files_are_usage_errors(tmp_path, text, message):
    kf = tmp_path / "k.toml"
    kf.write_text(text)
    with pytest.raises(known.KnownFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        known.load(kf)
    res = run_cli("run", "--backends", "numpy", "--cases", "1", "--known", str(kf), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.startswith("xentcheck: error:") and message in res.stderr


def test_shipped_file_is_valid_and_documents_every_entry():
    entries = known.load(known.DEFAULT_FILE)
    assert len(entries) >= 5
    assert all(e["link"].startswith("https://") and len(e["reason"]) > 40 for e in entries)


@pytest.mark.slow
def test_full_default_run_with_the_shipped_file_exits_0(tmp_path):
    out = tmp_path / "o"
    res = run_cli("run", "--out", str(out), "--no-progress", "--known", str(known.DEFAULT_FILE))
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["known_differences"]["stale"] == [] and summary["counts"]["known"] == 34
    assert "stale" not in res.stderr
