"""TensorFlow: tf.nn cross-entropy through tf.GradientTape; eager, tf.function, XLA.

tf.nn ops return per-row losses (mean and sum are tf.reduce_mean / tf.reduce_sum). Keras's
losses on TensorFlow are the keras-tensorflow backend's (keras/ce.py).
The LLM-training options are composed as a user writes them, inside the traced function under
tf.function and XLA (docs/llm-options.md): x = s * x; x = c * tf.tanh(x / c); per-row
loss + z * tf.reduce_logsumexp(x, -1)**2, then reduced. The gradient is
tape.gradient(loss, x, output_gradients=v), v the case's cotangent (ones without option "ct").
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant, kind_adapter
from xentcheck.core.cases import Case, Inputs

_DENSE_DOC = "labels must be a valid probability distribution (tf.nn.softmax_cross_entropy_with_logits)"
_LLM = ("s", "cap", "z", "ct")  # logit scale, softcap, z-loss, upstream cotangent: composed around the call
_IMPLS = (  # name, label forms, call, in the default suite, documented deviation, options, semantics
    ("sparse_softmax_ce", ("index",), "tf.nn.sparse_softmax_cross_entropy_with_logits", True, "", _LLM, "plain"),
    ("softmax_ce", ("onehot", "soft", "unnorm"), "tf.nn.softmax_cross_entropy_with_logits", True, _DENSE_DOC, _LLM, "plain"),
    ("log_softmax_ce", ("onehot", "soft", "unnorm"), "-tf.reduce_sum(labels * tf.nn.log_softmax(x), -1)", False, "",
     _LLM, "plain"),
    ("softmax_log_ce", ("onehot", "soft", "unnorm"), "-tf.reduce_sum(labels * tf.math.log(tf.nn.softmax(x)), -1)",
     False, "", _LLM, "plain"),
)
# what the written-out losses are fed (backends/base.py: Variant.takes); the others take logits
_TAKES = {"log_softmax_ce": "logprobs", "softmax_log_ce": "probs"}
_MODES = ("eager", "function", "xla")


class TensorflowBackend(Backend):
    name = "tensorflow"
    framework = "tensorflow"
    impl = "sparse_softmax_ce"
    extra_dims = True  # tf.nn takes any leading dimensions, classes last (axis=-1)

    def variants(self) -> list[Variant]:
        return [Variant(i, m, lf, api if m == "eager" else f"tf.function({api}{', jit_compile=True' if m == 'xla' else ''})",
                        documented=doc, default=d and m == "eager", options=o, semantics=sem, takes=_TAKES.get(i, "logits"))
                for m in _MODES for i, lf, api, d, doc, o, sem in _IMPLS] + _linear_variants()

    def load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        self.tf = tf
        tf.config.experimental.enable_tensor_float_32_execution(False)
        self._fns: dict = {}

    def version(self) -> str:
        return self.tf.__version__

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.tf.config.list_physical_devices("GPU") else [])

    def release(self) -> None:
        self._fns.clear()  # the tf.functions, with their traced graphs and XLA programs

    def settings(self) -> dict:
        tf = self.tf
        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(default)"),
                **{f"build_{k}": v for k, v in tf.sysconfig.get_build_info().items()
                   if k in ("cuda_version", "cudnn_version", "is_cuda_build", "is_rocm_build")}}

    def _loss(self, impl: str, reduction: str, llm: tuple[float | None, float | None, float | None] = (None, None, None)):
        """The loss function (x, labels) -> loss; `llm`: the case's (scale, softcap, zloss)."""
        base = self._base_loss(impl, reduction)
        scale, softcap, zloss = llm
        if scale is None and softcap is None and zloss is None:
            return base
        tf = self.tf

        def fn(x, labels):
            if scale is not None:
                x = scale * x
            if softcap is not None:
                x = softcap * tf.tanh(x / softcap)
            if zloss is None:
                return base(x, labels)
            lse = tf.reduce_logsumexp(x, axis=-1)
            return base(x, labels, lambda rows: rows + zloss * lse ** 2)  # per-row loss + z lse^2, then reduced

        return fn

    def _base_loss(self, impl: str, reduction: str):
        tf = self.tf
        op = (tf.nn.sparse_softmax_cross_entropy_with_logits if impl == "sparse_softmax_ce"
              else tf.nn.softmax_cross_entropy_with_logits)
        if impl in _TAKES:  # written out as users write them, through (log-)probabilities
            logp = tf.nn.log_softmax if impl == "log_softmax_ce" else lambda x: tf.math.log(tf.nn.softmax(x))
            op = lambda labels, logits: -tf.reduce_sum(labels * logp(logits), axis=-1)  # noqa: E731
        reduce = {"mean": tf.reduce_mean, "sum": tf.reduce_sum, "none": lambda r: r}[reduction]
        return lambda x, labels, per_row=lambda r: r: reduce(per_row(op(labels=labels, logits=x)))

    def _compiled(self, key: tuple, mode: str, build: Callable[[], Callable]) -> Callable:
        """The function build() makes, made once per key and kept (release() drops them): as it is
        in eager mode, under tf.function in "function", with jit_compile=True in "xla"."""
        if key not in self._fns:
            f = build()
            self._fns[key] = f if mode == "eager" else self.tf.function(f, jit_compile=(mode == "xla"))
        return self._fns[key]

    def _value_and_grad(self, impl: str, reduction: str, mode: str, llm: tuple = (None, None, None)):
        def build():
            tf, loss_fn = self.tf, self._loss(impl, reduction, llm)

            def f(x, labels, cotangent=None):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = loss_fn(x, labels)
                v = tf.ones_like(loss) if cotangent is None else tf.cast(cotangent, loss.dtype)
                return loss, tape.gradient(loss, x, output_gradients=v)

            return f

        return self._compiled((impl, reduction, mode, llm), mode, build)

    def _device(self, device: str) -> str:
        return "/GPU:0" if device == "cuda" else "/CPU:0"

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        adapter = kind_adapter("tensorflow", variant.kind)
        if adapter is not None:
            return adapter.run(self, variant, case, inputs, device)
        tf = self.tf
        with tf.device(self._device(device)):
            f = self._value_and_grad(variant.impl, case.reduction, variant.mode, _llm(case))
            ct = None if inputs.cotangent is None else tf.constant(inputs.cotangent)
            loss, grad = f(tf.constant(inputs.logits), tf.constant(inputs.labels), ct)
        return Output(loss=np.asarray(loss.numpy()), grad=np.asarray(grad.numpy()),
                      loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict | None:
        if variant.kind != "ce":  # another kind's variant (linear-CE): forward+backward through run_variant
            return None
        tf = self.tf
        # reading one element back waits for the op that made it (GPU kernels run asynchronously)
        done = lambda v: v[(0,) * v.shape.rank].numpy()  # noqa: E731
        with tf.device(self._device(device)):
            x, labels = tf.constant(inputs.logits), tf.constant(inputs.labels)
            loss_fn = self._loss(variant.impl, case.reduction, _llm(case))
            fwd = loss_fn if variant.mode == "eager" else tf.function(loss_fn, jit_compile=(variant.mode == "xla"))
            both = self._value_and_grad(variant.impl, case.reduction, variant.mode, _llm(case))
            ct = None if inputs.cotangent is None else tf.constant(inputs.cotangent)
            fns = {"forward": lambda: done(fwd(x, labels)), "forward_backward": lambda: done(both(x, labels, ct)[1])}
            if variant.mode == "eager":  # a graph fuses forward and backward: no kept forward to replay
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch(x)
                    kept = loss_fn(x, labels)
                ones = tf.ones_like(kept) if ct is None else tf.cast(ct, kept.dtype)
                fns["backward"] = lambda: done(tape.gradient(kept, x, output_gradients=ones))
        return fns

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = next(v for v in self.variants() if case.labels in v.label_forms)
        return self.run_variant(v, case, inputs, device)

    def jvp(self, variant, case, inputs, device, tangent):
        tf = self.tf
        with tf.device(self._device(device)):
            x = tf.constant(inputs.logits)
            v = tf.constant(tangent.astype(inputs.logits.dtype))
            with tf.autodiff.ForwardAccumulator(primals=x, tangents=v) as acc:
                loss = self._loss(variant.impl, case.reduction, _llm(case))(x, tf.constant(inputs.labels))
            return np.asarray(acc.jvp(loss).numpy())

    def hvp(self, variant, case, inputs, device, vector):
        tf = self.tf
        with tf.device(self._device(device)):
            x = tf.constant(inputs.logits)
            v = tf.constant(vector.astype(inputs.logits.dtype))
            loss_fn = self._loss(variant.impl, case.reduction, _llm(case))
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    loss = tf.reduce_sum(loss_fn(x, tf.constant(inputs.labels)))
                gv = tf.reduce_sum(inner.gradient(loss, x) * v)
            return np.asarray(outer.gradient(gv, x).numpy())


def _llm(case: Case) -> tuple[float | None, float | None, float | None]:
    """The case's (logit scale, softcap, z-loss coefficient): None where the option is absent."""
    return case.logit_scale, case.softcap, case.zloss


def _linear_variants() -> list[Variant]:
    from xentcheck.backends.tensorflow import distill as tf_distill
    from xentcheck.backends.tensorflow import grpo as tf_grpo
    from xentcheck.backends.tensorflow import lindistill as tf_lindistill
    from xentcheck.backends.tensorflow import linear as tf_linear
    from xentcheck.backends.tensorflow import rl as tf_rl
    return tf_linear.variants() + tf_distill.variants() + tf_rl.variants() + tf_grpo.variants() + tf_lindistill.variants()
