"""Every adapter on the hand-checked case, through its framework's own autodiff."""

import importlib.util

import numpy as np
import pytest

from xentcheck.backends.registry import BUILTIN, create
from xentcheck.core.cases import Case, Inputs

LOSS = 0.40760596444438
GRAD = [0.09003057317038, 0.24472847105479, -0.33475904422517]
FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
IN_PROCESS = [n for n in BUILTIN if not n.startswith("keras-")]  # Keras: one backend a process (test_keras_backend.py)
TOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-6, "float64": 1e-13}


@pytest.fixture(scope="module", params=IN_PROCESS)
def backend(request):
    name = request.param
    if importlib.util.find_spec(FRAMEWORK_MODULE[name]) is None:
        pytest.skip(f"{name} is not installed")
    b = create(name)
    b.load()
    return b


def _inputs(dtype: str, labels: str) -> tuple[Case, Inputs]:
    from xentcheck.core.dtypes import info
    t = info(dtype).np_type
    case = Case("scale1e+0", dtype, 1, 3, labels, "mean")
    x = np.array([[1, 2, 3]], dtype=t)
    lab = np.array([2]) if labels == "index" else np.array([[0, 0, 1]], dtype=t)
    return case, Inputs(x, lab, np.array([2]))


@pytest.mark.parametrize("labels", ["index", "onehot", "soft"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_hand_checked_case(backend, dtype, labels):
    case, inputs = _inputs(dtype, labels)
    out = backend.compute(case, inputs, "cpu")
    assert np.asarray(out.loss).shape == ()
    assert np.asarray(out.grad).shape == (1, 3)
    assert (out.loss_dtype or np.asarray(out.loss).dtype.name) == dtype
    assert (out.grad_dtype or np.asarray(out.grad).dtype.name) == dtype
    assert float(np.asarray(out.loss, dtype=np.float64)) == pytest.approx(LOSS, rel=TOL[dtype])
    np.testing.assert_allclose(np.asarray(out.grad, dtype=np.float64), [GRAD], rtol=TOL[dtype], atol=TOL[dtype] / 10)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions_and_gradient_of_the_sum(backend, reduction):
    x = np.array([[0.2, 0.3, 0.5], [0.5, 0.2, 0.3]])
    t = np.array([2, 1])
    case = Case("scale1e+0", "float64", 2, 3, "index", reduction)
    out = backend.compute(case, Inputs(x, t, t), "cpu")
    rows = np.log(np.exp(x).sum(axis=1)) - x[[0, 1], t]
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    expected_loss = rows.sum() if reduction == "sum" else rows
    np.testing.assert_allclose(np.asarray(out.loss), expected_loss, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(out.grad), p - np.eye(3)[t], rtol=1e-12, atol=1e-15)


def test_describes_itself(backend):
    assert backend.version()
    assert "cpu" in backend.devices()
    assert set(backend.dtypes) == {"float16", "bfloat16", "float32", "float64"}
    assert isinstance(backend.settings(), dict)


def test_every_implementation_and_mode_on_the_hand_checked_case(backend):
    """Each API x mode (torch.compile aside: minutes on a CPU) gives the seed numbers in float64."""
    for v in backend.variants():
        if v.opt_in or v.kind != "ce":  # linear-CE variants take hidden states: tests/backends/test_linear_*
            continue
        for labels in v.label_forms:
            case, inputs = _inputs("float64", labels)
            out = backend.run_variant(v, case, inputs, "cpu")
            tol = 1e-11
            assert float(np.asarray(out.loss, dtype=np.float64)) == pytest.approx(LOSS, rel=tol), (v, labels)
            np.testing.assert_allclose(np.asarray(out.grad, dtype=np.float64), [GRAD], rtol=tol, err_msg=str(v))


def test_forward_mode_and_second_order(backend):
    v = backend.variants()[0]
    case, inputs = _inputs("float64", v.label_forms[0])
    tangent = np.array([[0.5, -1.0, 2.0]])
    try:
        jvp = backend.jvp(v, case, inputs, "cpu", tangent)
        hvp = backend.hvp(v, case, inputs, "cpu", tangent)
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no forward/second-order autodiff")
    assert float(jvp) == pytest.approx(float(np.dot(GRAD, tangent[0])), rel=1e-12)
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    expected = p * tangent[0] - p * np.dot(p, tangent[0])
    np.testing.assert_allclose(np.asarray(hvp)[0], expected, rtol=1e-11)


def test_variant_selection():
    from xentcheck.run.plan import select_variants
    vs = [{"impl": "a", "mode": "eager", "default": True}, {"impl": "b", "mode": "eager", "default": False},
          {"impl": "a", "mode": "jit", "default": False}, {"impl": "a", "mode": "compile", "default": False, "opt_in": True}]
    names = lambda sel: [(v["impl"], v["mode"]) for v in sel]
    assert names(select_variants(vs, "default", None, None)) == [("a", "eager")]
    assert names(select_variants(vs, "full", None, None)) == [("a", "eager"), ("b", "eager"), ("a", "jit")]
    assert names(select_variants(vs, "default", ["a"], None)) == [("a", "eager"), ("a", "jit")]
    assert names(select_variants(vs, "default", None, ["compile"])) == [("a", "compile")]
