"""Keras's KLDivergence for distillation (backends/keras/distill.py) on its three backends: forward
KL at a temperature passes; cases where Keras's clip at 1e-7 acts (a near one-hot teacher, a
student of spread logits), skipped before the clipped reference (semantics "keras_clip"), now
pass; a float16 case whose student probability the dtype cannot place on either side of the clip
is skipped saying so; and keras-torch computes a float64 request in float32 (as its
cross-entropy does)."""

import json

import numpy as np

from tests.conftest import require, run_here
from xentcheck.core.cases import Case
from xentcheck.problems.distill.cases import make_inputs, parse

FKL = "scale1e+0_float32_8x64_kd-fkl+t2_soft_batchmean"
PEAK = "scale1e+0_float32_8x64_kd-fkl+peak_soft_batchmean"  # the teacher clipped
SPREAD = "scale1e+2_float32_16x100_kd-fkl+t3_soft_batchmean"  # both clipped
EDGE = "scale1e+2_float16_16x100_kd-fkl+t3_soft_batchmean"  # p_s = 1.33e-7 computes to eps = 1.19e-7
F64 = "scale1e+0_float64_8x32_kd-fkl+same_soft_batchmean"


def _smallest(case_id: str) -> float:
    case = Case.from_id(case_id)
    inputs, t = make_inputs(case, 0), parse(case.spec).temperature
    low = 1.0
    for z in (inputs.student, inputs.teacher):
        x = z.astype(np.float64) / t
        p = np.exp(x - x.max(axis=1, keepdims=True))
        low = min(low, float((p / p.sum(axis=1, keepdims=True)).min()))
    return low


def test_keras_kl_divergence_is_judged_where_its_clip_acts(tmp_path):
    require("keras")
    require("jax")
    require("torch")
    require("tensorflow")
    assert _smallest(PEAK) < 1e-7 and _smallest(SPREAD) < 1e-7 and _smallest(FKL) > 1e-7  # the old skip
    out = tmp_path / "o"
    cases = [a for c in (FKL, PEAK, SPREAD, EDGE, F64) for a in ("--case", c)]
    res = run_here("run", "--backends", "keras-jax,keras-torch,keras-tensorflow", "--impls", "KLDivergence",
                   "--modes", "eager,jit", *cases, "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    got = {(r["case_id"], r["backend"], r["mode"]): r for r in recs}
    runs = [("keras-jax", "eager"), ("keras-jax", "jit"), ("keras-torch", "eager"), ("keras-tensorflow", "eager")]
    assert len(recs) == 5 * len(runs)
    for backend, mode in runs:
        for case_id in (FKL, PEAK, SPREAD):
            r = got[case_id, backend, mode]
            assert r["verdict"] == "pass", (case_id, backend, mode, r["reasons"])
        edge = got[EDGE, backend, mode]
        assert edge["verdict"] == "skipped" and "is within the float16 softmax's error of KLDivergence's clip" \
            in edge["reasons"][0], edge["reasons"]
    assert sum(r["verdict"] == "skipped" for r in recs) == len(runs)  # EDGE only
    narrowed = got[F64, "keras-torch", "eager"]
    assert narrowed["verdict"] == "fail" and "loss computed in float32, requested float64" in narrowed["reasons"]
    assert got[F64, "keras-jax", "eager"]["verdict"] == "pass"
