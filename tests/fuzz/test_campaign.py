"""`xentcheck fuzz` end to end, on NumPy and toy backends built to break one thing."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.cases import Case
from xentcheck.fuzz.campaign import parse_duration

TOYS = ROOT / "tests" / "helpers" / "toy_backends"
TAIL = ["--backends", "numpy", "--backend-file", str(TOYS / "tail_drop.py"), "--dtypes", "float32",
        "--no-progress"]


def _cases(out):
    """Every case id the campaign ran, in order (each batch's run.json)."""
    return [i for b in sorted((out / "batches").iterdir()) for i in json.loads((b / "run.json").read_text())["cases"]]


def test_a_campaign_finds_the_broken_kind_shrinks_it_and_the_seed_fixes_the_cases(tmp_path):
    out = tmp_path / "a"
    res = run_here("fuzz", *TAIL, "--cases", "12", "--batch", "5", "--seed", "4", "--out", str(out))
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] == "cases" and report["cases_drawn"] == 12 and report["batches"] == 3
    kinds = report["kinds"]
    assert kinds and {k["backend"] for k in kinds} == {"tail-drop"}  # NumPy itself is right
    grad = [k for k in kinds if k["reason"] == "gradient: out of tolerance"]
    assert len(grad) == 1
    kind = grad[0]
    # found on odd K only, every case of the kind counted once
    assert kind["n_cases"] == len(set(kind["cases"])) >= 2
    assert all(Case.from_id(c).k % 2 == 1 for c in kind["cases"])
    assert Case.from_id(kind["smallest"]["case_id"]).rows * Case.from_id(kind["smallest"]["case_id"]).k == \
        min(Case.from_id(c).rows * Case.from_id(c).k for c in kind["cases"])
    # the smallest case's repro, and a shrunk one: still odd K, and small
    assert (out / kind["repro"]).is_file()
    shrunk = out / kind["shrunk"]["script"]
    data = np.load(shrunk.with_suffix(".npz"))
    k = data["logits"].shape[-1]
    assert k % 2 == 1 and k < Case.from_id(kind["smallest"]["case_id"]).k or k == 3
    md = (out / "report.md").read_text()
    assert "tail-drop" in md and kind["smallest"]["case_id"] in md and kind["shrunk"]["script"] in md
    # the same seed and --cases: the same cases (in batches of another size), the same kinds
    again = tmp_path / "b"
    res2 = run_here("fuzz", *TAIL, "--cases", "12", "--batch", "12", "--seed", "4", "--out", str(again))
    assert res2.returncode == 1, res2.stderr
    assert _cases(again) == _cases(out) and len(_cases(out)) >= 10
    assert [k["key"] for k in json.loads((again / "report.json").read_text())["kinds"]] == [k["key"] for k in kinds]
    other = tmp_path / "c"
    run_here("fuzz", *TAIL, "--cases", "12", "--seed", "5", "--out", str(other))
    assert _cases(other) != _cases(out)


