"""The properties under the LLM-training options, on hand cases: a careful implementation in the
dtype passes each property that holds (or is skipped with the table's reason), a variant built to
break it fails; and the table in docs/llm-options.md is the one PROPERTIES renders."""

from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.core.llm_emulation import careful
from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import info
from xentcheck.problems.ce.properties import (
    PROPERTIES,
    Context,
    Tol,
    _not_applicable,
    check_all,
    expected_row_sums,
    invariants_table,
)
from xentcheck.problems.ce.reference import reference


class Emulated:
    """A backend whose variants run tests.core.llm_emulation.careful, some broken (impl names)."""
    name = "emulated"
    float64_hint = ""

    def run_variant(self, variant, case, inputs, device):
        broken = None if variant.impl in ("careful", "careful_onehot") else variant.impl
        if variant.mode == "compiled" and broken == "compiled_drops_cap":
            case = replace(case, options="+".join(t for t in case.options.split("+") if not t.startswith("cap")))
            broken = None
        if broken == "onehot_drops_zloss":
            broken = None
            if case.labels == "onehot":
                case = replace(case, options="+".join(t for t in case.options.split("+") if not t.startswith("z")))
        if broken == "ct_ignored_in_mean":
            broken = None
            if case.reduction == "mean":
                inputs = inputs.copy()
                inputs.cotangent = np.ones_like(inputs.cotangent)
        loss, grad = careful(case, inputs, "torch", broken)
        return Output(loss=loss, grad=grad, loss_dtype=case.dtype, grad_dtype=case.dtype)


LLM = ("s", "cap", "z", "ct")
CAREFUL = [Variant("careful", "eager", ("index",), options=LLM, semantics="torch"),
           Variant("careful_onehot", "eager", ("onehot", "soft"), options=LLM, semantics="torch")]


def _check(name: str, case_id: str, impl: str = "careful", mode: str = "eager", onehot: str = "careful_onehot") -> dict:
    """The property `name` of variant (impl, mode) on the case; its partners: the eager mode of
    the same impl and a one-hot variant `onehot`."""
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    variant = Variant(impl, mode, ("index",), options=LLM, semantics="torch")
    variants = [variant, Variant(impl, "eager", ("index",), options=LLM, semantics="torch"),
                Variant(onehot, "eager", ("onehot", "soft"), options=LLM, semantics="torch")]
    base = Emulated().run_variant(variant, case, inputs, "cpu")
    eps = info(case.dtype).eps
    ctx = Context(Emulated(), variant, case, inputs, base, [], "cpu", Tol(8 * eps, 8 * eps, True), variants)
    reason = _not_applicable(PROPERTIES[name], ctx)
    return {"verdict": "skipped", "detail": reason} if reason else PROPERTIES[name].check(ctx)


# (property, case, the variant built to break it under that option)
HOLDS = [
    ("grad_row_sums", "scale1e+1_float32_16x10_index_mean_opt-z0.01", "zloss_grad_halved"),
    ("grad_row_sums", "scale1e+1_float32_16x10_index_none_opt-z1e-4+ct", "zloss_grad_halved"),
    ("grad_row_sums", "scale1e+1_float32_16x10_index_sum_opt-s3", "zloss_when_disabled"),
    ("grad_bounds", "scale1e+1_float32_16x10_index_none_opt-ct", "cotangent_first_row"),
    ("grad_bounds", "scale1e+1_float32_16x10_index_sum_opt-s0.5", "scale_missing_in_grad"),
    ("shift_invariance", "scale1e+1_float32_16x10_index_mean_opt-s0.5", "zloss_when_disabled"),
    ("shift_invariance", "scale1e+1_float32_16x10_index_none_opt-ct", "zloss_when_disabled"),
    ("mean_vs_sum", "scale1e+1_float32_16x10_index_mean_opt-ct0.3333333333333333", "ct_ignored_in_mean"),
    ("mean_vs_sum", "scale1e+1_float32_16x10_index_sum_opt-z1e-4+ct1024", "ct_ignored_in_mean"),
    ("int_vs_onehot", "scale1e+2_float32_16x10_index_mean_opt-z0.01", "onehot_drops_zloss"),
    ("eager_vs_compiled", "scale1e+2_float32_16x10_index_sum_opt-cap30", "compiled_drops_cap"),
    ("loss_nonnegative", "offset1e+4_float32_16x10_index_none_opt-z1e-4", "zloss_negated"),
    ("permutation_equivariance", "scale1e+1_float32_16x10_index_none_opt-cap30+ct", None),
]


