"""The linear distillation kind end to end: torch's composition (F.linear, then the divergence as
TRL writes it) passes the default cases and a few of the grid, a careful toy passes and two broken
ones fail in the output they break, and Liger's LigerFusedLinearJSDLoss on real hidden states and
weights passes 16 and 32 bits and sums a float64 loss in float32 (docs/distillation.md)."""

import json

from tests.conftest import ROOT, require, run_here
from xentcheck.problems.lindistill.cases import lindistill_cases

DEFAULT = [c.id for c in lindistill_cases(["float16", "bfloat16", "float32", "float64"])]
F32 = "scale1e+0_float32_16x1000_lkd-d64+jsd0.5+t2_index_batchmean"
GRID = ["scale1e+0_float64_16x1000_lkd-d16+rkl_index_sum", "scale1e+0_float16_16x1000_lkd-d256+jsd0.5+t2+sq_index_sum",
        "scale1e+1_float64_8x1000_lkd-d64+jsd0.5+t0.7_index_batchmean"]
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
