"""Drawing fuzz cases: deterministic, valid canonical ids, bounded, covering what the issue asks for."""

import math

from xentcheck.core.cases import ALL_LABEL_FORMS, OPTIONS, REDUCTIONS, Case, make_inputs
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.records import Result
from xentcheck.fuzz import draw
from xentcheck.fuzz.kinds import Findings, key_of, strip_numbers
from xentcheck.problems.linear import fuzz as linear_fuzz

ALL = list(DTYPE_NAMES)


def _prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))


def test_the_same_seed_gives_the_same_cases_and_any_index_can_be_drawn_alone():
    a = draw.draw_cases(7, 0, 300, ALL)
    assert [c.id for c in a] == [c.id for c in draw.draw_cases(7, 0, 300, ALL)]
    # case i depends on (seed, i) only: batches and resumed campaigns draw the same ones
    assert [c.id for c in draw.draw_cases(7, 120, 30, ALL)] == [c.id for c in a[120:150]]
    other = draw.draw_cases(8, 0, 300, ALL)
    assert sum(x.id == y.id for x, y in zip(a, other)) < 5


def test_drawn_ids_parse_round_trip_and_stay_bounded():
    cases = draw.draw_cases(3, 0, 1500, ALL)
    for c in cases:
        assert Case.from_id(c.id) == c and Case.from_id(c.id).id == c.id
        assert c.rows * c.k <= draw.MAX_ELEMENTS and 2 <= c.k <= draw.MAX_K
    assert max(c.k for c in cases) == draw.MAX_K  # K up to 256k ...
    assert all(c.n <= 1 for c in cases if c.k == draw.MAX_K)  # ... with N = 1
    ks = [c.k for c in cases]
    assert sum(_prime(k) and k > 1000 for k in ks) >= 20  # large prime K
    assert sum(k & (k - 1) != 0 and k > 1000 for k in ks) >= 100  # not powers of two
    assert sum(c.n == 1 for c in cases) >= 150 and sum(c.n == 0 for c in cases) >= 20
    assert sum(bool(c.extra) for c in cases) >= 50


def test_the_draw_covers_every_family_label_form_reduction_option_and_dtype():
    cases = draw.draw_cases(11, 0, 1500, ALL)
    families = {draw.token_name(c.family) for c in cases}
    assert families == {"scale", "offset", "neartie", "dominant", "masked", "rowmasked", "posinf", "nan", "nearmax"}
    assert {c.labels for c in cases} == set(ALL_LABEL_FORMS)
    assert {c.reduction for c in cases if c.kind != "distill"} == set(REDUCTIONS)
    assert {c.dtype for c in cases} == set(ALL)
    assert set().union(*(c.option_set for c in cases)) == set(OPTIONS)
    assert sum(len(c.option_set) >= 3 for c in cases) >= 50  # combinations, not one option at a time
    linear = [c for c in cases if c.linear]
    assert 100 <= len(linear) <= 400 and all(c.k * c.d <= linear_fuzz.WEIGHT_ELEMENTS for c in linear)
    assert {draw.token_name(c.family) for c in linear} == {"scale", "offset", "dominant", "neartie"}
    distill = [c for c in cases if c.kind == "distill"]
    assert 75 <= len(distill) <= 300 and {c.reduction for c in distill} == {"batchmean", "sum", "mean", "none"}
    assert {c.spec.split("+")[0][:6] for c in distill} == {"kd-fkl", "kd-rkl", "kd-jsd"}
    assert any(c.cotangent_rows for c in cases) and any(c.cotangent is not None for c in cases)
    scales = [float(c.family[5:]) for c in cases if c.family.startswith("scale")]
    assert min(scales) < 1e-10 and max(scales) > 1e20  # tiny (ties after rounding) and huge
    # only the asked-for dtypes
    assert {c.dtype for c in draw.draw_cases(11, 0, 200, ["bfloat16"])} == {"bfloat16"}


def test_drawn_cases_make_inputs():
    """A sample of drawn cases (the small ones) generate inputs of their shape."""
    for c in [c for c in draw.draw_cases(5, 0, 200, ALL) if c.rows * c.k <= 5000][:40]:
        inputs = make_inputs(c, 5)
        if c.kind == "distill":
            assert inputs.student.shape == inputs.teacher.shape == (c.n, c.k)
        elif c.linear:
            assert inputs.hidden.shape == (c.n, c.d) and inputs.weight.shape == (c.k, c.d)
        else:
            assert inputs.logits.shape == (c.rows, c.k)


def test_numbers_are_stripped_from_kinds_but_words_keep_theirs():
    a = ("gradient: 3 / 16 out of tolerance; greatest absolute difference 0.5, relative 1.2e-03, 4 ULP; "
         "worst at index [3, 4]: nan vs -inf (allowed rtol 4.77e-07, atol 0)")
    b = ("gradient: 1 / 262144 out of tolerance; greatest absolute difference 2e+03, relative 7, 1e+09 ULP; "
         "worst at index [0]: 1.0 vs 0.25 (allowed rtol 0.0078, atol 0.0078)")
    assert strip_numbers(a) == strip_numbers(b) == (
        "gradient: # / # out of tolerance; greatest absolute difference #, relative #, # ULP; "
        "worst at index [#]: # vs # (allowed rtol #, atol #)")
    assert strip_numbers("loss computed in float32, requested float16") == \
        "loss computed in float32, requested float16"  # dtype names are not numbers
    assert strip_numbers("loss shape (16,) expected ()") == "loss shape (#) expected ()"
    assert strip_numbers("loss: 2 / 9 NaN/inf where the reference differs, e.g. inf vs 3.4e+307") == \
        "loss: # / # NaN/inf where the reference differs, e.g. # vs #"


def test_kinds_dedupe_by_backend_impl_mode_and_stripped_reasons():
    def rec(case_id, reasons, backend="torch", mode="eager", verdict="fail"):
        return Result(case_id=case_id, backend=backend, impl="cross_entropy", mode=mode, verdict=verdict,
                      reasons=reasons)

    big, small = "scale1e+0_float32_64x100_index_mean", "scale1e+0_float32_2x3_index_mean"
    f = Findings()
    assert f.add(rec(big, ["loss: 1 / 1 out of tolerance, 3.5 ULP"]), "b0", "r1") is not None
    assert f.add(rec(small, ["loss: 1 / 1 out of tolerance, 120 ULP"]), "b1", "r2") is None  # same kind
    assert f.add(rec(big, ["loss: 1 / 1 out of tolerance, 3.5 ULP"]), "b0", "r1") is None  # counted once
    assert f.add(rec(small, ["loss: 1 / 1 out of tolerance, 1 ULP"], mode="jit"), "b1", "r3") is not None
    assert f.add(rec(small, ["loss: 1 / 1 out of tolerance, 1 ULP"], verdict="pass"), "b1", "r4") is None
    assert f.add(rec(small, [f"refused case {small}"], verdict="error"), "b1", "r5") is not None
    assert f.add(rec(big, [f"refused case {big}"], verdict="error"), "b1", "r6") is None  # its own id left out
    kinds = f.to_list()
    assert len(kinds) == 3
    first = kinds[0]
    assert first["cases"] == [big, small] and first["smallest"]["case_id"] == small and first["first"]["case_id"] == big
    assert key_of(rec(big, ["x 1"])) == "torch cross_entropy eager fail: x #"
    # report.md's wording: the first reason's first clause, counts out
    assert key_of(rec(big, ["gradient: 8 / 146632 out of tolerance; greatest absolute difference 6.6e-05", "y"])) == \
        "torch cross_entropy eager fail: gradient: out of tolerance"
