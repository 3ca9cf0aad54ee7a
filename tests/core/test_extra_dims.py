"""Extra dimensions (N, K, d1, ...) with each framework's class axis, and empty batches (N = 0)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, require, run_here
from tests.helpers.judge import judged
from xentcheck.backends.registry import BUILTIN, create
from xentcheck.core.cases import Case, Inputs, full_suite, make_inputs
from xentcheck.core.records import Result
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce import layout
from xentcheck.problems.ce.reference import reference

# Hand-checked: N = 1, K = 3, d1 = 2. Position 0 has logits [1, 2, 3] and class 2; position 1 has
# [0, 0, 0] and class 0. In torch's layout the logits are x[0, :, 0] = [1, 2, 3], x[0, :, 1] = 0.
HAND = Case("scale1e+0", "float64", 1, 3, "index", "mean", extra=(2,))
HAND_INPUTS = Inputs(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), np.array([2, 0]), np.array([2, 0]))
HAND_LOSS = 0.753109126556245  # (0.40760596444438 + log 3) / 2
HAND_GRAD = np.array([[0.045015286585190231, 0.12236423552739882, -0.167379522112589],  # (p - y) / 2
                      [1 / 6 - 0.5, 1 / 6, 1 / 6]])


def test_ids_shapes_and_rows():
    case = Case.from_id("scale1e+0_float32_4x10x3x2_soft_none")
    assert (case.n, case.k, case.extra, case.rows) == (4, 10, (3, 2), 24)
    assert case.shape == (4, 3, 2, 10) and case.loss_shape == (4, 3, 2) and case.dims == "4x10x3x2"
    assert case.id == "scale1e+0_float32_4x10x3x2_soft_none" and case.as_dict()["extra"] == [3, 2]
    inputs = make_inputs(case, 0)
    assert inputs.logits.shape == (24, 10) and inputs.labels.shape == (24, 10)
    shaped = layout.to_case(case, inputs)
    assert shaped.logits.shape == (4, 3, 2, 10) and np.shares_memory(shaped.logits, inputs.logits)
    empty = Case.from_id("masked_float16_0x7_index_mean")
    assert empty.rows == 0 and make_inputs(empty, 0).logits.shape == (0, 7)
    with pytest.raises(ValueError, match="out of range"):
        Case.from_id("scale1e+0_float32_0x7_index_mean_opt-oor")


def test_cotangent_reaches_the_backend_in_the_loss_shape():
    """A per-element cotangent (M,) arrives as (N, d1, ...), row for row; a scalar stays ()."""
    per_row = Case.from_id("scale1e+0_float32_4x10x3_index_none_opt-z1e-4+ct")
    inputs = make_inputs(per_row, 0)
    shaped = layout.to_case(per_row, inputs)
    assert shaped.cotangent.shape == (4, 3) and np.shares_memory(shaped.cotangent, inputs.cotangent)
    assert shaped.cotangent[1, 2] == inputs.cotangent[5] and np.count_nonzero(shaped.cotangent) > 6
    scalar = Case.from_id("scale1e+0_float32_4x10x3_index_sum_opt-ct1024")
    assert float(layout.to_case(scalar, make_inputs(scalar, 0)).cotangent) == 1024.0


def test_reference_on_extra_dimensions_is_hand_checked():
    ref = reference(HAND, HAND_INPUTS)
    assert float(ref.loss) == pytest.approx(HAND_LOSS, rel=1e-15)
    np.testing.assert_allclose(ref.grad, HAND_GRAD, rtol=1e-15, atol=1e-17)


MODULES = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
IN_PROCESS = [n for n in BUILTIN if not n.startswith("keras-")]  # Keras: one backend a process (test_keras_backend.py)


@pytest.mark.parametrize("name", IN_PROCESS)
def test_every_adapter_puts_the_class_axis_where_its_framework_wants_it(name):
    """torch gets (N, K, d1), TF and JAX (N, d1, K): every default API gives the hand-checked numbers
    (a class axis left in the wrong place would normalise over d1, or raise)."""
    pytest.importorskip(MODULES[name])
    backend = create(name)
    backend.load()
    v = next(v for v in backend.variants() if v.default and "index" in v.label_forms)
    out = layout.run(backend, v, HAND, HAND_INPUTS, "cpu")
    assert float(out.loss) == pytest.approx(HAND_LOSS, rel=1e-12)
    np.testing.assert_allclose(out.grad, HAND_GRAD, rtol=1e-12, atol=1e-15)
    # the unreduced loss comes back in the labels' shape (N, d1)
    none = Case("scale1e+0", "float64", 1, 3, "index", "none", extra=(2,))
    got = backend.run_variant(v, none, layout.to_case(none, HAND_INPUTS), "cpu")
    assert np.shape(got.loss) == (1, 2) and np.shape(got.grad) == (1, 2, 3)
    np.testing.assert_allclose(np.asarray(got.loss)[0], [0.40760596444438, 1.09861228866811], rtol=1e-12)


def test_numpy_adapter_on_extra_dimensions_equals_its_rows():
    """The same softmax rows, as (4, 3, 10) or as (12, 10): bit for bit the same numbers."""
    backend = create("numpy")
    case3 = Case("scale1e+1", "float32", 4, 10, "soft", "mean", extra=(3,))
    inputs = make_inputs(case3, 0)
    flat = Case("scale1e+1", "float32", 12, 10, "soft", "mean")
    a = layout.run(backend, backend.variants()[0], case3, inputs, "cpu")
    b = backend.run_variant(backend.variants()[0], flat, inputs.copy(), "cpu")
    assert a.loss.tobytes() == np.asarray(b.loss).tobytes() and a.grad.tobytes() == b.grad.tobytes()


def test_compare_checks_the_case_shape():
    ref = reference(HAND, HAND_INPUTS)
    good = judged(HAND, ref, np.array(HAND_LOSS), HAND_GRAD.reshape(1, 2, 3), None, None, Tolerances())
    assert good["verdict"] == "pass"
    rows_shaped = judged(HAND, ref, np.array(HAND_LOSS), HAND_GRAD, None, None, Tolerances())
    assert rows_shaped["verdict"] == "fail" and "gradient shape [2, 3], expected [1, 2, 3]" in rows_shaped["reasons"]


def test_empty_batch_reference_follows_each_api():
    for labels, red in (("index", "mean"), ("soft", "sum"), ("onehot", "none")):
        case = Case("scale1e+0", "float32", 0, 10, labels, red)
        inputs = make_inputs(case, 0)
        plain, keras = reference(case, inputs, "plain"), reference(case, inputs, "keras")
        assert plain.grad.shape == (0, 10) and plain.row_loss.shape == (0,)
        if red == "mean":  # a mean over nothing: NaN (torch, tf.reduce_mean, jnp.mean), Keras's 0
            assert np.isnan(plain.loss) and float(keras.loss) == 0.0
        elif red == "sum":
            assert float(plain.loss) == 0.0 == float(keras.loss)
        else:
            assert plain.loss.shape == (0,)


def test_full_suite_has_extra_dimensions_and_empty_batches_for_every_dtype():
    suite = full_suite()
    for dt in ("float16", "bfloat16", "float32", "float64"):
        mine = [c for c in suite if c.dtype == dt]
        assert {c.labels for c in mine if c.extra} >= {"index", "onehot", "soft"}
        assert any(len(c.extra) == 2 for c in mine) and any(c.extra and c.options for c in mine)
        assert {c.reduction for c in mine if c.n == 0} == {"mean", "sum", "none"}
        assert any(c.n == 0 and c.extra for c in mine)


def test_wrong_class_axis_is_caught_and_2d_plugins_skip_extra_dimensions(tmp_path):
    """A kernel normalising over the wrong axis passes on (N, K) and fails on (N, K, d1); a plugin
    that does not declare extra_dims gets those cases skipped, with the reason."""
    plugin = str(ROOT / "tests" / "helpers" / "toy_backends" / "wrong_class_axis.py")
    cases = ["--case", "scale1e+0_float32_5x4_soft_mean", "--case", "scale1e+0_float32_5x4x3_soft_mean"]
    r = run_here("run", "--backend-file", plugin, "--backend-file", str(ROOT / "examples" / "my_backend.py"),
                *cases, "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 1, r.stderr
    recs = {(x["backend"], x["case_id"]): x for x in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert recs[("wrong-class-axis", "scale1e+0_float32_5x4_soft_mean")]["verdict"] == "pass"
    assert recs[("wrong-class-axis", "scale1e+0_float32_5x4x3_soft_mean")]["verdict"] == "fail"
    assert recs[("online-softmax", "scale1e+0_float32_5x4_soft_mean")]["verdict"] == "pass"
    skipped = recs[("online-softmax", "scale1e+0_float32_5x4x3_soft_mean")]
    assert skipped["verdict"] == "skipped" and "extra_dims" in skipped["reasons"][0]


def test_keras_returns_an_unreduced_empty_loss_for_an_empty_batch(tmp_path):
    """End to end: torch, tf.nn and optax reduce an empty batch to a scalar (NaN mean, 0 sum); the Keras
    losses return the empty per-sample array instead, which the report calls a shape failure."""
    for module in ("torch", "tensorflow", "optax"):
        require(module)
    r = run_here("run", "--backends", "torch,tensorflow,jax,keras-tensorflow", "--impls",
                "cross_entropy_index,cross_entropy_probs,sparse_softmax_ce,softmax_ce,keras_sparse_cce,keras_cce,"
                "optax_sce_int,optax_sce", "--modes", "eager",
                "--case", "scale1e+0_float32_0x10_index_mean", "--case", "scale1e+0_float32_0x10_soft_sum",
                "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 1, r.stderr
    recs = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    verdicts = {(x["impl"], x["case_id"].split("_")[3]): (x["verdict"], x["reasons"]) for x in recs}
    for impl in ("cross_entropy_index", "sparse_softmax_ce", "optax_sce_int"):
        assert verdicts[(impl, "index")][0] == "pass"
    for impl in ("cross_entropy_probs", "softmax_ce", "optax_sce"):
        assert verdicts[(impl, "soft")][0] == "pass"
    for impl, labels in (("keras_sparse_cce", "index"), ("keras_cce", "soft")):
        assert verdicts[(impl, labels)] == ("fail", ["loss shape [0], expected []"])


def test_repro_script_for_an_extra_dimension_case_runs_torch_in_its_layout(tmp_path):
    require("torch")
    from xentcheck.regress import repro
    case = Case("scale1e+0", "float32", 2, 5, "soft", "none", extra=(3,))
    inputs = make_inputs(case, 0)
    record = Result.from_dict({**case.as_dict(), "backend": "torch", "impl": "cross_entropy_probs", "mode": "eager",
                               "seed": 0, "verdict": "fail", "reasons": ["test"]})
    _, script = repro.write(tmp_path, record, inputs, case, reference(case, inputs))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "logits 2x3x5" in out.stdout
    diffs = [float(line.rsplit(" ", 1)[1]) for line in out.stdout.splitlines() if "abs_diff" in line]
    assert len(diffs) == 2 and max(diffs) < 1e-6  # float32 agrees with the reference in its layout
