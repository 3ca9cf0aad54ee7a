"""Findings grouped by kind (report.md and report.html): every bad result counted in one group."""

from xentcheck.core.records import Result
from xentcheck.reports.kinds import group, kind


def _rec(backend, impl, mode, dtype, case_id, verdict, reason):
    return Result(backend=backend, impl=impl, mode=mode, dtype=dtype, case_id=case_id, verdict=verdict,
                  reasons=[reason])


def test_kind_drops_the_numbers_that_differ_between_cases():
    assert kind(_rec("t", "i", "eager", "float16", "c", "fail",
                     "gradient: 3 / 20 out of tolerance; greatest absolute difference 1e-3")) == "gradient: out of tolerance"
    assert kind(_rec("t", "i", "eager", "float16", "c", "nonfinite",
                     "loss: 1 / 1 NaN/inf where the reference differs, e.g. nan vs 2.0 at index []")) \
        == "loss: NaN/inf where the reference differs"
    assert kind(_rec("j", "i", "jit", "float32", "c", "fail",
                     "silently returned loss [nan] for an out-of-range class index (label 10 with K = 10)")) \
        == "silently returned loss [nan] for an out-of-range class index"
    assert kind(Result(verdict="crashed", reasons=[])) == "crashed"


def test_group_counts_every_bad_result_once_largest_first():
    wider = "loss computed in float32, requested float16"
    recs = [
        _rec("tf", "keras", "eager", "float16", "a_float16_2x3_index_mean", "fail", wider),
        _rec("tf", "keras", "xla", "float16", "b_float16_2x3_index_sum_opt-ign", "fail", wider),
        _rec("tf", "keras", "xla", "float16", "b_float16_2x3_index_sum_opt-ign", "pass", ""),
        _rec("jax", "optax", "jit", "float32", "c_float32_2x3_index_mean", "nonfinite",
             "loss: 1 / 1 NaN/inf where the reference differs, e.g. nan vs 1.0 at index []"),
        _rec("jax", "optax", "eager", "float64", "d_float64_0x3_index_mean", "skipped", "not run"),
    ]
    groups = group(recs)
    assert [(g["backend"], g["results"]) for g in groups] == [("tf", 2), ("jax", 1)]
    first = groups[0]
    assert first["modes"] == ["eager", "xla"] and first["options"] == ["ign", "none"]
    assert first["cases"] == ["a_float16_2x3_index_mean", "b_float16_2x3_index_sum_opt-ign"]
    assert sum(g["results"] for g in groups) == 3  # pass and skipped are not findings
