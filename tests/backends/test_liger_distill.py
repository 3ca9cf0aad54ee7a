"""Liger-Kernel's distillation losses (`--backends liger-distill`, Triton's CPU interpreter): its
JSD at beta = 0 and its KL pass forward KL at T = 2, and its JSD gives NaN where teacher and
student share -inf classes (the log of the mixture: Liger-Kernel #769); the chunked
LigerFusedLinearJSDLoss (on W = I) passes JSD and forward KL and sums a float64 loss in float32.
Skipped without the extra."""

import json

from tests.conftest import require, run_here

FKL = "scale1e+0_float32_8x64_kd-fkl+t2_soft_batchmean"
MASKED = "scale1e+0_float32_8x64_kd-jsd0.5+mask_soft_batchmean"


def test_liger_distill_passes_forward_kl_and_gives_nan_beside_masked_classes(tmp_path):
    require("liger_kernel")
    require("triton")
    out = tmp_path / "o"
    res = run_here("run", "--backends", "liger-distill", "--case", FKL, "--case", MASKED, "--out", str(out),
                   "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    got = {(r["case_id"], r["impl"]): r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for impl in ("LigerJSD", "LigerKLDIVLoss_log_target", "LigerKLDIVLoss"):
        assert got[FKL, impl]["verdict"] == "pass", got[FKL, impl]
    assert got[FKL, "LigerFusedLinearJSDLoss_identity"]["verdict"] == "pass", got[FKL, "LigerFusedLinearJSDLoss_identity"]
    assert got[MASKED, "LigerFusedLinearJSDLoss_identity"]["verdict"] == "skipped"  # h W^T would be NaN at -inf, W = I
    masked = got[MASKED, "LigerJSD"]
    assert masked["verdict"] == "nonfinite" and any(r.startswith("loss: ") and "NaN" in r for r in masked["reasons"])
    assert got[MASKED, "LigerKLDIVLoss"]["verdict"] == "skipped"  # a KL takes no JSD case


def test_liger_fused_linear_jsd_passes_jsd_and_sums_a_float64_loss_in_float32(tmp_path):
    """Its loss accumulator is torch.zeros(()) (fused_linear_distillation.py): float32 whatever the
    inputs; the float64 gradient keeps float64's precision."""
    require("liger_kernel")
    require("triton")
    jsd = "scale1e+2_float32_16x100_kd-jsd0.1+t3_soft_batchmean"
    f64 = "scale1e+0_float64_16x100_kd-jsd0.9+peak_soft_batchmean"
    out = tmp_path / "o"
    res = run_here("run", "--backends", "liger-distill", "--impls", "LigerFusedLinearJSDLoss_identity", "--case", jsd, "--case",
                   f64, "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    got = {r["case_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert got[jsd]["verdict"] == "pass", got[jsd]["reasons"]
    r = got[f64]
    assert r["verdict"] == "fail" and r["loss_dtype"] == "float32" and r["loss"]["n_exceed"] == 1, r["reasons"]
    assert r["grad_dtype"] == "float64" and r["grad"]["n_exceed"] == 0, r["reasons"]
