"""One output shape: a backend returns Output(loss, grads={name: array}), keyed by its kind's
declared outputs. The older forms still load: Output(loss, grad) for a plain case (its shorthand),
LinearOutput(loss, dh, dw, db) with a DeprecationWarning, a plugin's own object with one attribute
per gradient, and the one-file module paths of the built-in backends."""

import importlib
import sys

import numpy as np
import pytest

from xentcheck.backends.base import LinearOutput, Output, named_grads
from xentcheck.core.cases import Case
from xentcheck.run.worker import output_of


def test_grad_is_the_plain_kinds_named_gradient():
    g = np.arange(6.0).reshape(2, 3)
    for out in (Output(np.float32(1.5), g), Output(loss=np.float32(1.5), grads={"grad": g})):
        assert list(out.grads) == ["grad"] and out.grad is g and float(out.loss) == 1.5
    out = Output(np.float32(1.5), g)
    out.grad = g * 2  # layout.to_rows and the property checks reassign it
    assert out.grads["grad"][1, 2] == 10.0
    with pytest.raises(TypeError, match="one of the two"):
        Output(np.float32(1.5))
    with pytest.raises(TypeError, match="one of the two"):
        Output(np.float32(1.5), g, grads={"grad": g})


def test_linear_output_warns_and_is_the_same_record():
    dh, dw, db = np.full((2, 4), 0.25), np.full((3, 4), -0.5), np.array([1.0, 2.0, 3.0])
    with pytest.warns(DeprecationWarning, match='Output\\(loss, grads='):
        old = LinearOutput(loss=np.float64(2.0), dh=dh, dw=dw, db=db, grad_dtype="float64")
    assert isinstance(old, Output) and list(old.grads) == ["dh", "dw", "db"]
    assert old.dh is dh and old.dw is dw and old.db is db and old.grad_dtype == "float64"
    with pytest.warns(DeprecationWarning):
        no_bias = LinearOutput(np.float64(2.0), dh, dw)
    new = Output(np.float64(2.0), grads={"dh": dh, "dw": dw, "db": None})  # None: left out
    assert list(no_bias.grads) == list(new.grads) == ["dh", "dw"] and no_bias.db is None


def test_named_grads_reads_a_plugins_own_object_by_attribute():
    class Mine:  # not an Output: what a plugin may have returned before
        loss, dh, dw, db = np.float32(0.5), np.ones((2, 4)), np.zeros((3, 4)), None

    got = named_grads(Mine(), ("dh", "dw", "db"))
    assert list(got) == ["dh", "dw"] and got["dh"].sum() == 8.0
    out = Output(np.float32(0.5), grads={"dh": np.ones(1), "dw": np.ones(1)})
    assert named_grads(out, ("dh", "dw", "db")) is out.grads


def test_builtin_linear_variants_return_named_gradients():
    """numpy's linear-CE variant through the worker: dh, dw and db, under their declared names."""
    from xentcheck.backends.registry import create
    from xentcheck.problems import problem_of
    backend = create("numpy")
    backend.load()
    case = Case.from_id("scale1e+0_float64_4x8_lin5_index_mean_opt-b")
    v = next(v for v in backend.variants() if v.kind == "linear")
    out = output_of(backend, v, case, problem_of(case).make_inputs(case, 0), "cpu")
    assert out.status == "ok", out.error
    assert sorted(out.grads or {}) == ["db", "dh", "dw"]
    assert out.grads["dh"].shape == (4, 5) and out.grads["dw"].shape == (8, 5) and out.grads["db"].shape == (8,)
    # sum over classes of the CE gradient is 0 per row, so db (its sum over rows) sums to 0
    assert abs(float(out.grads["db"].sum())) < 1e-12 and np.abs(out.grads["db"]).max() > 1e-3


@pytest.mark.parametrize("old,new,cls", [
    ("numpy_backend", "numpy.ce", "NumpyBackend"), ("torch_backend", "torch.ce", "TorchBackend"),
    ("tensorflow_backend", "tensorflow.ce", "TensorflowBackend"), ("jax_backend", "jax.ce", "JaxBackend"),
    ("keras_backend", "keras.ce", "KerasJaxBackend"), ("triton_interpret", "torch.triton_interpret", "interpreter_shims"),
])
def test_the_old_module_paths_warn_and_give_the_moved_objects(old, new, cls, monkeypatch):
    monkeypatch.delitem(sys.modules, f"xentcheck.backends.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=f"is now xentcheck.backends.{new}"):
        module = importlib.import_module(f"xentcheck.backends.{old}")
    assert getattr(module, cls) is getattr(importlib.import_module(f"xentcheck.backends.{new}"), cls)
