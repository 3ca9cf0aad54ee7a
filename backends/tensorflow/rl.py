"""TensorFlow RL log-probabilities and entropy, eagerly (docs/rl.md): log p_y =
-tf.nn.sparse_softmax_cross_entropy_with_logits(y, z / T), H = -sum(softmax(z / T) * log_softmax(z / T));
the gradients by tf.GradientTape with A and c as output_gradients."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.rl.cases import parse

API = "-tf.nn.sparse_softmax_cross_entropy_with_logits(y, z / T); -sum(softmax(z / T) * log_softmax(z / T))"


def variants() -> list[Variant]:
    return [Variant("sparse_ce_log_softmax_entropy", "eager", ("index",), API, options=("t",), kind="rl")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    tf = backend.tf
    T = parse(case.spec).temperature
    with tf.device(backend._device(device)):
        z = tf.constant(inputs.logits)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(z)
            a = z / T
            logp = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(inputs.labels), logits=a)
            h = -tf.reduce_sum(tf.nn.softmax(a, -1) * tf.nn.log_softmax(a, -1), -1)
        g = tape.gradient(logp, z, output_gradients=tf.constant(inputs.advantages))
        eg = tape.gradient(h, z, output_gradients=tf.constant(inputs.coefficients))
    return Output(np.asarray(logp.numpy()), grads={"entropy": np.asarray(h.numpy()), "grad": np.asarray(g.numpy()),
                                                   "egrad": np.asarray(eg.numpy())},
                  loss_dtype=logp.dtype.name, grad_dtype=g.dtype.name)
