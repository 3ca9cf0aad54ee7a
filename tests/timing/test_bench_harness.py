"""benchmarks/bench_harness.py's overhead figure: no ratio from a side that crashed, made no call,
had calls raise, or made other calls than the other side; the plain loop's calls are the run's.
No time is asserted (a benchmark, not a timed test)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

_spec = importlib.util.spec_from_file_location("bench_harness", ROOT / "benchmarks" / "bench_harness.py")
assert _spec is not None and _spec.loader is not None
bh = importlib.util.module_from_spec(_spec)
sys.modules["bench_harness"] = bh  # its dataclass looks its module up there
_spec.loader.exec_module(bh)

ZERO_CALLS = 'import json; print(json.dumps({"calls": 0, "raised": 0, "disagree": 0, "cases": 0, "seconds": {}}))\n'
CRASHES = "raise AttributeError(\"'Inputs' object has no attribute 'hidden'\")\n"


def _side(name="harness", calls=748, seconds=61.0, **kw):
    return bh.Side(name, seconds, 1.8, calls, **kw)


def test_two_sides_that_made_the_same_calls_give_a_ratio():
    assert bh.refusal(_side(), _side("plain loop", seconds=70.0)) is None


@pytest.mark.parametrize("harness, plain, message", [
    (_side(), _side("plain loop", calls=0, seconds=6.8),
     "no ratio: the plain loop made no call; harness 748 calls in 61.0 s, plain loop 0 calls in 6.8 s"),
    (_side(), _side("plain loop", calls=0, seconds=6.8, crash="process 1 of 2: exit status 1: AttributeError: hidden"),
     "no ratio: the plain loop crashed (process 1 of 2: exit status 1: AttributeError: hidden); harness 748 calls"),
    (_side(calls=0, seconds=1.2, crash="exit status 2: xentcheck: error: unknown backend 'nosuch'"), _side("plain loop"),
     "no ratio: the harness crashed (exit status 2: xentcheck: error: unknown backend 'nosuch'); harness 0 calls in 1.2 s"),
    (_side(), _side("plain loop", raised=96, first_error="torch linear_cross_entropy on x: AttributeError: hidden"),
     "no ratio: 96 of the plain loop's 748 calls raised (first: torch linear_cross_entropy on x: AttributeError: hidden)"),
    (_side(), _side("plain loop", calls=640),
     "no ratio: the two sides did not make the same calls; harness 748 calls in 61.0 s, plain loop 640 calls"),
])
def test_no_ratio_without_the_work_on_both_sides(harness, plain, message):
    why = bh.refusal(harness, plain)
    assert why is not None and why.startswith(message) and "\n" not in why


def test_plain_side_reads_each_process_and_names_a_crash(tmp_path):
    zero, crash = tmp_path / "zero.py", tmp_path / "crash.py"
    zero.write_text(ZERO_CALLS)
    crash.write_text(CRASHES)
    side = bh.run_plain(None, "numpy", zero, 2)
    assert side.calls == 0 and side.crash == "" and side.detail["processes"] == 2
    side = bh.run_plain(None, "numpy", crash, 2)
    assert side.crash == "process 1 of 2: exit status 1: AttributeError: 'Inputs' object has no attribute 'hidden'"


def test_the_plain_loop_makes_the_runs_calls_on_every_case_kind(tmp_path):
    """The first linear-CE, LLM-option and unnormalised-label cases of the default suite, through
    numpy (one API per kind): the loop's calls are the run's computed results, and its outputs
    agree with the reference where the run's pass."""
    from xentcheck.run.plan import parse_dtypes, select_cases

    cases = select_cases(parse_dtypes("float64"), None, ())
    picked = [next(c for c in cases if pred(c)) for pred in
              (lambda c: not c.llm and not c.linear and c.labels == "index", lambda c: c.linear and "b" in c.option_set,
               lambda c: c.llm, lambda c: c.labels == "unnorm", lambda c: c.labels == "soft" and not c.llm)]
    out = tmp_path / "run"
    ids = [x for c in picked for x in ("--case", c.id)]
    res = run_cli("run", "--backends", "numpy", *ids, "--out", str(out), "--no-progress")
    assert res.returncode in (0, 1), res.stderr
    verdicts = [json.loads(line)["verdict"] for line in (out / "results.jsonl").read_text().splitlines()]
    loop = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plain_loop.py"), "--backends", "numpy", *ids],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert loop.returncode == 0, loop.stderr
    record = json.loads(loop.stdout.strip().splitlines()[-1])
    assert record["calls"] == sum(v != "skipped" for v in verdicts) == len(picked)
    assert record["raised"] == 0 and record["missing"] == [] and record["cases"] == len(picked)
    assert record["disagree"] == 0 and set(verdicts) == {"pass"}


def test_the_benchmark_exits_1_and_says_why_without_a_ratio(tmp_path):
    """End to end, cheaply: one case through numpy against a baseline that made no call."""
    zero = tmp_path / "zero.py"
    zero.write_text(ZERO_CALLS)
    record = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_harness.py"), "--only", "harness",
                          "--backends", "numpy", "--cases", "1", "--rounds", "1", "--plain-loop", str(zero),
                          "--json", str(record)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "ratio" not in res.stdout.split("round 1:")[1].split("\n")[0].replace("no ratio", "")
    why = "no ratio: the plain loop made no call; harness 1 calls in"
    assert f"FAIL  harness wall time / plain loop: {why}" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"bench_harness: {why}")
    saved = json.loads(record.read_text())
    (figure,) = saved["figures"]
    assert figure["value"] is None and figure["pass"] is False and figure["refused"].startswith(why)
    assert saved["harness_rounds"][0]["plain_loop"]["calls"] == 0 and saved["uptime"]["start"]
