"""Bad invocations end in one line `xentcheck: error: ...` on stderr and exit status 2, never a
traceback. Each is run in this process (xentcheck.cli.main, as `python -m xentcheck` calls it);
one of each command also as a real `python -m xentcheck` process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.cases import Case, default_suite
from xentcheck.run import plan as runplan

PLUGINS = ROOT / "tests" / "helpers" / "toy_backends"
CASES = default_suite(["float32"])[:2]


def resumable(tmp: Path, results: str | bytes | None = None, **changes) -> str:
    """A run folder as `xentcheck run` leaves it: run.json (with `changes`) and results.jsonl."""
    folder = tmp / "run"
    folder.mkdir()
    plan = runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=CASES)
    (folder / "run.json").write_text(json.dumps({**plan.to_json(), **changes}))
    if results is not None:
        (folder / "results.jsonl").write_bytes(results.encode() if isinstance(results, str) else results)
    return str(folder)


def result_line(case_id: str, backend: str = "numpy") -> str:
    """A record with every key the results schema requires, as the runner writes them."""
    case = Case.from_id(case_id)
    return json.dumps({**case.as_dict(), "seed": 0, "backend": backend, "impl": "analytic", "mode": "eager",
                       "device": "cpu", "verdict": "pass", "reasons": []}) + "\n"


def results_folder(tmp: Path, results: bytes, name: str = "broken") -> str:
    """A hand-written results folder: results.jsonl as given after one good line, and a summary.json."""
    folder = tmp / name
    folder.mkdir()
    (folder / "results.jsonl").write_bytes(result_line(CASES[0].id).encode() + results)
    (folder / "summary.json").write_text(json.dumps({"config": {"seed": 0}}))
    return str(folder)


def good_folder(tmp: Path) -> str:
    return results_folder(tmp, result_line(CASES[1].id).encode(), "good")


# results.jsonl faults (after one good line) and what the message says about line 2
BROKEN_RESULTS = [
    ("not-json", b"{torn\n", "results.jsonl:2: not a JSON line (column 2: Expecting property name"),
    ("not-utf8", b'{"case_id": "\xff"}\n', "results.jsonl:2: not UTF-8 text (byte 0xff at column 14)"),
    ("not-an-object", b"[1, 2]\n", "results.jsonl:2: not a result record (a JSON array, not an object)"),
    ("missing-keys", b'{"case_id": "x", "backend": "numpy"}\n', "results.jsonl:2: not a result record (no 'family',"),
]


def existing_file(tmp: Path) -> str:
    (tmp / "afile").write_text("x")
    return str(tmp / "afile")


# (id, arguments given a scratch folder, what the message must say)
BAD = [
    ("unknown-backend", lambda t: ["run", "--backends", "nosuch"], "unknown backend 'nosuch'"),
    ("empty-backends", lambda t: ["run", "--backends", ","], "--backends needs at least one name"),
    ("unknown-dtype", lambda t: ["run", "--dtypes", "float8"], "unknown dtype 'float8'"),
    ("negative-seed", lambda t: ["run", "--seed", "-1"], "'--seed'"),
    ("text-seed", lambda t: ["run", "--seed", "abc"], "'--seed'"),
    ("huge-seed", lambda t: ["run", "--seed", str(2**70)], "seed 1180591620717411303424 out of range"),
    ("zero-cases", lambda t: ["run", "--cases", "0"], "'--cases'"),
    ("cases-without-value", lambda t: ["run", "--cases"], "'--cases' requires an argument"),
    ("malformed-case-id", lambda t: ["run", "--case", "notacase"], "malformed case id 'notacase'"),
    ("case-extra-zero", lambda t: ["run", "--case", "scale1e+0_float32_2x5x0_index_mean"], "at most 3 extra dimensions, each 1"),
    ("case-empty-oor", lambda t: ["run", "--case", "scale1e+0_float32_0x5_index_mean_opt-oor"], "an empty batch has no label"),
    ("case-k-one", lambda t: ["run", "--case", "scale1e+0_float32_3x1_index_mean"], "shape 3x1 out of range"),
    ("case-k-too-big", lambda t: ["run", "--case", "scale1e+0_float32_3x9999999_index_mean"], "out of range"),
    ("case-too-many-elements", lambda t: ["run", "--case", "scale1e+0_float32_1048576x1048576_index_mean"],
     "too large"),
    ("case-unknown-family", lambda t: ["run", "--case", "wild_float32_3x5_index_mean"], "unknown case family"),
    ("case-filtered-out", lambda t: ["run", "--dtypes", "float16", "--case", "scale1e+0_float32_3x5_index_mean"],
     "no case matches"),
    ("rtol-not-a-number", lambda t: ["run", "--rtol", "abc"], "--rtol value 'abc' is not a number"),
    ("rtol-nan", lambda t: ["run", "--rtol", "nan"], "--rtol must be a finite number >= 0"),
    ("rtol-unknown-dtype", lambda t: ["run", "--rtol", "float99=1e-3"], "--rtol entry 'float99=1e-3'"),
    ("negative-atol", lambda t: ["run", "--atol", "-1"], "--atol must be a finite number >= 0"),
    ("missing-backend-file", lambda t: ["run", "--backend-file", str(t / "nope.py")], "backend file not found"),
    ("backend-file-is-a-folder", lambda t: ["run", "--backend-file", str(PLUGINS)], "is a directory"),
    ("backends-cmd-missing-file", lambda t: ["backends", "--backend-file", str(t / "nope.py")],
     "backend file not found"),
    ("out-is-a-file", lambda t: ["run", "--out", existing_file(t)], "is a file"),
    ("out-below-a-file", lambda t: ["run", "--out", existing_file(t) + "/sub"], "cannot write to output folder"),
    ("case-timeout-zero", lambda t: ["run", "--case-timeout", "0"], "'--case-timeout'"),
    ("case-timeout-nan", lambda t: ["run", "--case-timeout", "nan"], "--case-timeout must be"),
    ("worker-memory-unit", lambda t: ["run", "--worker-memory", "2X"],
     "--worker-memory takes a size such as 2G, 512M or 1.5GiB (binary units), auto or none, got '2X'"),
    ("worker-memory-too-small", lambda t: ["run", "--worker-memory", "512"], "--worker-memory must be at least 64 MiB"),
    ("resume-worker-memory", lambda t: ["run", "--resume", resumable(t), "--worker-memory", "lots"],
     "--worker-memory takes a size"),
    ("resume-run-config-bad-worker-memory", lambda t: ["run", "--resume", resumable(t, worker_memory="2G")],
     "field 'worker_memory' must be null or a number of bytes"),
    ("fuzz-worker-memory", lambda t: ["fuzz", "--cases", "1", "--worker-memory", "-1G", "--out", str(t / "f")],
     "--worker-memory takes a size"),
    ("bench-worker-memory", lambda t: ["bench", "--worker-memory", "0", "--out", str(t / "b")],
     "--worker-memory must be at least 64 MiB"),
    ("unknown-device", lambda t: ["run", "--device", "tpu"], "'--device'"),
    ("unknown-tolerances", lambda t: ["run", "--tolerances", "foo"], "'--tolerances'"),
    ("unknown-subcommand", lambda t: ["bogus"], "No such command 'bogus'"),
    ("unknown-option", lambda t: ["run", "--bogus"], "No such option '--bogus'"),
    ("extra-argument", lambda t: ["run", "extra"], "unexpected extra argument"),
    ("no-command", lambda t: [], "missing command"),
    ("resume-missing-folder", lambda t: ["run", "--resume", str(t / "nothere")], "no such folder"),
    ("resume-without-run-config", lambda t: ["run", "--resume", str(t)], "no run.json"),
    ("resume-run-config-not-json", lambda t: ["run", "--resume", _with_run_json(t, "{not json")],
     "is not valid JSON"),
    ("resume-run-config-not-utf8", lambda t: ["run", "--resume", _with_run_json(t, b"\xff\xfe{}")], "cannot read"),
    ("resume-run-config-bad-seed", lambda t: ["run", "--resume", resumable(t, seed="3")],
     "field 'seed' must be an integer"),
    ("resume-run-config-unknown-dtype", lambda t: ["run", "--resume", resumable(t, dtypes=["float8"])],
     "unknown dtype 'float8'"),
    ("resume-plugin-gone", lambda t: ["run", "--resume", resumable(t, backends=[f"file:{t}/gone.py"])],
     "backend file not found"),
    ("resume-broken-middle-line", lambda t: ["run", "--resume", resumable(t, "{torn\n" + result_line(CASES[0].id))],
     "not a JSON line"),
    ("resume-result-of-another-run", lambda t: ["run", "--resume",
                                                resumable(t, result_line("scale1e+0_float64_3x5_index_mean"))],
     "which this run does not have"),
    ("resume-result-not-a-record", lambda t: ["run", "--resume", resumable(t, "[1, 2]\n")], "not a result record"),
    ("resume-results-is-a-folder", lambda t: ["run", "--resume", _with_results_folder(resumable(t))], "cannot read"),
    ("resume-with-seed", lambda t: ["run", "--resume", resumable(t), "--seed", "3"],
     "--seed cannot be combined with it"),
    ("resume-with-out-and-backends", lambda t: ["run", "--resume", resumable(t), "--out", "x", "--backends", "numpy"],
     "--backends, --out cannot be combined with it"),
    ("resume-empty", lambda t: ["run", "--resume", ""], "--resume needs the folder"),
    *[(f"report-results-{name}", lambda t, b=bad: ["report", results_folder(t, b)], message)
      for name, bad, message in BROKEN_RESULTS],
    *[(f"resume-results-{name}", lambda t, b=bad: ["run", "--resume", resumable(t, result_line(CASES[0].id).encode() + b)],
       message) for name, bad, message in BROKEN_RESULTS],
    ("compare-broken-new", lambda t: ["compare", good_folder(t), results_folder(t, b"[1, 2]\n")],
     "broken/results.jsonl:2: not a result record (a JSON array"),
    ("compare-broken-base", lambda t: ["compare", results_folder(t, b"{torn\n"), good_folder(t)],
     "broken/results.jsonl:2: not a JSON line"),
    ("compare-summary-not-json", lambda t: ["compare", good_folder(t), _with_summary(results_folder(t, b""), "{")],
     "broken/summary.json:1: not valid JSON"),
    ("merge-broken-shard", lambda t: ["merge", str(t / "merged"), good_folder(t), results_folder(t, b"[1, 2]\n")],
     "broken/results.jsonl:2: not a result record (a JSON array"),
    ("repro-broken-results", lambda t: ["repro", CASES[0].id, "--from", results_folder(t, b"[1, 2]\n")],
     "broken/results.jsonl:2: not a result record (a JSON array"),
    ("repro-summary-not-an-object", lambda t: ["repro", CASES[0].id, "--from", _with_summary(results_folder(t, b""), "[]")],
     "broken/summary.json: not a JSON object"),
]


def _with_run_json(tmp: Path, content: str | bytes) -> str:
    (tmp / "run.json").write_bytes(content.encode() if isinstance(content, str) else content)
    return str(tmp)


def _with_summary(folder: str, text: str) -> str:
    (Path(folder) / "summary.json").write_text(text)
    return folder


def _with_results_folder(folder: str) -> str:
    (Path(folder) / "results.jsonl").mkdir()
    return folder


# one of each command (and none), also run as a `python -m xentcheck` process
IN_A_PROCESS = ("unknown-backend", "backends-cmd-missing-file", "unknown-subcommand", "no-command", "resume-empty",
                "report-results-not-json", "compare-broken-new", "merge-broken-shard", "repro-broken-results")


@pytest.mark.parametrize("make_args, message, run", [
    *[(*b[1:], run_here) for b in BAD],
    *[(*b[1:], run_cli) for b in BAD if b[0] in IN_A_PROCESS],
], ids=[b[0] for b in BAD] + [f"{b[0]}-process" for b in BAD if b[0] in IN_A_PROCESS])
def test_bad_invocation_gives_one_line_and_status_2(tmp_path, make_args, message, run):
    args = make_args(tmp_path)
    proc = run(*args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("xentcheck: error: "), proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_process_sample_names_cases_of_the_list():
    assert set(IN_A_PROCESS) <= {b[0] for b in BAD}


@pytest.mark.parametrize("bad", [b[1] for b in BROKEN_RESULTS], ids=[b[0] for b in BROKEN_RESULTS])
def test_a_resume_refused_leaves_the_folder_as_it_was(tmp_path, bad):
    folder = Path(resumable(tmp_path, result_line(CASES[0].id).encode() + bad + result_line(CASES[1].id).encode()))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert run_here("run", "--resume", str(folder)).returncode == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
