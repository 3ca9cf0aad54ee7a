"""The sharded adapters of the frameworks on the default suite's TP = 2 cases, through the CLI:
Megatron-core on two gloo ranks (skipped, with the reason, where it is not installed) computes
float64 in float32 and its label smoothing depends on the rank; JAX's shard_map on two host
devices passes."""

import json

import pytest

from tests.conftest import require, run_here

VOCAB_PAD = "scale1e+1_float64_16x999_tp2_index_mean_opt-ign"
VOCAB_LS = "scale1e+0_float32_16x1000_tp2_index_mean_opt-ls"


def _by_case(out):
    return {json.loads(line)["case_id"]: json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()}


def test_megatron_vocab_parallel_float32_on_float64_and_rank_dependent_smoothing(tmp_path):
    require("megatron.core")  # found, not imported: it brings triton, which aborts a process holding TF
    pytest.importorskip("torch")
    out = tmp_path / "o"
    res = run_here("run", "--backends", "torch", "--impls", "megatron.vocab_parallel_cross_entropy", "--case",
                   VOCAB_PAD, "--case", VOCAB_LS, "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    by = _by_case(out)
    f64 = by[VOCAB_PAD]
    assert f64["verdict"] == "fail" and f64["loss_dtype"] == "float32"
    assert "loss computed in float32, requested float64" in f64["reasons"]
    assert 1e-9 < f64["loss"]["abs_err"] < 1e-5  # float32 rounding, not a wrong formula
    ls = by[VOCAB_LS]
    assert ls["verdict"] == "fail" and ls["loss"]["rel_err"] > 1e-5
    assert any("rank 1's loss differs from rank 0's" in n for n in ls["notes"])


def test_jax_shard_map_on_two_host_devices_passes(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "o"
    res = run_here("run", "--backends", "jax", "--impls", "shard_map_vocab_parallel", "--case", VOCAB_PAD,
                   "--case", VOCAB_LS, "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 0, res.stderr
    by = _by_case(out)
    for case_id in (VOCAB_PAD, VOCAB_LS):
        assert by[case_id]["verdict"] == "pass" and by[case_id]["mode"] == "devices"
        assert by[case_id]["grad"]["ulp_err"] < 64


def test_torch_partitions_and_transformers_mean_of_means_is_a_known_difference(tmp_path):
    pytest.importorskip("torch")
    require("transformers")
    from tests.conftest import ROOT
    out = tmp_path / "o"
    split = "scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign"
    impls = ("cross_entropy_sum_over_global_count,dp_all_reduce_global_count,transformers.ForCausalLMLoss_num_items,"
             "transformers.ForCausalLMLoss_no_num_items")
    res = run_here("run", "--backends", "torch", "--impls", impls, "--case", split, "--known",
                   str(ROOT / "known-differences.toml"), "--out", str(out), "--no-progress", "--no-repro")
    assert res.returncode == 0, res.stderr  # the mean of means is known, the rest pass
    recs = {json.loads(line)["impl"]: json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()}
    for impl in impls.split(",")[:3]:
        assert recs[impl]["verdict"] == "pass", (impl, recs[impl].get("reasons"))
    assert recs["dp_all_reduce_global_count"]["mode"] == "gloo"
    mean_of_means = recs["transformers.ForCausalLMLoss_no_num_items"]
    assert mean_of_means["verdict"] == "known" and mean_of_means["original_verdict"] == "nonfinite"
