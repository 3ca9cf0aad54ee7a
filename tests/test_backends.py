"""Every adapter on the hand-checked case, through its framework's own autodiff."""

import importlib.util

import numpy as np
import pytest

from backends.registry import BUILTIN, create
from harness.cases import Case, Inputs

LOSS = 0.40760596444438
GRAD = [0.09003057317038, 0.24472847105479, -0.33475904422517]
FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
TOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-6, "float64": 1e-13}


@pytest.fixture(scope="module", params=list(BUILTIN))
def backend(request):
    name = request.param
    if importlib.util.find_spec(FRAMEWORK_MODULE[name]) is None:
        pytest.skip(f"{name} is not installed")
    b = create(name)
    b.load()
    return b


def _inputs(dtype: str, labels: str) -> tuple[Case, Inputs]:
    from harness.dtypes import info
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