def test_known_differences_are_not_findings(tmp_path):
    known = tmp_path / "known.toml"
    known.write_text('[[difference]]\nid = "tail"\nbackend = "tail-drop"\nreason = "the toy drops the tail"\n'
                     'link = "https://example.org/tail"\n')
    out = tmp_path / "k"
    res = run_here("fuzz", *TAIL, "--cases", "8", "--seed", "4", "--known", str(known), "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads((out / "report.json").read_text())["kinds"] == []
    verdicts = [json.loads(line)["verdict"] for line in (out / "batches" / "0000" / "results.jsonl").open()]
    assert "known" in verdicts  # the toy's results were judged, and marked known


def test_ctrl_c_leaves_a_report_exits_130_and_resume_continues(tmp_path):
    out = tmp_path / "i"
    env = {**os.environ, "XENTCHECK_TEST_DELAY": "0.4"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "xentcheck", "fuzz", "--backend-file", str(TOYS / "slow.py"),
                             "--backends", "numpy", "--dtypes", "float32", "--budget", "10m", "--batch", "8",
                             "--out", str(out), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    results = out / "batches" / "0000" / "results.jsonl"
    deadline = time.monotonic() + 120
    while not (results.exists() and results.read_bytes().count(b"\n") >= 4):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] == "interrupted"
    assert "interrupted (Ctrl-C)" in (out / "report.md").read_text()
    state = json.loads((out / "campaign.json").read_text())
    assert state["batches"][0]["finished"] is False
    kept = results.read_bytes().count(b"\n")
    # the slow plugin refuses single-row cases: an error kind, found in the finished part or on resume
    res = run_cli("fuzz", "--resume", str(out), "--cases", "16", "--no-progress", env={"XENTCHECK_TEST_DELAY": "0"},
                  timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    state = json.loads((out / "campaign.json").read_text())
    assert [b["finished"] for b in state["batches"]] == [True, True] and state["stopped"] == "cases"
    assert results.read_bytes().count(b"\n") == 2 * 8 >= kept  # the batch finished, nothing run twice
    kinds = json.loads((out / "report.json").read_text())["kinds"]
    assert [k["reason"] for k in kinds if k["backend"] == "slow"] == ["ValueError: slow plugin refuses single-row case <case>"]


def test_the_budget_stops_a_batch_part_way(tmp_path):
    out = tmp_path / "b"
    started = time.monotonic()
    res = run_cli("fuzz", "--backend-file", str(TOYS / "slow.py"), "--backends", "numpy", "--dtypes", "float32",
                  "--budget", "4s", "--out", str(out), "--no-progress", env={"XENTCHECK_TEST_DELAY": "1.0"}, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] == "budget" and 4 <= report["elapsed_s"] < 30 and time.monotonic() - started < 60
    state = json.loads((out / "campaign.json").read_text())
    assert state["batches"][-1]["finished"] is False  # 16 cases x 1 s each (a few linear-CE ones skipped) do not fit in 4 s
    assert "the time budget was spent" in (out / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    ([], "give --budget DURATION, --cases N, or both"),
    (["--budget", "ten minutes"], "is not a duration"),
    (["--budget", "0s"], "more than 0 seconds"),
    (["--resume", "/nonexistent-campaign", "--seed", "3"], "--seed cannot be combined"),
    (["--resume", "/nonexistent-campaign", "--budget", "1m"], "no campaign.json"),
    (["--cases", "3", "--backends", "nosuch"], "unknown backend"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    res = run_cli("fuzz", *args, "--no-progress", timeout=60)
    assert res.returncode == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_a_new_campaign_refuses_a_folder_that_holds_one(tmp_path):
    (tmp_path / "campaign.json").write_text("{}")
    res = run_cli("fuzz", "--cases", "1", "--backends", "numpy", "--out", str(tmp_path), "--no-progress", timeout=60)
    assert res.returncode == 2 and "already holds a fuzz campaign: continue it with --resume" in res.stderr
    assert res.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == [tmp_path / "campaign.json"], res.stderr


def test_durations():
    assert [parse_duration(t) for t in ("10m", "90s", "1h30m", "45", "0.5m")] == [600, 90, 5400, 45, 30]


def test_the_campaign_process_loads_no_framework():
    """Frameworks load in the workers and the shrinking child only."""
    code = ("import sys, xentcheck.fuzz.command, xentcheck.fuzz.campaign, xentcheck.fuzz.report, "
            "xentcheck.fuzz.shrinking; from xentcheck.fuzz.draw import draw_cases; draw_cases(0, 0, 50, ['float32']); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'optax', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_drawn_grpo_and_linear_distillation_cases_run(tmp_path):
    """Seed 34's first four float32 cases hold a GRPO and a linear distillation case (found by
    searching seeds): NumPy's analytic GRPO, its analytic linear distillation and the careful
    linear distillation toy pass them."""
    out = tmp_path / "k"
    res = run_here("fuzz", "--backends", "numpy", "--backend-file", str(TOYS / "lindistill_toys.py::CarefulLinDistill"),
                   "--dtypes", "float32", "--cases", "4", "--seed", "34", "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    ran = [json.loads(line) for line in (out / "batches" / "0000" / "results.jsonl").read_text().splitlines()]
    by = {(Case.from_id(r["case_id"]).kind, r["impl"]): r for r in ran if r["verdict"] != "skipped"}
    assert by["grpo", "grpo_analytic"]["verdict"] == "pass" and not by["grpo", "grpo_analytic"]["grad"]["n_exceed"]
    for impl in ("toy_lindistill", "lindistill_analytic"):
        assert by["lindistill", impl]["verdict"] == "pass" and not by["lindistill", impl]["dw"]["n_exceed"]


@pytest.mark.parametrize("stored", [None, 1, 3])
def test_resume_refuses_a_campaign_of_another_draw_version(tmp_path, stored):
    """A campaign records its draw version; one without it was drawn by version 1. Resuming it
    under another draw would mix two draws' cases: refused, one line, exit 2, nothing run."""
    from xentcheck.fuzz.draw import DRAW_VERSION

    out = tmp_path / "v"
    res = run_here("fuzz", "--backends", "numpy", "--dtypes", "float32", "--cases", "1", "--seed", "2",
                   "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    state = json.loads((out / "campaign.json").read_text())
    assert state["draw_version"] == DRAW_VERSION == 2
    if stored is None:
        del state["draw_version"]
    else:
        state["draw_version"] = stored
    (out / "campaign.json").write_text(json.dumps(state))
    res = run_cli("fuzz", "--resume", str(out), "--cases", "3", "--no-progress", timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"drawn with draw version {stored or 1}, this xentcheck draws version 2" in res.stderr
    assert json.loads((out / "campaign.json").read_text())["next_index"] == 1
