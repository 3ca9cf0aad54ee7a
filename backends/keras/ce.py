"""Keras 3 cross-entropy on its TensorFlow, JAX and torch backends: keras-tensorflow, keras-jax, keras-torch.

Keras picks its backend from KERAS_BACKEND when it is first imported, once per process; each of
these adapters runs in its own worker process and sets it in `load`, before `import keras` (a
process that already imported Keras with another backend gets a load error, never wrong results).

The APIs (from_logits=True), as a user calls them on tensors of the backend:
- keras.losses.SparseCategoricalCrossentropy / CategoricalCrossentropy, with their reductions
  (mean -> "sum_over_batch_size", sum -> "sum", none -> None), ignore_class and label_smoothing;
  computed in keras.config.floatx() (float32) unless constructed with dtype=: the `_dtype`
  implementations pass the case's dtype, the others keep the floatx default;
- keras.ops.sparse_categorical_crossentropy / categorical_crossentropy: per-row losses in the
  logits' dtype, reduced with keras.ops.mean / keras.ops.sum.
The LLM-training options are composed with keras.ops as a Keras user writes them (as the
tensorflow adapter does with tf ops; docs/llm-options.md): x = s * x; x = c * tanh(x / c); the
loss classes: their reduced loss + z times the reduced lse^2 of the kept rows; the ops: per-row
loss + z lse^2, then reduced. The gradient of v . loss comes from the backend's own autodiff:
tf.GradientTape (eager, tf.function, XLA), jax.vjp (eager, jax.jit), torch.autograd (eager,
torch.compile opt-in).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant, kind_adapter
from xentcheck.backends.keras import distill as keras_distill
from xentcheck.backends.keras import rl as keras_rl
from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs

_LLM = ("s", "cap", "z", "ct")  # logit scale, softcap, z-loss, upstream cotangent: composed around the call
_REDUCTION = {"mean": "sum_over_batch_size", "sum": "sum", "none": None}


@dataclass(frozen=True)
class _Api:
    """One Keras call. `dtype`: constructed with dtype= the case's dtype (a loss class), else its
    default. `from_logits`: what the call is given (False: probabilities, softmax(x), inside the
    differentiated function, so the gradient stays with respect to the logits)."""
    impl: str
    labels: tuple[str, ...]
    call: str
    options: tuple[str, ...]
    semantics: str
    sparse: bool
    ops: bool = False  # keras.ops function (per-row), else a keras.losses class
    dtype: bool = False
    from_logits: bool = True
    default: bool = False  # in the default suite (eager mode only)


_APIS = (  # the first that takes a label form is what compute() runs: the dtype= ones
    _Api("keras_sparse_cce_dtype", ("index",),
         "keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=DTYPE)",
         ("ign", "allign", *_LLM), "keras", sparse=True, dtype=True, default=True),
    _Api("keras_cce_dtype", ("onehot", "soft"), "keras.losses.CategoricalCrossentropy(from_logits=True, dtype=DTYPE)",
         ("ls", *_LLM), "keras", sparse=False, dtype=True, default=True),
    _Api("keras_sparse_cce", ("index",), "keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
         ("ign", "allign", *_LLM), "keras", sparse=True),
    _Api("keras_cce", ("onehot", "soft"), "keras.losses.CategoricalCrossentropy(from_logits=True)",
         ("ls", *_LLM), "keras", sparse=False),
    _Api("keras_ops_sparse_cce", ("index",), "keras.ops.sparse_categorical_crossentropy(labels, x, from_logits=True)",
         _LLM, "plain", sparse=True, ops=True),
    _Api("keras_ops_cce", ("onehot", "soft"), "keras.ops.categorical_crossentropy(labels, x, from_logits=True)",
         _LLM, "plain", sparse=False, ops=True),
    # fed softmax(x): Keras clips the probabilities (xentcheck.problems.ce.probs; semantics set per backend in variants())
    _Api("keras_sparse_cce_probs", ("index",),
         "keras.losses.SparseCategoricalCrossentropy(from_logits=False, dtype=DTYPE)(labels, softmax(x))",
         ("ign", "allign"), "keras_clip", sparse=True, dtype=True, from_logits=False),
    _Api("keras_cce_probs", ("onehot", "soft"),
         "keras.losses.CategoricalCrossentropy(from_logits=False, dtype=DTYPE)(labels, softmax(x))",
         ("ls",), "keras_clip", sparse=False, dtype=True, from_logits=False),
)
_BY_IMPL = {a.impl: a for a in _APIS}


class KerasBackend(Backend):
    """The Keras losses on one Keras backend (`keras_backend`); subclasses name it."""

    framework = "keras"
    keras_backend = ""
    impl = "keras_sparse_cce_dtype"
    extra_dims = True  # Keras takes any leading dimensions, classes last (axis=-1)
    modes: tuple[str, ...] = ("eager",)
    compiled: ClassVar[dict[str, str]] = {}  # mode -> how the call is wrapped, for `api`
    opt_in_modes: tuple[str, ...] = ()
    float64_hint = "Keras losses compute in keras.config.floatx() (float32) unless constructed with dtype='{dtype}'"

    def variants(self) -> list[Variant]:
        return [Variant(a.impl, m, a.labels, self.compiled.get(m, "{}").format(a.call), options=a.options,
                        semantics=self._semantics(a), default=a.default and m == "eager",
                        opt_in=m in self.opt_in_modes, takes="logits" if a.from_logits else "probs")
                for m in self.modes for a in _APIS] + keras_distill.variants(self) + keras_rl.variants(self)

    def _semantics(self, api: _Api) -> str:
        # On TensorFlow, keras.ops.softmax tags its output with the logits (`_keras_logits`) and the
        # from_logits=False losses compute from those (keras/src/backend/tensorflow/nn.py, _get_logits):
        # no clipping, the cross-entropy of the logits. On JAX and torch the probabilities are clipped.
        if api.semantics == "keras_clip" and self.keras_backend == "tensorflow":
            return "keras"
        return api.semantics

    def load(self) -> None:
        loaded = sys.modules.get("keras")
        if loaded is not None and loaded.backend.backend() != self.keras_backend:
            raise RuntimeError(f"keras is already imported with backend {loaded.backend.backend()!r} in this "
                               f"process; {self.name} needs its own process (KERAS_BACKEND={self.keras_backend})")
        os.environ["KERAS_BACKEND"] = self.keras_backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._load_framework()
        import keras
        if keras.backend.backend() != self.keras_backend:  # e.g. a keras.json that wins over the variable
            raise RuntimeError(f"keras runs on {keras.backend.backend()!r}, not {self.keras_backend!r}")
        self.keras = keras
        self._fns: dict = {}

    def _load_framework(self) -> None:
        """Import and configure the framework before Keras (x64, TF32...)."""

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version
        try:
            fw = version(self.framework_dist)
        except PackageNotFoundError:
            fw = "?"
        return f"{self.keras.__version__} ({self.keras_backend} {fw})"

    framework_dist = ""  # the backend framework's distribution, reported beside Keras's version

    def settings(self) -> dict:
        return {"keras_backend": self.keras.backend.backend(), "floatx": self.keras.config.floatx()}

    def release(self) -> None:
        self._fns.clear()  # each holds its traced or jitted function

    # --- the loss, as a Keras user writes it ---------------------------------------------------

    def _loss(self, api: _Api, case: Case, smoothing: float):
        """(x, labels) -> the loss of `api` on `case`, LLM options composed around it."""
        keras, ops = self.keras, self.keras.ops
        ignore = bool(case.option_set & {"ign", "allign"})
        reduction, scale, softcap, zloss = case.reduction, case.logit_scale, case.softcap, case.zloss
        base: Callable[..., Any]
        if api.ops:
            rows = ops.sparse_categorical_crossentropy if api.sparse else ops.categorical_crossentropy
            reduce = {"mean": ops.mean, "sum": ops.sum, "none": lambda r: r}[reduction]
            base = lambda x, labels, extra=None: reduce(  # noqa: E731
                rows(labels, x, from_logits=api.from_logits) + (0 if extra is None else extra))
        else:
            kw = {"dtype": case.dtype} if api.dtype else {}
            if api.sparse:
                obj = keras.losses.SparseCategoricalCrossentropy(
                    from_logits=api.from_logits, reduction=_REDUCTION[reduction],
                    ignore_class=IGNORE_INDEX if ignore else None, **kw)
            else:
                obj = keras.losses.CategoricalCrossentropy(from_logits=api.from_logits, reduction=_REDUCTION[reduction],
                                                           label_smoothing=smoothing, **kw)
            base = lambda x, labels: obj(labels, x)  # noqa: E731

        def fn(x, labels):
            if scale is not None:
                x = scale * x
            if softcap is not None:
                x = softcap * ops.tanh(x / softcap)
            if not api.from_logits:
                x = ops.softmax(x, axis=-1)
            if zloss is None:
                return base(x, labels)
            lse = ops.logsumexp(x, axis=-1)
            if api.ops:  # per-row loss + z lse^2, then the reduction
                return base(x, labels, zloss * lse ** 2)
            loss = base(x, labels)
            if ignore:  # ignored targets add no z-loss; Keras's mean divides by the kept rows (none kept: 0)
                kept = ops.not_equal(labels, IGNORE_INDEX)
                sq = ops.where(kept, lse, ops.zeros_like(lse)) ** 2
                count = ops.sum(ops.cast(kept, sq.dtype))
            else:
                sq = lse ** 2
                count = ops.cast(ops.size(sq), sq.dtype)
            zl = {"mean": lambda: ops.divide_no_nan(ops.sum(sq), count), "sum": lambda: ops.sum(sq),
                  "none": lambda: sq}[reduction]()
            return loss + ops.cast(zloss * zl, loss.dtype)  # the loss class may compute in floatx

        return fn

    def _value_and_grad(self, api: _Api, case: Case, mode: str, smoothing: float):
        """(x, labels, cotangent or None) -> (loss, d(v . loss)/dx), wrapped for `mode`, cached."""
        key = (api.impl, case.reduction, mode, smoothing, bool(case.option_set & {"ign", "allign"}), case.dtype,
               case.logit_scale, case.softcap, case.zloss)
        if key not in self._fns:
            self._fns[key] = self._autodiff(self._loss(api, case, smoothing), mode)
        return self._fns[key]

    def _autodiff(self, loss_fn, mode: str):
        raise NotImplementedError

    def _tensor(self, a: np.ndarray):
        return self.keras.ops.convert_to_tensor(a)

    def _numpy(self, t) -> tuple[np.ndarray, str]:
        a = self.keras.ops.convert_to_numpy(t)
        return np.asarray(a), str(self.keras.backend.standardize_dtype(t.dtype))

    def devices(self) -> list[str]:
        return ["cpu"]

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        adapter = kind_adapter("keras", variant.kind)
        if adapter is not None:
            return adapter.run(self, variant, case, inputs, device)
        api = _BY_IMPL[variant.impl]
        with self.keras.device("gpu:0" if device == "cuda" else "cpu:0"):
            f = self._value_and_grad(api, case, variant.mode, inputs.smoothing)
            ct = None if inputs.cotangent is None else self._tensor(inputs.cotangent)
            loss, grad = f(self._tensor(inputs.logits), self._tensor(inputs.labels), ct)
            (loss, loss_dtype), (grad, grad_dtype) = self._numpy(loss), self._numpy(grad)
        return Output(loss=loss, grad=grad, loss_dtype=loss_dtype, grad_dtype=grad_dtype)

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = next(v for v in self.variants() if case.labels in v.label_forms)
        return self.run_variant(v, case, inputs, device)


class KerasTensorflowBackend(KerasBackend):
    name = "keras-tensorflow"
    keras_backend = "tensorflow"
    framework_dist = "tensorflow"
    modes = ("eager", "function", "xla")
    compiled = {"function": "tf.function({})", "xla": "tf.function({}, jit_compile=True)"}

    def _load_framework(self) -> None:
        import tensorflow as tf
        tf.config.experimental.enable_tensor_float_32_execution(False)
        self.tf = tf

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.tf.config.list_physical_devices("GPU") else [])

    def _autodiff(self, loss_fn, mode: str):
        tf = self.tf

        def f(x, labels, cotangent=None):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(x, labels)
            v = tf.ones_like(loss) if cotangent is None else tf.cast(cotangent, loss.dtype)
            return loss, tape.gradient(loss, x, output_gradients=v)

        return f if mode == "eager" else tf.function(f, jit_compile=(mode == "xla"))

    def _numpy(self, t) -> tuple[np.ndarray, str]:
        return np.asarray(t.numpy()), t.dtype.name


class KerasJaxBackend(KerasBackend):
    name = "keras-jax"
    keras_backend = "jax"
    framework_dist = "jax"
    modes = ("eager", "jit")
    compiled = {"jit": "jax.jit({})"}

    def _load_framework(self) -> None:
        import jax
        jax.config.update("jax_enable_x64", True)  # float64 requests in float64 (this worker's own process)
        self.jax = jax

    def devices(self) -> list[str]:
        kinds = {d.platform for d in self.jax.devices()}
        return ["cpu"] + (["cuda"] if "gpu" in kinds or "cuda" in kinds else [])

    def settings(self) -> dict:
        return {**super().settings(), "jax_enable_x64": bool(self.jax.config.jax_enable_x64)}  # type: ignore[attr-defined]

    def release(self) -> None:
        super().release()
        self.jax.clear_caches()

    def _autodiff(self, loss_fn, mode: str):
        jax, jnp = self.jax, self.jax.numpy

        def f(x, labels, cotangent=None):
            loss, pull = jax.vjp(lambda z: loss_fn(z, labels), x)
            v = jnp.ones_like(loss) if cotangent is None else jnp.asarray(cotangent, loss.dtype)
            return loss, pull(v)[0]

        return f if mode == "eager" else jax.jit(f)


class KerasTorchBackend(KerasBackend):
    name = "keras-torch"
    keras_backend = "torch"
    framework_dist = "torch"
    modes = ("eager", "compile")
    compiled = {"compile": "torch.compile({})"}
    opt_in_modes = ("compile",)  # slow to compile, and Keras's Python breaks the graph

    def _load_framework(self) -> None:
        import torch
        self.torch = torch

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.torch.cuda.is_available() else [])

    def _autodiff(self, loss_fn, mode: str):
        torch = self.torch
        fwd = torch.compile(loss_fn, dynamic=False) if mode == "compile" else loss_fn

        def f(x, labels, cotangent=None):
            x = x.detach().requires_grad_(True)
            loss = fwd(x, labels)
            v = torch.ones_like(loss) if cotangent is None else cotangent.to(loss.dtype)
            (g,) = torch.autograd.grad(loss, x, grad_outputs=v, allow_unused=True)
            return loss.detach(), torch.zeros_like(x) if g is None else g  # no kept row: no path to x

        return f

    def _numpy(self, t) -> tuple[np.ndarray, str]:
        dtype = str(t.dtype).removeprefix("torch.")
        t = t.detach().cpu()
        return (t.float().numpy() if dtype == "bfloat16" else t.numpy()), dtype

    def _tensor(self, a: np.ndarray):
        if a.dtype.name == "bfloat16":  # torch cannot read ml_dtypes arrays: go through the bits
            return self.keras.ops.convert_to_tensor(self.torch.from_numpy(a.view(np.int16).copy()).view(self.torch.bfloat16))
        return self.keras.ops.convert_to_tensor(a)
