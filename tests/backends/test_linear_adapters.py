"""Every built-in linear-CE variant, in every mode (JAX's jit, TensorFlow's tf.function and XLA
included), passes small linear-CE cases against the linear reference. Each framework runs in its
own `xentcheck run`, as users run it: torch's compiler stack (imported by F.linear_cross_entropy
with options) can crash a process that already loaded TensorFlow or JAX."""

import json

import pytest

from tests.conftest import mode_tiers, require, run_here

FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
MODES = {"numpy": {"eager"}, "torch": {"eager"}, "jax": {"eager", "jit"}, "tensorflow": {"eager", "function", "xla"}}
CASES = ("scale1e+0_float32_16x100_lin16_index_mean_opt-b", "scale1e+0_float16_16x100_lin16_index_sum_opt-b",
         "scale1e+1_float64_12x50_lin8_index_none_opt-ct+b", "dominant_bfloat16_8x300_lin32_index_mean")


# the default tier runs one mode of each framework's compiled ones; every mode with -m slow (each a
# compilation per variant and case)
QUICK_MODES = {"jax": {"jit"}, "tensorflow": {"eager"}}
FRAMEWORK_MODES = mode_tiers(MODES, QUICK_MODES)


@pytest.mark.parametrize("name, modes", FRAMEWORK_MODES)
def test_every_linear_variant_and_mode_passes_small_cases(name, modes, tmp_path):
    require(FRAMEWORK_MODULE[name])
    case_args = [a for c in CASES for a in ("--case", c)]
    res = run_here("run", "--backends", name, *case_args, "--modes", ",".join(sorted(modes)),
                  "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode in (0, 1), res.stderr
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    linear = [r for r in results if r["verdict"] != "skipped"]
    assert {r["mode"] for r in linear} == modes
    assert {r["case_id"] for r in linear} == set(CASES)
    for r in linear:
        assert r["verdict"] == "pass", (name, r["impl"], r["mode"], r["case_id"], r["reasons"])
        has_bias = "b" in r["case_id"].partition("_opt-")[2].split("+")
        assert r["dh"]["size"] > 0 and bool(r.get("db")) == has_bias