@pytest.mark.parametrize("name,case_id,broken", HOLDS)
def test_careful_passes_and_broken_fails(name, case_id, broken):
    mode = "compiled" if name == "eager_vs_compiled" else "eager"
    got = _check(name, case_id, "careful", mode)
    assert got["verdict"] == "pass", got
    if broken is not None:
        bad = _check(name, case_id, "careful", mode, onehot=broken) if name == "int_vs_onehot" else \
            _check(name, case_id, broken, mode)
        assert bad["verdict"] == "fail", bad


SKIPS = [
    ("shift_invariance", "scale1e+1_float32_16x10_index_mean_opt-cap30", "does not hold under option cap"),
    ("shift_invariance", "scale1e+1_float32_16x10_index_mean_opt-z1e-4", "does not hold under option z"),
    ("shift_invariance", "scale1e+1_float32_16x10_index_mean_opt-s3", "s = 3 is not a power of two"),
    ("grad_row_sums", "scale1e+1_float32_16x10_index_mean_opt-cap30+z1e-4", "does not hold under option cap"),
    ("second_order", "scale1e+1_float32_16x10_index_mean_opt-s0.5", "does not hold under option s"),
    ("forward_vs_reverse", "scale1e+1_float32_16x10_index_none_opt-ct", "does not hold under option ct"),
    ("mean_vs_sum", "scale1e+1_float32_16x10_index_mean_opt-w+z1e-4", "assumes plain labels"),
]


@pytest.mark.parametrize("name,case_id,reason", SKIPS)
def test_skipped_with_the_reason(name, case_id, reason):
    got = _check(name, case_id)
    assert got["verdict"] == "skipped" and got["detail"].startswith(reason), got


def test_row_sums_under_the_z_loss_are_2_z_lse_over_d_z_times_s_and_v():
    # by hand: one row [0, log 3] (lse = log 4), z = 0.5, s = 2 (power of two), mean of 2 rows
    # with the second ignored: D_z = 1, so the row sums to s 2 z lse / D_z = 2 log 8... of o = s x
    case = Case("scale1e+0", "float64", 2, 2, "index", "mean", "ign+s2+z0.5+ct4")
    inputs = make_inputs(case, 0)
    inputs.logits = np.array([[0.0, np.log(3) / 2], [1.0, 2.0]])
    inputs.labels = np.array([0, -100])
    ref = reference(case, inputs, "torch")
    want = expected_row_sums(case, ref)
    np.testing.assert_allclose(want, [4 * 2 * 2 * 0.5 * np.log(4), 0.0], rtol=1e-15)
    np.testing.assert_allclose(ref.grad.sum(axis=1), want, rtol=1e-14)


def test_every_property_of_a_careful_run_passes_or_is_skipped():
    case = Case.from_id("scale1e+1_float32_16x10_index_sum_opt-s0.5+z1e-4+ct1024")
    inputs = make_inputs(case, 0)
    variant = CAREFUL[0]
    base = Emulated().run_variant(variant, case, inputs, "cpu")
    eps = info(case.dtype).eps
    out = check_all(Emulated(), variant, case, inputs, base, [], "cpu", Tol(8 * eps, 8 * eps, True), CAREFUL)
    assert {k: v["verdict"] for k, v in out.items() if v["verdict"] not in ("pass", "skipped")} == {}
    assert out["grad_row_sums"]["verdict"] == "pass" and "z-loss" in out["grad_row_sums"]["detail"]
    assert out["shift_invariance"]["verdict"] == "skipped"  # the z-loss
    assert out["mean_vs_sum"]["verdict"] == "pass" and out["grad_bounds"]["verdict"] == "pass"


def test_docs_table_is_the_one_the_properties_render():
    assert invariants_table() in (ROOT / "docs/llm-options.md").read_text()
