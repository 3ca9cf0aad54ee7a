"""Every built-in linear-CE variant, in every mode (JAX's jit, TensorFlow's tf.function and XLA
included), passes small linear-CE cases against the linear reference, in this process."""

import importlib.util

import pytest

from xentcheck.backends.registry import BUILTIN, create
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.evaluate import Subject, evaluate
from xentcheck.core.linear_reference import linear_reference
from xentcheck.core.tolerances import Tolerances
from xentcheck.run.worker import output_of

FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
CASES = ("scale1e+0_float32_16x100_lin16_index_mean_opt-b", "scale1e+0_float16_16x100_lin16_index_sum_opt-b",
         "scale1e+1_float64_12x50_lin8_index_none_opt-ct+b", "dominant_bfloat16_8x300_lin32_index_mean")


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_linear_variant_and_mode_passes_small_cases(name):
    if importlib.util.find_spec(FRAMEWORK_MODULE[name]) is None:
        pytest.skip(f"{name} is not installed")
    backend = create(name)
    backend.load()
    variants = [v for v in backend.variants() if v.kind == "linear"]
    modes = {v.mode for v in variants}
    assert modes == {"numpy": {"eager"}, "torch": {"eager"}, "jax": {"eager", "jit"},
                     "tensorflow": {"eager", "function", "xla"}}[name]
    for case_id in CASES:
        case = Case.from_id(case_id)
        inputs = make_inputs(case, 0)
        for v in variants:
            out = output_of(backend, v, case, inputs, "cpu")
            r = evaluate(case, Subject(name, v.impl, v.mode), out, Tolerances(),
                         reference=lambda c=case, x=inputs, s=v.semantics: linear_reference(c, x, s))
            assert r.verdict == "pass", (name, v.impl, v.mode, case_id, r.reasons)
            assert r.dh.size == case.n * case.d and (r.db is not None) == ("b" in case.option_set)
