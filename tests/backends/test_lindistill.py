"""The linear distillation kind end to end: torch's composition (F.linear, then the divergence as
TRL writes it) passes the default cases and a few of the grid, NumPy's analytic chain rule, JAX's
and TensorFlow's compositions pass the default cases, JAX's probability-form JSD gives NaN where a
student probability underflows to 0, a careful toy passes and two broken ones fail in the output
they break, and Liger's LigerFusedLinearJSDLoss on real hidden states and weights passes 16 and 32
bits and sums a float64 loss in float32 (docs/distillation.md)."""

import json

import pytest

from tests.conftest import ROOT, mode_tiers, require, run_here
from xentcheck.problems.lindistill.cases import lindistill_cases

DEFAULT = [c.id for c in lindistill_cases(["float16", "bfloat16", "float32", "float64"])]
F32 = "scale1e+0_float32_16x1000_lkd-d64+jsd0.5+t2_index_batchmean"
GRID = ["scale1e+0_float64_16x1000_lkd-d16+rkl_index_sum", "scale1e+0_float16_16x1000_lkd-d256+jsd0.5+t2+sq_index_sum",
        "scale1e+1_float64_8x1000_lkd-d64+jsd0.5+t0.7_index_batchmean"]
# scale 10 over T = 0.7: logits 105 below the row's maximum, so float32 rounds 60 of the student's
# probabilities to 0, where optax.kl_divergence's gradient w.r.t. its targets is NaN
UNDERFLOW = "scale1e+1_float32_8x1000_lkd-d64+jsd0.5+t0.7_index_batchmean"
TOYS = ROOT / "tests/helpers/toy_backends/lindistill_toys.py"


def _results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_torch_composition_and_toys(tmp_path):
    require("torch")
    assert F32 in DEFAULT
    toys = [a for t in ("CarefulLinDistill", "NoTemperatureInDw", "TeacherHiddenInDw")
            for a in ("--backend-file", f"{TOYS}::{t}")]
    res = run_here("run", "--backends", "torch", "--impls", "linear_log_softmax_jsd,toy_lindistill", *toys,
                   *[a for c in (*DEFAULT, *GRID) for a in ("--case", c)], "--out", str(tmp_path), "--no-progress",
                   "--no-repro")
    assert res.returncode == 1, res.stderr
    by = {(r["backend"], r["case_id"]): r for r in _results(tmp_path)}
    for case_id in (*DEFAULT, *GRID):
        r = by[("torch", case_id)]
        assert r["verdict"] == "pass", (case_id, r["reasons"])
    careful = by[("lindistill-careful", F32)]
    assert careful["verdict"] == "pass", careful["reasons"]
    for name in ("lindistill-no-t-in-dw", "lindistill-teacher-hidden-in-dw"):
        r = by[(name, F32)]
        bad = {k for k in ("loss", "dh", "dw") if r[k]["n_exceed"]}
        assert r["verdict"] == "fail" and bad == {"dw"}, (name, r["reasons"])


FRAMEWORK_MODULE = {"numpy": "numpy", "jax": "optax", "tensorflow": "tensorflow"}
MODES = {"numpy": {"eager"}, "jax": {"eager", "jit"}, "tensorflow": {"eager", "function", "xla"}}
# the default tier runs one mode of each (each mode compiles per variant and case); every mode with -m slow
QUICK_MODES = {"jax": {"jit"}, "tensorflow": {"eager"}}
FRAMEWORK_MODES = mode_tiers(MODES, QUICK_MODES)


@pytest.mark.parametrize("name, modes", FRAMEWORK_MODES)
def test_framework_compositions_pass_the_default_cases(name, modes, tmp_path):
    require(FRAMEWORK_MODULE[name])
    cases = (*DEFAULT, UNDERFLOW) if name == "jax" else DEFAULT
    res = run_here("run", "--backends", name, *[a for c in cases for a in ("--case", c)], "--modes",
                   ",".join(sorted(modes)), "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode == (1 if name == "jax" else 0), res.stderr
    ran = [r for r in _results(tmp_path) if r["verdict"] != "skipped"]
    assert {r["mode"] for r in ran} == modes
    impls = {r["impl"] for r in ran}
    assert len(ran) == len(impls) * len(modes) * len(cases)
    for r in ran:
        if r["case_id"] == UNDERFLOW and r["impl"] == "linear_optax_kl":
            # the loss right, dh and dW NaN in every row holding a zero probability (all 8 here)
            assert r["verdict"] == "nonfinite" and not r["loss"]["n_nonfinite_mismatch"], r["reasons"]
            assert r["dh"]["n_nonfinite_mismatch"] == 8 * 64 and r["dw"]["n_nonfinite_mismatch"] == 1000 * 64
            continue
        assert r["verdict"] == "pass", (name, r["impl"], r["mode"], r["case_id"], r["reasons"])


def test_liger_fused_linear_jsd_on_hidden_states(tmp_path):
    require("liger_kernel")
    require("triton")
    f64 = "scale1e+0_float64_16x1000_lkd-d16+jsd0.1_soft_batchmean"
    res = run_here("run", "--backends", "liger-distill", "--impls", "LigerFusedLinearJSDLoss", *[a for c in
                   (*DEFAULT, f64) for a in ("--case", c)], "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    got = {r["case_id"]: r for r in _results(tmp_path)}
    for case_id in DEFAULT:  # its loss is float32 whatever the inputs: a 16-bit one widens
        assert got[case_id]["verdict"] in ("pass", "widened"), got[case_id]["reasons"]
        assert not any(got[case_id][k]["n_exceed"] for k in ("loss", "dh", "dw")), got[case_id]["reasons"]
    r = got[f64]
    assert r["verdict"] == "fail" and r["loss_dtype"] == "float32" and r["loss"]["n_exceed"], r["reasons"]
    assert not r["dh"]["n_exceed"] and not r["dw"]["n_exceed"], r["reasons"]
