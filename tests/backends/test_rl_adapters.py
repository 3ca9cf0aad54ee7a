"""The built-in RL variants pass small RL cases; torch.distributions.Categorical's entropy, verl's
entropy_from_logits (logsumexp - sum p z) and optax's integer-label cross-entropy lose the
precision a large common logit offset leaves, while log_softmax compositions (Keras's sparse
categorical cross-entropy among them) keep it (docs/rl.md)."""

import json

import pytest

from tests.conftest import require, run_here

FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax", "keras-jax": "keras",
                    "keras-torch": "keras", "keras-tensorflow": "keras"}
# Keras on TensorFlow (its three modes, the import of both) with -m slow
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n == "keras-tensorflow" else n for n in FRAMEWORK_MODULE]
PLAIN = ("scale1e+1_float32_16x100_rl-lp+t0.7_index_none", "scale1e+0_float16_16x50_rl-lp+peak_index_none",
         "scale1e+0_float64_8x20_rl-lp_index_none")
OFFSET = "offset-1e+4_float32_8x64_rl-lp_index_none"
# variant -> the outputs that lose precision at the offset
LOSSY = {"log_softmax_gather": {"entropy", "egrad"}, "cross_entropy_verl_entropy": {"entropy", "egrad"},
         "optax_ce_lse_entropy": {"loss", "entropy", "egrad"}}


@pytest.mark.parametrize("name", NAMES)
def test_rl_variants(name, tmp_path):
    require(FRAMEWORK_MODULE[name])
    res = run_here("run", "--backends", name, *[a for c in (*PLAIN, OFFSET) for a in ("--case", c)],
                   "--out", str(tmp_path), "--no-progress", "--no-repro")
    assert res.returncode in (0, 1), res.stderr
    ran = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    ran = [r for r in ran if r["verdict"] != "skipped"]
    assert {r["case_id"] for r in ran} == {*PLAIN, OFFSET}
    for r in ran:
        bad = {k for k in ("loss", "entropy", "grad", "egrad") if r[k]["n_exceed"] or r[k]["n_nonfinite_mismatch"]}
        want = LOSSY.get(r["impl"], set()) if r["case_id"] == OFFSET else set()
        assert bad == want, (r["impl"], r["case_id"], r["reasons"])


def test_variant_names_are_unique_in_each_builtin_backend():
    """The runner asks a worker for variants by (impl, mode): a name two kinds share would run both."""
    from xentcheck.backends.registry import BUILTIN, create
    for name in BUILTIN:
        pairs = [(v.impl, v.mode) for v in create(name).variants()]
        assert len(pairs) == len(set(pairs)), (name, sorted(p for p in pairs if pairs.count(p) > 1))
