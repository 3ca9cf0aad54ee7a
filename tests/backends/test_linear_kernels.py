"""The optional linear-CE kernels on a few small cases, where installed (CI installs none: each
test skips with the reason): what each computes, the gradients judged at their natural scale.
Each runs as a user runs it, in a worker process (`xentcheck run --backends NAME`)."""

import json

from tests.conftest import require, run_here

F32 = "scale1e+0_float32_32x1000_lin64_index_mean"
F64 = "scale1e+0_float64_32x1000_lin64_index_mean"
CONFIDENT = "dominant_float32_16x2000_lin64_index_mean"  # p_y ~ 1 - 1e-7


def _run(tmp_path, backends: str, *cases: str) -> dict:
    out = tmp_path / "o"
    res = run_here("run", "--backends", backends, "--out", str(out), "--no-progress",
                  *(a for c in cases for a in ("--case", c)))
    assert res.returncode in (0, 1), res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["backend"], r["impl"], r["mode"], r["case_id"]): r for r in recs}


def test_jax_cce_eager_and_jit_at_two_chunk_sizes(tmp_path):
    require("jax_cce")
    summed = "scale1e+1_float32_24x777_lin16_index_sum"
    recs = _run(tmp_path, "jax-cce", F32, F64, CONFIDENT, summed)
    exact = [(i, m) for i in ("jax_cce_c4096", "jax_cce_c256") for m in ("eager", "jit")]
    for impl, mode in exact:
        for case in (F32, CONFIDENT):
            r = recs[("jax-cce", impl, mode, case)]
            assert r["verdict"] == "pass", r["reasons"]
            assert r["dw"]["n_exceed"] == 0 and r["dh"]["n_exceed"] == 0 and r.get("db") is None
        # float64 in, float32 inside: the loss off by ~1e7 float64 ulps, every gradient entry out of tolerance
        r = recs[("jax-cce", impl, mode, F64)]
        assert r["verdict"] == "fail" and r["loss_dtype"] == "float32" and r["grad_dtype"] == "float64"
        assert r["loss"]["ulp_err"] > 1e6 and r["dw"]["n_exceed"] == r["dw"]["size"] == 64000
    # filter_eps drops the gradient of the confident rows' far chunks: dW, on purpose (documented)
    r = recs[("jax-cce", "jax_cce_c256_filter", "jit", CONFIDENT)]
    assert r["verdict"] == "fail" and r["documented"] and r["dw"]["n_exceed"] > 100_000 and r["loss"]["n_exceed"] == 0
    r = recs[("jax-cce", "jax_cce_c4096", "eager", summed)]
    assert r["verdict"] == "skipped" and "mean only" in r["reasons"][0]


def test_cut_cross_entropy_torch_compile_and_its_triton_impls_without_a_gpu(tmp_path):
    require("cut_cross_entropy")
    capped = "scale1e+0_float32_16x500_lin64_index_mean_opt-cap30"
    recs = _run(tmp_path, "cce,cce-triton", F32, F64, capped)
    for case in (F32, capped):
        r = recs[("cce", "cce_torch_compile", "compile", case)]
        assert r["verdict"] == "pass" and r["dw"]["n_exceed"] == 0, r["reasons"]
    # F.cross_entropy(logits.float()): a float64 case is computed in float32
    r = recs[("cce", "cce_torch_compile", "compile", F64)]
    assert r["verdict"] == "fail" and r["loss_dtype"] == "float32" and r["loss"]["ulp_err"] > 1e6
    assert r["dh"]["n_exceed"] == r["dh"]["size"]
    for impl in ("cce", "cce_filter_high"):  # Triton: a CUDA GPU only, skipped here with the reason
        r = recs[("cce-triton", impl, "triton", F32)]
        assert r["verdict"] == "skipped" and "need a CUDA GPU" in r["reasons"][0], r


def test_liger_fused_linear_ce_with_its_options_on_the_interpreter(tmp_path):
    require("liger_kernel")
    require("triton")
    options = "scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls"
    per_row = "scale1e+1_float32_16x1000_lin64_index_none_opt-ign+ct+b"  # gradients recomputed in backward
    allign = "scale1e+0_float32_8x1000_lin16_index_mean_opt-allign"
    bf16 = "dominant_bfloat16_16x2000_lin64_index_mean"
    recs = _run(tmp_path, "liger-linear", options, per_row, allign, bf16)
    impl = "LigerFusedLinearCrossEntropyFunction_accum_"
    for acc in ("param", "float32"):
        for case in (options, per_row):
            r = recs[("liger-linear", impl + acc, "triton", case)]
            assert r["verdict"] == "pass", r["reasons"]
        assert recs[("liger-linear", impl + acc, "triton", per_row)]["db"]["n_exceed"] == 0
        # every target ignored: the mean is 0.0 where torch's is NaN (0 / 0)
        r = recs[("liger-linear", impl + acc, "triton", allign)]
        assert r["verdict"] == "nonfinite" and r["reasons"][0].startswith("loss: 1 / 1 NaN/inf"), r["reasons"]
        r = recs[("liger-linear", impl + acc, "triton", bf16)]
        assert r["verdict"] == "skipped" and "interpreter" in r["reasons"][0]
