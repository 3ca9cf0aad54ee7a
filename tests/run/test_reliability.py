"""Reliability with real processes: workers that segfault, abort, get killed, exit or hang; runs
interrupted by Ctrl-C or SIGKILL and resumed; byte-identical reruns; broken plugins; markup in
plugin-supplied strings. Only NumPy and the small plugins in tests/helpers/toy_backends run here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.cases import default_suite

PLUGINS = ROOT / "tests" / "helpers" / "toy_backends"
IDS = [c.id for c in default_suite(["float32"])[:10]]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def by_key(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["case_id"], r["backend"]): r for r in records(out)}


def without_timing(out: Path) -> bytes:
    """results.jsonl's bytes with the timing fields cut out (and nothing else touched)."""
    return re.sub(rb', "timing": \{[^{}]*\}', b"", (out / "results.jsonl").read_bytes())


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "xentcheck", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)


def wait_for_lines(proc: subprocess.Popen, path: Path, n: int, timeout: float = 60) -> None:
    """Poll until results.jsonl holds n complete lines (the run is then part way through)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, f"run ended early: {proc.communicate()}"
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"results.jsonl never reached {n} lines")


# --- 1. isolation: a crashing or hanging backend costs one case, never the run ------------

FAULTS = {IDS[1]: "segfault", IDS[2]: "hang", IDS[3]: "abort", IDS[4]: "sigkill", IDS[5]: "exit"}


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faulty")
    proc = run_here("run", "--backends", "numpy", "--backend-file", str(PLUGINS / "faulty.py"), "--dtypes", "float32",
                    "--cases", "7", "--case-timeout", "3", "--out", str(out), "--no-progress",
                    env={"XENTCHECK_TEST_FAULTS": json.dumps(FAULTS)})
    return proc, out


@pytest.mark.parametrize("fault, exit_status, text", [
    ("segfault", {"signal": "SIGSEGV"}, "killed by signal SIGSEGV"),
    ("abort", {"signal": "SIGABRT"}, "killed by signal SIGABRT"),
    ("sigkill", {"signal": "SIGKILL"}, "killed by signal SIGKILL"),
    ("exit", {"code": 3}, "exited with status 3"),
])
def test_dying_worker_is_crashed_with_signal_or_code(faulty_run, fault, exit_status, text):
    _, out = faulty_run
    case_id = next(c for c, f in FAULTS.items() if f == fault)
    r = by_key(out)[(case_id, "faulty")]
    assert r["verdict"] == "crashed"
    assert r["exit"] == exit_status
    assert text in r["reasons"][0]


def test_hung_case_times_out_and_the_run_goes_on(faulty_run):
    _, out = faulty_run
    r = by_key(out)[(IDS[2], "faulty")]
    assert r["verdict"] == "timeout"
    assert "no answer within 3 s" in r["reasons"][0]


def test_fresh_worker_takes_over_after_each_fault(faulty_run):
    proc, out = faulty_run
    got = by_key(out)
    for case_id in IDS[:7]:
        assert got[(case_id, "numpy")]["verdict"] == "pass"
        if case_id not in FAULTS:  # before, between and after the faults
            assert got[(case_id, "faulty")]["verdict"] == "pass", case_id
    assert proc.returncode == 1
    assert [(r["case_id"], r["backend"]) for r in records(out)] == \
        [(c, b) for c in IDS[:7] for b in ("numpy", "faulty")]


def test_reports_of_a_faulty_run_are_complete(faulty_run):
    _, out = faulty_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"] == 14 and not summary["interrupted"]
    assert {k: v for k, v in summary["counts"].items() if v} == {"pass": 9, "crashed": 4, "timeout": 1}
    report = (out / "report.md").read_text()
    assert "5 results out of tolerance or broken, of " in report
    assert "killed by signal SIGSEGV" in report
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 14


# --- 2. nothing lost: Ctrl-C, SIGKILL and --resume ---------------------------------------

SLOW_ARGS = ("--backends", "numpy", "--backend-file", str(PLUGINS / "slow.py"), "--dtypes", "float32",
             "--cases", "10", "--seed", "3", "--no-progress")
TOTAL = 20  # 10 cases x 2 backends
NO_PAUSE = {"XENTCHECK_TEST_DELAY": "0"}  # the pause lets a run be interrupted part way; results are the same without


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = run_here("run", *SLOW_ARGS, "--out", str(out), env=NO_PAUSE)
    assert proc.returncode == 1, proc.stderr  # the slow plugin's single-row cases are errors
    assert len(records(out)) == TOTAL
    return out


def assert_same_run(out: Path, reference: Path) -> None:
    assert without_timing(out) == without_timing(reference)
    for name in ("summary.json", "report.md"):
        assert (out / name).read_text() == (reference / name).read_text(), name


def test_sigkill_then_resume_equals_uninterrupted_run(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = start_cli("run", *SLOW_ARGS, "--out", str(out))
    wait_for_lines(proc, out / "results.jsonl", 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = len(records(out))
    assert 6 <= done < TOTAL
    assert not (out / "summary.json").exists()  # no chance to write reports
    with open(out / "results.jsonl", "a") as f:  # a write torn by the kill
        f.write('{"case_id": "scale1e-3_flo')

    resumed = run_here("run", "--resume", str(out), "--no-progress", env=NO_PAUSE)
    assert resumed.returncode == 1, resumed.stderr
    assert f"{TOTAL} results" in resumed.stdout
    assert_same_run(out, uninterrupted)


def test_ctrl_c_writes_reports_exits_130_and_resumes(uninterrupted, tmp_path):
    out = tmp_path / "interrupted"
    proc = start_cli("run", *SLOW_ARGS, "--out", str(out))
    wait_for_lines(proc, out / "results.jsonl", 6)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    got = records(out)
    assert 6 <= len(got) < TOTAL
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["results"] == len(got) == sum(summary["counts"].values())
    assert len((out / "results.csv").read_text().splitlines()) == 1 + len(got)
    assert "run interrupted: partial results" in (out / "report.md").read_text()

    resumed = run_here("run", "--resume", str(out), "--no-progress", env=NO_PAUSE)
    assert resumed.returncode == 1, resumed.stderr
    assert_same_run(out, uninterrupted)


def test_resuming_a_finished_run_changes_nothing(uninterrupted, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    for name in ("run.json", "results.jsonl"):
        (out / name).write_bytes((uninterrupted / name).read_bytes())
    # a case run again would now hang past the timeout and show up as `timeout`
    resumed = run_here("run", "--resume", str(out), "--no-progress", "--case-timeout", "5",
                       env={"XENTCHECK_TEST_DELAY": "100"})
    assert resumed.returncode == 1, resumed.stderr
    assert (out / "results.jsonl").read_bytes() == (uninterrupted / "results.jsonl").read_bytes()
    assert (out / "report.md").read_text() == (uninterrupted / "report.md").read_text()
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, uninterrupted))
    assert summary["config"].pop("case_timeout") == 5.0  # the override is on record
    expected["config"].pop("case_timeout")
    assert summary == expected


# --- 4. determinism -----------------------------------------------------------------------

def test_same_command_gives_byte_identical_results(uninterrupted, tmp_path):
    out = tmp_path / "rerun"
    # a fresh `python -m xentcheck` process writes the bytes the in-process run wrote
    proc = run_cli("run", *SLOW_ARGS, "--out", str(out), env=NO_PAUSE, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert b'"traceback"' in without_timing(out)  # error records, with their tracebacks, are covered
    assert without_timing(out) == without_timing(uninterrupted)


# --- 3 and 5. broken plugins, and markup in what plugins say ------------------------------

BROKEN = ("broken_syntax", "broken_import", "broken_segfault_import", "broken_nocompute", "broken_shape",
          "broken_dtype", "broken_string", "markup")


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("broken")
    files = [a for name in BROKEN for a in ("--backend-file", str(PLUGINS / f"{name}.py"))]
    # with the figures: a plugin's name and messages hold markup
    proc = run_here("run", "--backends", "numpy", *files, "--dtypes", "float32", "--cases", "2", "--out", str(out),
                    "--no-progress", figures=True)
    return proc, out


def _spec(name: str) -> str:
    return "file:" + str(PLUGINS / f"{name}.py")


@pytest.mark.parametrize("backend, verdict, reason", [
    (_spec("broken_syntax"), "error", "failed to import: SyntaxError"),
    (_spec("broken_import"), "error", "failed to import: RuntimeError: cannot load libfancykernel.so"),
    (_spec("broken_segfault_import"), "error", "backend worker killed by signal SIGSEGV while starting"),
    ("broken-nocompute", "error", "NoCompute does not implement compute()"),
    ("broken-shape", "fail", "gradient shape [32000, 8], expected [8, 32000]"),
    ("broken-dtype", "widened", "loss computed in float64, wider than the requested float32"),
    ("broken-string", "error", "backend returned loss of type str"),
])
def test_broken_plugin_is_reported_with_its_reason(broken_run, backend, verdict, reason):
    _, out = broken_run
    r = by_key(out)[(IDS[0], backend)]
    assert r["verdict"] == verdict
    assert reason in " ".join(r["reasons"])


def test_other_backends_run_beside_broken_plugins(broken_run):
    proc, out = broken_run
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [by_key(out)[(c, "numpy")]["verdict"] for c in IDS[:2]] == ["pass", "pass"]
    assert len(records(out)) == 2 * (1 + len(BROKEN))
    status = {b.get("name"): b for b in json.loads((out / "summary.json").read_text())["backends"]}
    assert status[_spec("broken_syntax")]["status"] == "broken"
    assert "SyntaxError" in status[_spec("broken_syntax")]["reason"]
    assert status["broken-nocompute"]["status"] == "broken"
    assert "SIGSEGV" in status[_spec("broken_segfault_import")]["reason"]
    assert status["numpy"]["status"] == "ok"


def test_markup_from_a_plugin_is_escaped_in_the_markdown_report(broken_run):
    sys.path.insert(0, str(PLUGINS))
    try:
        from markup import MESSAGE, NAME
    finally:
        sys.path.remove(str(PLUGINS))
    _, out = broken_run
    r = by_key(out)[(IDS[0], NAME)]  # results.jsonl keeps the data as given
    assert r["verdict"] == "error" and MESSAGE in r["reasons"][0]

    report = (out / "report.md").read_text()
    for raw in ("<script>", "</script>", "<img", "<b>", "**bold**", "`code`", "[x](javascript"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), report), raw
    assert r'\<script\>alert("name")\</script\>\*em\*\|\[x\](javascript:alert(1))' in report
    assert r"\<img src=x onerror=alert(1)\> \*\*bold\*\* \`code\` \| cell &amp; \<b\>tag\</b\> second line" in report
    # every table row keeps its column count: no pipe from a plugin opens a cell
    for line in report.splitlines():
        if line.startswith("| ") and "alert" in line:
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) in (4, 5, 6, 8), line  # pass rates (one dtype), backends, findings, kinds


# --- a backend with several implementations x modes: one record per variant, resumable ------

VARIANT_ARGS = ("--backend-file", str(PLUGINS / "slow_variants.py"), "--dtypes", "float32", "--cases", "8",
                "--no-progress")


def test_resume_of_a_multi_variant_backend_reruns_a_slot_cut_short(tmp_path):
    reference = tmp_path / "whole"
    assert run_here("run", *VARIANT_ARGS, "--out", str(reference), env=NO_PAUSE).returncode == 0
    assert [(r["impl"], r["mode"]) for r in records(reference)[:3]] == [("first", "eager"), ("second", "eager"),
                                                                         ("third", "jit")]
    assert len(records(reference)) == 24

    out = tmp_path / "killed"
    proc = start_cli("run", *VARIANT_ARGS, "--out", str(out))
    wait_for_lines(proc, out / "results.jsonl", 9)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # keep two of a slot's three records, as if the kill had come between them, plus a torn line
    (out / "results.jsonl").write_text("".join(lines[:8]) + '{"case_id": "sca')
    resumed = run_here("run", "--resume", str(out), "--no-progress", env=NO_PAUSE)
    assert resumed.returncode == 0, resumed.stderr
    assert without_timing(out) == without_timing(reference)
