"""Each linear-CE toy kernel built to break one gradient (dh, dW, db) is caught in that gradient
only, and the careful one passes: end to end, through the CLI."""

import json

from tests.conftest import ROOT, run_here

TOYS = ROOT / "tests/helpers/toy_backends"
CASES = ("scale1e+0_float32_32x1000_lin64_index_mean_opt-b", "scale1e+1_float64_48x300_lin32_index_sum_opt-b")
BROKEN = {"linear-broken-dh": "dh", "linear-broken-dw": "dw", "linear-broken-db": "db"}


def test_each_linear_toy_fails_its_gradient_and_the_careful_kernel_passes(tmp_path):
    out = tmp_path / "o"
    files = [a for t in ("linear_careful", "linear_broken_dh", "linear_broken_dw", "linear_broken_db")
             for a in ("--backend-file", str(TOYS / f"{t}.py"))]
    res = run_here("run", *files, *[a for c in CASES for a in ("--case", c)], "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r["backend"], r["case_id"]): r for r in recs}
    assert len(recs) == len(CASES) * 4
    for case_id in CASES:
        careful = by[("linear-careful", case_id)]
        assert careful["verdict"] == "pass", careful["reasons"]
        assert {"loss", "dh", "dw", "db"} <= set(careful) and "grad" not in careful
        for toy, what in BROKEN.items():
            r = by[(toy, case_id)]
            assert r["verdict"] == "fail", (toy, case_id, r["verdict"])
            assert r[what]["n_exceed"] > 0, (toy, case_id)
            for other in {"loss", "dh", "dw", "db"} - {what}:
                assert r[other]["n_exceed"] == 0, (toy, case_id, other, r["reasons"])
