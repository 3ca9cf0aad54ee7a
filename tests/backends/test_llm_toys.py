"""Each LLM-training option's check catches a toy kernel built to break just that option, and the
careful kernel (the NumPy backend's closed forms) passes every case: end to end, through the CLI."""

import json

from tests.conftest import ROOT, run_here

TOYS = ROOT / "tests/helpers/toy_backends"
# one case per option (and two cotangent kinds); float32/float64, where the plain tolerance applies
CASES = {
    "cap": "scale1e+2_float32_16x10_index_sum_opt-cap30",
    "z": "scale1e+2_float64_16x10_index_mean_opt-z1e-4",
    "s": "scale1e+1_float32_16x10_onehot_mean_opt-s0.5",
    "s3": "scale1e+1_float64_16x10_soft_sum_opt-s3",
    "ct": "scale1e+1_float64_16x10_index_none_opt-ct",
    "ct1024": "scale1e+1_float32_16x10_onehot_sum_opt-ct1024",
}
# toy -> the cases it must fail; it passes all the others
BROKEN = {
    "llm_softcap_wrong_form": {"cap"},
    "llm_softcap_dropped": {"cap"},
    "llm_zloss_dropped": {"z"},
    "llm_zloss_when_disabled": set(CASES) - {"z"},  # adds z lse^2 to every case without z
    "llm_scale_no_chain": {"s", "s3"},
    "llm_cotangent_first": {"ct"},
    "llm_cotangent_scalar_ignored": {"ct1024"},
}


def test_each_toy_fails_its_option_and_the_careful_kernel_passes(tmp_path):
    out = tmp_path / "o"
    files = [a for toy in BROKEN for a in ("--backend-file", str(TOYS / f"{toy}.py"))]
    res = run_here("run", "--backends", "numpy", *files, *[a for c in CASES.values() for a in ("--case", c)],
                  "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr  # discrepancies found
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r["backend"], r["case_id"]): r for r in recs}
    assert len(recs) == len(CASES) * (1 + len(BROKEN))
    for case_id in CASES.values():
        assert by[("numpy", case_id)]["verdict"] == "pass", by[("numpy", case_id)]["reasons"]
    names = {toy: toy.replace("_", "-") for toy in BROKEN}
    names["llm_softcap_wrong_form"] = "llm-softcap-x-tanh"
    for toy, broken in BROKEN.items():
        for key, case_id in CASES.items():
            r = by[(names[toy], case_id)]
            if key in broken:
                assert r["verdict"] == "fail", (toy, case_id, r["verdict"])
                assert r["reasons"] and "out of tolerance" in " ".join(r["reasons"]), (toy, case_id)
            else:
                assert r["verdict"] == "pass", (toy, case_id, r["reasons"])


def test_the_broken_backwards_are_caught_in_the_gradient_only(tmp_path):
    """The cotangent and the scale's chain factor enter the backward only: the loss still passes."""
    out = tmp_path / "o"
    toys = ("llm_cotangent_first", "llm_cotangent_scalar_ignored", "llm_scale_no_chain")
    res = run_here("run", *[a for t in toys for a in ("--backend-file", str(TOYS / f"{t}.py"))],
                  "--case", CASES["ct"], "--case", CASES["ct1024"], "--case", CASES["s"], "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r["verdict"] != "pass"]
    assert sorted((r["backend"], r["case_id"]) for r in failed) == [
        ("llm-cotangent-first", CASES["ct"]), ("llm-cotangent-scalar-ignored", CASES["ct1024"]),
        ("llm-scale-no-chain", CASES["s"])]
    for r in failed:
        assert all(reason.startswith("gradient:") for reason in r["reasons"]), r["reasons"]
        assert r["grad"]["n_exceed"] > 0 and r["loss"]["n_exceed"] == 0
