"""The discrepancy matrix: pairwise differences on the shared sample, and who is blamed."""

import pytest

from tests.helpers.report_records import record
from xentcheck.reports import blame

CASE = "scale1e+0_float32_16x10_index_mean"


def test_pairwise_difference_is_the_difference_of_signed_errors():
    recs = [record(CASE, "a", 0.0), record(CASE, "b", 2.0), record(CASE, "c", -3.0)]
    m = blame.build(recs)
    grad = m["outputs"]["grad"]
    # a is the reference rounded: |b - a| is about 2 ULP and |b - c| about 5 ULP on every sampled element
    # (ULPs at max(|ref|, scale) can be fewer than the element's own ULPs, never more)
    assert 0 < grad["pairs"]["a"]["b"]["max"] <= 2 + 1e-9
    assert grad["pairs"]["b"]["c"]["max"] == pytest.approx(grad["pairs"]["a"]["b"]["max"] * 2.5, rel=0.35)
    assert grad["pairs"]["a"]["b"]["cases"] == 1
    assert grad["pairs"]["a"]["b"] is grad["pairs"]["b"]["a"]


def test_blame_names_the_backend_furthest_from_the_reference():
    recs = [record(c, b, u) for c in (CASE, "scale1e+2_float32_3x5_soft_sum") for b, u in (("a", 0), ("b", 1), ("c", 6))]
    m = blame.build(recs)
    for what in ("loss", "grad"):
        assert m["outputs"][what]["blame"] == "c"
        assert m["outputs"][what]["ranking"][-1] == "a"
    assert "c is furthest from the reference" in blame.blame_sentence(m, "grad")


def test_nonfinite_sample_counts_as_disagreement_not_as_a_number():
    recs = [record(CASE, "a", 0.0), record(CASE, "b", 0.0, nan=True)]
    loss = blame.build(recs)["outputs"]["loss"]["pairs"]["a"]["b"]
    assert loss["nonfinite_disagreements"] == 1 and loss["n"] == 0
