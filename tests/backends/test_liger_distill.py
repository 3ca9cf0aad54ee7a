"""Liger-Kernel's distillation losses (`--backends liger-distill`, Triton's CPU interpreter): its
JSD at beta = 0 and its KL pass forward KL at T = 2, and its JSD gives NaN where teacher and
student share -inf classes (the log of the mixture: Liger-Kernel #769). Skipped without the extra."""

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
    masked = got[MASKED, "LigerJSD"]
    assert masked["verdict"] == "nonfinite" and any(r.startswith("loss: ") and "NaN" in r for r in masked["reasons"])
    assert got[MASKED, "LigerKLDIVLoss"]["verdict"] == "skipped"  # a KL takes no JSD case
