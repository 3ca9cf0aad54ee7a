"""Toy kernels of Keras's clipped KLDivergence (semantics "keras_clip",
tests/helpers/toy_backends/keras_clip_toys.py): the careful one passes the clipped cases, and one
that ignores the clip or clips one side only is caught, in the outputs it breaks: end to end,
through the CLI."""

import json

from tests.conftest import ROOT, run_here

TOYS = ROOT / "tests/helpers/toy_backends/keras_clip_toys.py"
PEAK = "scale1e+0_float32_8x64_kd-fkl+peak_soft_batchmean"  # the teacher clipped, the student not
SPREAD = "scale1e+2_float64_16x100_kd-fkl+t3_soft_batchmean"  # both clipped
# toy -> {case: the outputs it breaks there}
BROKEN = {
    "clip-none": {PEAK: {"loss"}, SPREAD: {"loss", "grad"}},
    "clip-teacher-only": {PEAK: set(), SPREAD: {"loss", "grad"}},
    "clip-student-only": {PEAK: {"loss"}, SPREAD: {"loss", "grad"}},
}


def test_the_clipped_reference_catches_a_clip_left_out_on_either_side(tmp_path):
    files = [a for t in ("CarefulClip", "NoClip", "TeacherClipOnly", "StudentClipOnly")
             for a in ("--backend-file", f"{TOYS}::{t}")]
    res = run_here("run", *files, "--case", PEAK, "--case", SPREAD, "--out", str(tmp_path), "--no-progress",
                   "--no-repro")
    assert res.returncode == 1, res.stderr
    by = {(r["backend"], r["case_id"]): r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert len(by) == 8
    for case_id in (PEAK, SPREAD):
        assert by["clip-careful", case_id]["verdict"] == "pass", by["clip-careful", case_id]["reasons"]
    for toy, cases in BROKEN.items():
        for case_id, broken in cases.items():
            r = by[toy, case_id]
            bad = {k for k in ("loss", "grad") if r[k]["n_exceed"] or r[k]["n_nonfinite_mismatch"]}
            assert bad == broken and r["verdict"] == ("fail" if broken else "pass"), (toy, case_id, bad, r["reasons"])
