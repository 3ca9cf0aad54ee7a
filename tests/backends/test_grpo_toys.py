"""Each GRPO toy kernel, broken one way, fails the default suite's GRPO cases, and the careful one
passes them: end to end, through the CLI."""

import json

from tests.conftest import ROOT, require, run_here
from xentcheck.problems.grpo.cases import grpo_cases

TOYS = ROOT / "tests/helpers/toy_backends/grpo_toys.py"
F32 = "scale1e+1_float32_6x100x8_grpo-clip0.2+hi0.28+kl0.04+t0.7_index_grpo"
F64 = "scale1e+0_float64_6x64x8_grpo-clip0.2+t0.7_index_bnpo"
# toy (its class, its backend name) -> {default case: the outputs it must break there (none: it passes)}
BROKEN = {
    ("ClipWrongSide", "grpo-clip-wrong-side"): {F32: {"grad"}, F64: {"grad"}},
    ("ClipSidesSwapped", "grpo-clip-sides-swapped"): {F32: {"grad"}, F64: {"grad"}},
    ("MinBeforeAdvantage", "grpo-min-before-advantage"): {F32: {"loss", "grad"}, F64: {"loss", "grad"}},
    # k3(d) and k3(-d) differ by about d^3 / 3: the loss only just, the gradient by 1,000 times the tolerance
    ("KlReversed", "grpo-kl-reversed"): {F32: {"grad"}, F64: set()},
    ("TokenMean", "grpo-token-mean"): {F32: {"loss", "grad"}, F64: set()},
}


def test_each_grpo_toy_is_caught_by_the_default_suite_and_the_careful_kernel_passes(tmp_path):
    cases = [c.id for c in grpo_cases(["float32", "float64"])]
    assert cases == [F32, F64]
    files = [a for t in ("CarefulGrpo", *(cls for cls, _ in BROKEN)) for a in ("--backend-file", f"{TOYS}::{t}")]
    res = run_here("run", *files, *[a for c in cases for a in ("--case", c)], "--out", str(tmp_path), "--no-progress",
                   "--no-repro")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    by = {(r["backend"], r["case_id"]): r for r in recs}
    assert len(recs) == len(cases) * (1 + len(BROKEN))
    for case_id in cases:
        careful = by[("grpo-careful", case_id)]
        assert careful["verdict"] == "pass", careful["reasons"]
    for (toy, name), broken in BROKEN.items():
        for case_id, outputs in broken.items():
            r = by[(name, case_id)]
            bad = {k for k in ("loss", "grad") if r[k]["n_exceed"] or r[k]["n_nonfinite_mismatch"]}
            assert outputs <= bad and bool(bad) == bool(outputs), (toy, case_id, bad, r["reasons"])
            assert r["verdict"] == ("fail" if outputs else "pass"), (toy, case_id, r["verdict"])


def test_a_grpo_repro_script_shows_the_cut_gradient(tmp_path):
    """The repro script runs the toy through the registry on its own: the gradient it prints at the
    worst entry is the kernel's 0 where the reference has r A (onehot - p) w / T."""
    import subprocess
    import sys
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", f"{TOYS}::ClipWrongSide", "--case", F64, "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    (script,) = (out / "repro").glob("*.py")
    run = subprocess.run([sys.executable, script.name], cwd=script.parent, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "recorded verdict fail" in run.stdout and "loss[] framework" in run.stdout
    grad = next(line for line in run.stdout.splitlines() if line.startswith("grad["))
    assert " framework 0.0 reference " in grad and abs(float(grad.split(" reference ")[1].split()[0])) > 0.01, grad


def test_tensorflow_grpo_with_its_clip_written_wrong_is_caught(tmp_path):
    """The TensorFlow composition with the clip's sides swapped fails the clip-higher case on its loss
    (a symmetric clip, F64, is the same either way), and with a straight-through clip fails both on
    the gradient of the clipped tokens."""
    require("tensorflow")
    toys = ROOT / "tests/helpers/toy_backends/tf_grpo_toys.py"
    files = [a for t in ("TfGrpoClipSidesSwapped", "TfGrpoClipStraightThrough") for a in ("--backend-file", f"{toys}::{t}")]
    res = run_here("run", *files, "--case", F32, "--case", F64, "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    by = {(r["backend"], r["case_id"]): r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    expect = {("tf-grpo-clip-sides-swapped", F32): {"loss"}, ("tf-grpo-clip-sides-swapped", F64): set(),
              ("tf-grpo-clip-straight-through", F32): {"grad"}, ("tf-grpo-clip-straight-through", F64): {"grad"}}
    assert set(by) == set(expect)
    for key, outputs in expect.items():
        r = by[key]
        assert {k for k in ("loss", "grad") if r[k]["n_exceed"]} == outputs, (key, r["reasons"])
        assert r["verdict"] == ("fail" if outputs else "pass"), (key, r["reasons"])
