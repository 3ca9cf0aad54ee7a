"""TensorFlow linear distillation as users compose it: the logits tf.matmul(h, W, transpose_b=True)
of student and teacher, then the divergence as tensorflow/distill.py composes it (its loss_fn: the
teacher's logits through tf.stop_gradient), ignored rows masked, batchmean or sum, T^2 with sq; dh
and dW by tf.GradientTape; eagerly, under tf.function and with XLA (docs/distillation.md)."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.backends.tensorflow.distill import MODES, loss_fn
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.lindistill.cases import kd_case

API = "tf.matmul(h, W, transpose_b=True); tf.reduce_sum(tf.exp(lt) * (lt - ls), -1), l = tf.nn.log_softmax(z / T)"
OPTIONS = ("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean", "sum")


def variants() -> list[Variant]:
    return [Variant("linear_log_softmax_kl", m, ("soft", "index"),
                    API if m == "eager" else f"tf.function({API}{', jit_compile=True' if m == 'xla' else ''})",
                    options=OPTIONS, kind="lindistill", default=m == "eager") for m in MODES]


def _fn(tf, case: Case):
    loss_of = loss_fn(tf, kd_case(case))

    def f(hs, ws, ht, wt, mask):
        zt = tf.matmul(ht, wt, transpose_b=True)  # stop_gradient'ed in loss_of: the teacher is detached
        with tf.GradientTape() as tape:
            tape.watch([hs, ws])
            loss = loss_of(tf.matmul(hs, ws, transpose_b=True), zt, mask)
        dh, dw = tape.gradient(loss, [hs, ws])
        return loss, dh, dw

    return f


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    tf = backend.tf
    key = ("lindistill", case.spec, case.reduction, variant.mode, inputs.labels is None)
    f = backend._compiled(key, variant.mode, lambda: _fn(tf, case))
    with tf.device(backend._device(device)):
        mask = None if inputs.labels is None else tf.constant(inputs.labels != IGNORE_INDEX)
        loss, dh, dw = f(*(tf.constant(getattr(inputs, a)) for a in inputs.ARRAYS[:4]), mask)
    return Output(np.asarray(loss.numpy()), grads={"dh": np.asarray(dh.numpy()), "dw": np.asarray(dw.numpy())},
                  loss_dtype=loss.dtype.name, grad_dtype=dh.dtype.name)
