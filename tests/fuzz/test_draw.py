"""Drawing fuzz cases: deterministic, valid canonical ids, bounded, covering what the issue asks for."""

import math

from xentcheck.core.cases import ALL_LABEL_FORMS, OPTIONS, REDUCTIONS, Case, make_inputs
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.records import Result
from xentcheck.fuzz import draw
from xentcheck.fuzz.kinds import Findings, key_of, strip_numbers
from xentcheck.problems import PROBLEMS, problem_of
from xentcheck.problems.distill import cases as distill_cases
from xentcheck.problems.grpo import cases as grpo_cases
from xentcheck.problems.grpo import fuzz as grpo_fuzz
from xentcheck.problems.lindistill import cases as lindistill_cases
from xentcheck.problems.lindistill import fuzz as lindistill_fuzz
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
    assert {c.reduction for c in cases if c.kind not in ("distill", "grpo", "lindistill")} == set(REDUCTIONS)
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
        elif c.kind == "grpo":
            assert inputs.logits.shape == (c.n, *c.extra, c.k) and inputs.mask.shape == (c.n, *c.extra)
        elif c.kind == "lindistill":
            d = lindistill_cases.parse(c.spec).d
            assert inputs.student_hidden.shape == inputs.teacher_hidden.shape == (c.n, d)
            assert inputs.student_weight.shape == inputs.teacher_weight.shape == (c.k, d)
        elif c.linear:
            assert inputs.hidden.shape == (c.n, c.d) and inputs.weight.shape == (c.k, c.d)
        else:
            assert inputs.logits.shape == (c.rows, c.k)


def test_grpo_and_linear_distillation_cases_come_at_their_share_over_their_ranges():
    cases = draw.draw_cases(13, 0, 3000, ALL)
    grpo = [c for c in cases if c.kind == "grpo"]
    lkd = [c for c in cases if c.kind == "lindistill"]
    # 5 % each: 150 of 3000, a binomial's standard deviation 12
    assert 110 <= len(grpo) <= 190 and 110 <= len(lkd) <= 190, (len(grpo), len(lkd))
    for c in grpo + lkd:
        assert Case.from_id(c.id) == c and Case.from_id(c.id).id == c.id
        c.validate()
    specs = [grpo_cases.parse(c.spec) for c in grpo]
    assert {c.reduction for c in grpo} == set(grpo_cases.LOSS_TYPES) and {c.dtype for c in grpo} == set(ALL)
    assert any(s.eps_high > s.eps_low for s in specs) and any(s.eps_high < s.eps_low for s in specs)
    assert min(s.eps_low for s in specs) == grpo_cases.MIN_EPS and max(s.eps_low for s in specs) == 0.9
    assert max(s.eps_high for s in specs) == 10 and max(s.beta for s in specs) == 100
    assert 0.3 < sum(s.beta > 0 for s in specs) / len(specs) < 0.7
    assert {s.temperature for s in specs} >= {0.1, 1.0, 10.0}
    assert all(c.n * c.extra[0] * c.k <= grpo_fuzz.MAX_ELEMENTS for c in grpo)
    assert max(c.n for c in grpo) == 16 and max(c.extra[0] for c in grpo) >= 48 and min(c.extra[0] for c in grpo) == 1
    kds = [lindistill_cases.parse(c.spec) for c in lkd]
    assert {c.labels for c in lkd} == {"soft", "index"} and {c.reduction for c in lkd} == {"batchmean", "sum"}
    assert {k.kd.split("+")[0][:6] for k in kds} == {"kd-fkl", "kd-rkl", "kd-jsd"} and any("+sq" in k.kd for k in kds)
    for c, k in zip(lkd, kds):
        assert c.n * c.k <= lindistill_fuzz.MAX_LOGITS and c.k * k.d <= lindistill_fuzz.MAX_WEIGHTS
        assert c.n * c.k * k.d <= lindistill_fuzz.MAX_PRODUCT
        # dW entries stay above the dtype's subnormals (the comparison has no floor below them)
        t = distill_cases.parse(k.kd).temperature
        assert float(c.family[len("scale"):]) / t <= lindistill_fuzz.MAX_SCALE_OVER_T[c.dtype], c.id
    assert max(k.d for k in kds) > 256 and min(k.d for k in kds) < 8


def test_every_kind_with_a_draw_takes_its_share_in_the_draw_order():
    """Kinds given a share in draw version 2 take it after version 1's, so that version 1's kinds
    keep their cases (only plain cases change kind); no kind is newer than the draw."""
    since = {k: p.fuzz_since for k, p in PROBLEMS.items() if p.fuzz_draw is not None}
    assert since == {"linear": 1, "distill": 1, "rl": 1, "lindistill": 2, "grpo": 2}
    assert max(since.values()) <= draw.DRAW_VERSION == 2
    assert PROBLEMS["grpo"].fuzz_share == PROBLEMS["lindistill"].fuzz_share == 0.05


def test_small_drawn_grpo_and_linear_distillation_cases_get_a_finite_reference():
    cases = [c for c in draw.draw_cases(17, 0, 600, ["float32", "float64"]) if c.kind in ("grpo", "lindistill")]
    small = [c for c in cases if c.n * c.k * (c.extra[0] if c.extra else 64) <= 50_000][:12]
    assert {c.kind for c in small} == {"grpo", "lindistill"}
    for c in small:
        inputs = make_inputs(c, 17)
        ref = problem_of(c).reference(c, inputs, "plain")
        outputs = ("loss", "grad") if c.kind == "grpo" else ("loss", "dh", "dw")
        for name in outputs:
            assert math.isfinite(float(abs(ref.get(name)).sum())), (c.id, name)


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
