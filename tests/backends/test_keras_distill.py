"""Keras's KLDivergence for distillation (backends/keras/distill.py): forward KL at a temperature
passes on keras-jax; where a probability is below Keras's clip (1e-7) the case is skipped saying
so (backends.base.NotApplicable), not judged against an unclipped reference; and keras-torch
computes a float64 request in float32 (as its cross-entropy does)."""

import json

from tests.conftest import require, run_here

FKL = "scale1e+0_float32_8x64_kd-fkl+t2_soft_batchmean"
PEAK = "scale1e+0_float32_8x64_kd-fkl+peak_soft_batchmean"
F64 = "scale1e+0_float64_8x32_kd-fkl+same_soft_batchmean"


def test_keras_kl_divergence_passes_skips_clipped_cases_and_narrows_on_torch(tmp_path):
    require("keras")
    require("jax")
    require("torch")
    out = tmp_path / "o"
    res = run_here("run", "--backends", "keras-jax,keras-torch", "--impls", "KLDivergence", "--case", FKL,
                   "--case", PEAK, "--case", F64, "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    got = {(r["case_id"], r["backend"], r["mode"]): r
           for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for mode in ("eager", "jit"):
        assert got[FKL, "keras-jax", mode]["verdict"] == "pass", got[FKL, "keras-jax", mode]
        peak = got[PEAK, "keras-jax", mode]
        assert peak["verdict"] == "skipped" and "clips probabilities to [1e-07, 1]" in peak["reasons"][0]
    assert got[FKL, "keras-torch", "eager"]["verdict"] == "pass"
    narrowed = got[F64, "keras-torch", "eager"]
    assert narrowed["verdict"] == "fail" and "loss computed in float32, requested float64" in narrowed["reasons"]
    assert got[F64, "keras-jax", "eager"]["verdict"] == "pass"
