"""Each property check catches the toy variant built to break it, and passes the correct one."""

import json

import pytest

from tests.conftest import ROOT, run_here
from tests.helpers.toy_backends.toy_properties import BREAKS

CASES = ["scale1e+1_float64_8x12_index_mean", "scale1e+1_float64_6x10_soft_sum"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("props")
    res = run_here("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/toy_properties.py"), "--properties",
                  *[a for c in CASES for a in ("--case", c)], "--out", str(out))
    assert res.returncode == 1, res.stderr  # the broken variants are findings
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert (out / "report.md").read_text().count("breaks\\_") > 0
    return recs


def _props(records, impl, mode="eager", case=CASES[0]):
    return next(r["properties"] for r in records if r["impl"] == impl and r["mode"] == mode and r["case_id"] == case)


@pytest.mark.parametrize("prop", BREAKS)
def test_each_broken_property_is_caught(records, prop):
    mode = "compiled" if prop == "eager_vs_compiled" else "eager"
    got = _props(records, f"breaks_{prop}", mode)[prop]
    assert got["verdict"] == "fail", got


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_correct_variant_passes_every_property(records, mode):
    for case in CASES:
        props = _props(records, "correct", mode, case)
        bad = {k: v for k, v in props.items() if v["verdict"] not in ("pass", "skipped")}
        assert not bad, (case, bad)
        autodiff = "pass" if mode == "eager" else "skipped"  # eager autodiff, checked once
        assert props["second_order"]["verdict"] == autodiff and props["forward_vs_reverse"]["verdict"] == autodiff
        assert props["shift_invariance"]["verdict"] == "pass"
