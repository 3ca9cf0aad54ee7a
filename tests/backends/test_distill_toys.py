"""Each distillation toy kernel, broken one way as users reported it (issue 27), fails the default
suite's distillation cases, and the careful one passes them: end to end, through the CLI."""

import json

from tests.conftest import ROOT, run_here
from xentcheck.problems.distill.cases import distill_cases

TOYS = ROOT / "tests/helpers/toy_backends/distill_toys.py"
# toy (its class, its backend name) -> (the default case that catches it, the outputs it breaks there)
BROKEN = {
    ("MixtureNan", "distill-mixture-nan"): ("scale1e+0_float32_8x64_kd-jsd0.25+tg+mask_soft_sum", {"loss", "grad", "tgrad"}),
    ("BetaReversed", "distill-beta-reversed"): ("scale1e+0_float32_8x64_kd-jsd0.25+tg+mask_soft_sum", {"loss", "grad", "tgrad"}),
    ("NoTSquared", "distill-no-t-squared"): ("scale1e+1_float32_16x100_kd-fkl+t2+sq_index_batchmean", {"loss", "grad"}),
    ("IgnoreIgnored", "distill-ignore-ignored"): ("scale1e+1_float32_16x100_kd-fkl+t2+sq_index_batchmean", {"loss", "grad"}),
    ("RunningMaxZero", "distill-running-max-zero"): ("offset-1e+4_float64_8x64_kd-jsd0.5+t2+disj_index_mean", {"loss", "grad"}),
    ("TeacherLeak", "distill-teacher-leak"): ("scale1e+1_float32_16x100_kd-fkl+t2+sq_index_batchmean", {"tgrad"}),
}


def test_each_distill_toy_is_caught_by_the_default_suite_and_the_careful_kernel_passes(tmp_path):
    cases = [c.id for c in distill_cases(["float32", "float64"])]
    assert {case for case, _ in BROKEN.values()} <= set(cases)
    files = [a for t in ("CarefulDistill", *(cls for cls, _ in BROKEN)) for a in ("--backend-file", f"{TOYS}::{t}")]
    res = run_here("run", *files, *[a for c in cases for a in ("--case", c)], "--out", str(tmp_path), "--no-progress",
                   "--no-repro")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    by = {(r["backend"], r["case_id"]): r for r in recs}
    assert len(recs) == len(cases) * 7
    for case_id in cases:
        careful = by[("distill-careful", case_id)]
        assert careful["verdict"] == "pass", careful["reasons"]
    for (toy, name), (case_id, broken) in BROKEN.items():
        r = by[(name, case_id)]
        assert r["verdict"] in ("fail", "nonfinite"), (toy, r["verdict"])
        bad = {k for k in ("loss", "grad", "tgrad") if r[k]["n_exceed"] or r[k]["n_nonfinite_mismatch"]}
        assert bad == broken, (toy, bad, r["reasons"])
