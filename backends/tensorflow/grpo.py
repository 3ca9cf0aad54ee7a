"""TensorFlow GRPO as a TF user composes it (docs/rl.md): eagerly, under tf.function and with XLA
(jit_compile=True); the gradient by tf.GradientTape. The terms are the JAX adapter's:

    logp = tf.gather(tf.nn.log_softmax(z / T), y, batch_dims=2); r = tf.exp(logp - old)
    per_token = -tf.minimum(r A, tf.clip_by_value(r, 1 - e_lo, 1 + e_hi) A) + beta (exp(ref - logp) - (ref - logp) - 1)
    loss: "grpo" mean over completions of (l m).sum(-1) / max(m.sum(-1), 1); "bnpo" (l m).sum() / max(m.sum(), 1);
          "drgrpo" (l m).sum() / (B L)

with the completion mask cast to the logits' dtype (TF multiplies no int64 by a float)."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.grpo.cases import parse

API = ("tf.gather(tf.nn.log_softmax(z / T), y, batch_dims=2); "
       "-tf.minimum(r A, tf.clip_by_value(r, 1 - e_lo, 1 + e_hi) A) + beta k3; by loss type")
MODES = ("eager", "function", "xla")


def variants() -> list[Variant]:
    return [Variant("grpo_log_softmax_gather", m, ("index",),
                    API if m == "eager" else f"tf.function({API}{', jit_compile=True' if m == 'xla' else ''})",
                    options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"), kind="grpo", default=m == "eager")
            for m in MODES]


def _fn(tf, case: Case, clip=None):
    """(z, y, old, ref, adv, mask) -> (loss, dloss/dz). `clip(r, lo, hi)`: tf.clip_by_value unless a
    test's toy passes one written wrong (tests/helpers/toy_backends/tf_grpo_toys.py)."""
    s = parse(case.spec)
    clip = clip or tf.clip_by_value
    loss_type = case.reduction

    def loss_of(z, y, old, ref, adv, mask):
        logp = tf.gather(tf.nn.log_softmax(z / s.temperature, axis=-1), y, batch_dims=2)
        r = tf.exp(logp - old)
        a = adv[:, None]
        per_token = -tf.minimum(r * a, clip(r, 1 - s.eps_low, 1 + s.eps_high) * a)
        if s.beta:
            per_token = per_token + s.beta * (tf.exp(ref - logp) - (ref - logp) - 1)
        m = tf.cast(mask, per_token.dtype)
        if loss_type == "grpo":
            return tf.reduce_mean(tf.reduce_sum(per_token * m, -1) / tf.maximum(tf.reduce_sum(m, -1), 1))
        if loss_type == "bnpo":
            return tf.reduce_sum(per_token * m) / tf.maximum(tf.reduce_sum(m), 1)
        return tf.reduce_sum(per_token * m) / tf.cast(tf.size(m), m.dtype)

    def f(z, y, old, ref, adv, mask):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = loss_of(z, y, old, ref, adv, mask)
        return loss, tape.gradient(loss, z)

    return f


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    tf = backend.tf
    key = ("grpo", case.spec, case.reduction, variant.mode)
    f = backend._compiled(key, variant.mode, lambda: _fn(tf, case))
    with tf.device(backend._device(device)):
        loss, g = f(*(tf.constant(a) for a in (inputs.logits, inputs.labels, inputs.old_logp, inputs.ref_logp,
                                                inputs.advantages, inputs.mask)))
    return Output(np.asarray(loss.numpy()), grads={"grad": np.asarray(g.numpy())},
                  loss_dtype=loss.dtype.name, grad_dtype=g.dtype.name)
