"""The built-in GRPO variants (NumPy's analytic one, torch as TRL writes it, JAX's and TensorFlow's
compositions, TensorFlow's in each of its modes) pass the default suite's GRPO cases and one of each
loss type; Liger-Kernel's triton_grpo_loss and LigerFusedLinearGRPOLoss (`--backends liger-grpo`,
Triton's CPU interpreter) pass float16 and float32 and compute float64 in float32 (docs/rl.md).
Skipped without the framework."""

import json

import pytest

from tests.conftest import require, run_here
from xentcheck.problems.grpo.cases import grpo_cases

DEFAULT = [c.id for c in grpo_cases(["float16", "bfloat16", "float32", "float64"])]
TYPES = [f"scale1e+1_float32_6x100x8_grpo-clip0.3+kl0.1+t0.7_index_{t}" for t in ("bnpo", "drgrpo")]


def _results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["numpy", "torch", "jax", "tensorflow"])
def test_grpo_variants_pass(name, tmp_path):
    require(name)
    modes = ("eager", "function", "xla") if name == "tensorflow" else ()
    res = run_here("run", "--backends", name, *[a for c in (*DEFAULT, *TYPES) for a in ("--case", c)],
                   *(("--modes", ",".join(modes)) if modes else ()), "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode == 0, res.stderr
    ran = [r for r in _results(tmp_path)
           if r["impl"] in ("grpo_analytic", "trl_grpo_loss", "grpo_log_softmax_take", "grpo_log_softmax_gather")]
    assert {r["case_id"] for r in ran} == {*DEFAULT, *TYPES}
    assert len(ran) == len({*DEFAULT, *TYPES}) * max(1, len(modes)) and {r["mode"] for r in ran} >= set(modes)
    for r in ran:
        # TRL's mask.sum(-1).clamp(min=1.0) turns an integer mask into float32: a 16-bit loss widens
        assert r["verdict"] in ("pass", "widened"), (r["case_id"], r["reasons"])
        assert not r["loss"]["n_exceed"] and not r["grad"]["n_exceed"], (r["case_id"], r["reasons"])


def test_liger_grpo_passes_16_and_32_bits_and_computes_float64_in_float32(tmp_path):
    require("liger_kernel")
    require("triton")
    cases = DEFAULT
    res = run_here("run", "--backends", "liger-grpo", *[a for c in cases for a in ("--case", c)], "--out",
                   str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    got = {(r["case_id"], r["impl"]): r for r in _results(tmp_path)}
    assert len(got) == 2 * len(cases)
    for (case_id, impl), r in got.items():
        if "bfloat16" in case_id:
            assert r["verdict"] == "skipped" and "interpreter" in " ".join(r["reasons"]), r
        elif "float64" in case_id:  # loads cast to tl.float32 (and the chunked loss's .float()): a float32 result
            assert r["verdict"] == "fail" and r["loss_dtype"] == "float32" and r["grad"]["n_exceed"], (impl, r["reasons"])
        else:
            assert r["verdict"] in ("pass", "widened") and r["loss_dtype"] == "float32", (impl, case_id, r["reasons"])
            assert not r["loss"]["n_exceed"] and not r["grad"]["n_exceed"], (impl, case_id, r["reasons"])
