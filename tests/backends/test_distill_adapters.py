"""The built-in distillation variants, in every mode (TensorFlow's tf.function and XLA; JAX's jit,
its op-by-op mode aside: the same function, a compilation per primitive; torch.compile aside:
minutes of C++ builds), pass small distillation cases against the reference,
and the compositions users write give NaN where the teacher and the student share -inf classes
(docs/distillation.md). Each framework in its own `xentcheck run`, as users run it."""

import json

import pytest

from tests.conftest import mode_tiers, require, run_here

FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
MODES = {"numpy": {"eager"}, "torch": {"eager"}, "jax": {"jit"}, "tensorflow": {"eager", "function", "xla"}}
CASES = ("scale1e+1_float32_16x100_kd-fkl+t2+sq+tg_index_batchmean", "scale1e+0_bfloat16_8x50_kd-rkl+t0.5+peak_soft_none",
         "offset-1e+4_float16_8x64_kd-jsd0.25+tg_soft_mean", "scale1e+0_float64_8x32_kd-fkl+same_soft_sum")
PADDED = "scale1e+0_float32_8x64_kd-jsd0.5+mask_soft_sum"  # shared -inf classes: 0 * (-inf - -inf)


# the default tier runs one mode of each framework's compiled ones; every mode with -m slow (each a
# compilation per variant and case)
QUICK_MODES = {"tensorflow": {"eager"}}
FRAMEWORK_MODES = mode_tiers(MODES, QUICK_MODES)


@pytest.mark.parametrize("name, modes", FRAMEWORK_MODES)
def test_every_distill_variant_and_mode_passes_small_cases(name, modes, tmp_path):
    require(FRAMEWORK_MODULE[name])
    case_args = [a for c in (*CASES, PADDED) for a in ("--case", c)]
    res = run_here("run", "--backends", name, *case_args, "--modes", ",".join(sorted(modes)),
                   "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode in (0, 1), res.stderr
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    ran = [r for r in results if r["verdict"] != "skipped"]
    assert {r["mode"] for r in ran} == modes
    assert {r["case_id"] for r in ran} == {*CASES, PADDED}
    for r in ran:
        if r["case_id"] == PADDED and name != "numpy":
            assert r["verdict"] == "nonfinite", (name, r["impl"], r["mode"], r["reasons"])
            continue
        assert r["verdict"] == "pass", (name, r["impl"], r["mode"], r["case_id"], r["reasons"])
        assert r["tgrad"]["size"] == r["grad"]["size"] > 0
