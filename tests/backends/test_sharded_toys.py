"""Sharded CE (vocabulary-parallel ranks, micro-batches, data-parallel ranks): each toy kernel
broken one way is caught on the default suite's sharded cases, the careful one passes; a rank
killed or hung in the middle of a case makes that variant `crashed` / `timeout`, the run goes
on, and no process or port is left behind."""

import json
import os

from tests.conftest import ROOT, run_here
from tests.helpers.procs import descendants, listening, wait_gone

TOYS = ROOT / "tests/helpers/toy_backends/sharded_toys.py"
VOCAB_PAD = "scale1e+1_float64_16x999_tp2_index_mean_opt-ign"  # the default suite's sharded cases
VOCAB_LS = "scale1e+0_float32_16x1000_tp2_index_mean_opt-ls"
SPLIT = "scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign"
BROKEN = {  # each toy's bug, and the default case that must catch it
    "LocalK": ("sharded-local-k", VOCAB_LS),
    "LocalMax": ("sharded-local-max", VOCAB_PAD),
    "MeanAllRows": ("sharded-mean-all-rows", SPLIT),
    "LocalMean": ("sharded-local-mean", SPLIT),
    "NanEmpty": ("sharded-nan-empty", SPLIT),
}


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_default_suite_holds_tp2_and_a_micro_batch_split():
    res = run_here("cases")
    ids = res.stdout.split()
    assert {VOCAB_PAD, VOCAB_LS, SPLIT} <= set(ids)
    assert not [i for i in ids if "_tp" in i and "_tp2_" not in i]  # TP = 1, 3, 4 only in the full suite


def test_each_sharded_toy_is_caught_and_the_careful_kernel_passes(tmp_path):
    out = tmp_path / "o"
    files = [a for name in ("ShardedCareful", *BROKEN) for a in ("--backend-file", f"{TOYS}::{name}")]
    res = run_here("run", *files, "--case", VOCAB_PAD, "--case", VOCAB_LS, "--case", SPLIT, "--out", str(out),
                   "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    by = {(r["backend"], r["case_id"]): r for r in _records(out)}
    for case_id in (VOCAB_PAD, VOCAB_LS, SPLIT):
        careful = by[("sharded-careful", case_id)]
        assert careful["verdict"] == "pass", (case_id, careful.get("reasons"))
        assert careful["loss"]["n_exceed"] == 0 and careful["grad"]["n_exceed"] == 0
    for name, (backend, case_id) in BROKEN.items():
        r = by[(backend, case_id)]
        assert r["verdict"] in ("fail", "nonfinite"), (name, r["verdict"], r.get("reasons"))
        assert r["loss"]["n_exceed"] + r["loss"]["n_nonfinite_mismatch"] > 0 or \
            r["grad"]["n_exceed"] + r["grad"]["n_nonfinite_mismatch"] > 0, name
    assert by[("sharded-nan-empty", SPLIT)]["verdict"] == "nonfinite"


def test_a_killed_rank_is_crashed_and_a_hung_one_timeout_leaving_nothing_behind(tmp_path):
    before = descendants(os.getpid())
    res = run_here("run", "--backend-file", f"{TOYS}::RankDies", "--backend-file", f"{TOYS}::ShardedCareful",
                   "--case", VOCAB_LS, "--case", SPLIT, "--out", str(tmp_path / "a"), "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    by = {(r["backend"], r["case_id"]): r for r in _records(tmp_path / "a")}
    died = by[("sharded-rank-dies", VOCAB_LS)]
    assert died["verdict"] == "crashed", died
    assert "rank 1 killed by SIGKILL" in died["reasons"][0]
    for case_id in (VOCAB_LS, SPLIT):  # the run went on: the next case, the other backend
        assert by[("sharded-careful", case_id)]["verdict"] == "pass"
    res = run_here("run", "--backend-file", f"{TOYS}::RankHangs", "--case", VOCAB_LS, "--case", VOCAB_PAD,
                   "--out", str(tmp_path / "b"), "--no-progress", "--no-repro", env={"XENTCHECK_RANK_TIMEOUT": "5"})
    assert res.returncode == 1, res.stderr
    for r in _records(tmp_path / "b"):  # each case in turn: the worker survives its hung ranks
        assert r["verdict"] == "timeout" and "still running after 5 s; ranks killed" in r["reasons"][0], r
    left = descendants(os.getpid()) - before
    assert not wait_gone(left, timeout=30), "rank or worker processes left behind"
    assert not listening(left)


def test_tp_and_split_invariance_catch_the_rank_and_partition_dependent_toys(tmp_path):
    out = tmp_path / "o"
    files = [a for name in ("ShardedCareful", "LocalK", "LocalMean") for a in ("--backend-file", f"{TOYS}::{name}")]
    res = run_here("run", *files, "--case", VOCAB_LS, "--case", SPLIT, "--properties", "--out", str(out),
                   "--no-progress", "--no-repro")
    assert res.returncode == 1, res.stderr
    props = {(r["backend"], r["case_id"]): r["properties"] for r in _records(out)}
    assert props[("sharded-careful", VOCAB_LS)]["tp_invariance"] == {"verdict": "pass",
                                                                     "detail": "agrees with tp1, tp3, tp4"}
    assert props[("sharded-careful", SPLIT)]["split_invariance"]["verdict"] == "pass"
    local_k = props[("sharded-local-k", VOCAB_LS)]["tp_invariance"]
    assert local_k["verdict"] == "fail" and "loss at tp2 vs tp1" in local_k["detail"]
    assert props[("sharded-local-k", SPLIT)]["split_invariance"]["verdict"] == "pass"  # no smoothing there
    local_mean = props[("sharded-local-mean", SPLIT)]["split_invariance"]
    assert local_mean["verdict"] == "fail" and "dp2mb2 vs mb1" in local_mean["detail"]
