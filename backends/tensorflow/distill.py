"""TensorFlow distillation as users compose it from tf.nn (docs/distillation.md): eagerly, under
tf.function and with XLA (jit_compile=True); the gradients by tf.GradientTape.

- log_softmax_kl: tf.reduce_sum(tf.exp(lt) * (lt - ls), -1) with ls, lt = tf.nn.log_softmax(z / T)
  (the arguments swapped for reverse KL); JSD with log M = tf.reduce_logsumexp(tf.stack([ls +
  log(1 - beta), lt + log beta]), 0), beta KL(p_t || M) + (1 - beta) KL(p_s || M) written alike.

Per-row divergences, masked for token labels, then the reduction; T^2 multiplies the loss.
Without "tg" the teacher goes through tf.stop_gradient and no teacher gradient is returned."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.distill.cases import parse

API = "tf.reduce_sum(tf.exp(lt) * (lt - ls), -1), l = tf.nn.log_softmax(z / T)"
FEATURES = ("fkl", "rkl", "jsd", "t", "sq", "tg", "ign", "batchmean", "sum", "mean", "none")
MODES = ("eager", "function", "xla")


def variants() -> list[Variant]:
    return [Variant("log_softmax_kl", m, ("soft", "index"),
                    API if m == "eager" else f"tf.function({API}{', jit_compile=True' if m == 'xla' else ''})",
                    options=FEATURES, kind="distill", default=m == "eager") for m in MODES]


def loss_fn(tf, case: Case):
    """The loss from the logits, (zs, zt, mask) -> loss, as the module docstring composes it; the
    teacher through tf.stop_gradient unless "tg". For a tape around it (lindistill.py takes it too)."""
    s = parse(case.spec)
    T, beta = s.temperature, s.beta

    def kl(lq, lp):  # KL(p || q) per row from log-probabilities
        return tf.reduce_sum(tf.exp(lp) * (lp - lq), -1)

    def loss_of(zs, zt, mask):
        if not s.teacher_grad:
            zt = tf.stop_gradient(zt)
        ls, lt = tf.nn.log_softmax(zs / T, -1), tf.nn.log_softmax(zt / T, -1)
        if s.divergence == "fkl":
            rows = kl(ls, lt)
        elif s.divergence == "rkl":
            rows = kl(lt, ls)
        else:
            b = tf.constant(beta, ls.dtype)
            lm = tf.reduce_logsumexp(tf.stack([ls + tf.math.log(1 - b), lt + tf.math.log(b)]), 0)
            rows = beta * kl(lm, lt) + (1 - beta) * kl(lm, ls)
        if mask is not None:
            rows = tf.where(mask, rows, tf.zeros_like(rows))
        count = tf.cast(tf.shape(rows)[0] if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32)), rows.dtype)
        if case.reduction == "none":
            loss = rows
        elif case.reduction == "sum":
            loss = tf.reduce_sum(rows)
        elif case.reduction == "batchmean":
            loss = tf.reduce_sum(rows) / count
        else:
            loss = tf.reduce_sum(rows) / (count * tf.cast(tf.shape(zs)[-1], rows.dtype))
        return loss * T ** 2 if s.squared else loss

    return loss_of


def _fn(tf, case: Case):
    s = parse(case.spec)
    loss_of = loss_fn(tf, case)

    def f(zs, zt, mask):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(zs)
            tape.watch(zt)
            loss = loss_of(zs, zt, mask)
        gs = tape.gradient(loss, zs, output_gradients=tf.ones_like(loss))
        gt = tape.gradient(loss, zt, output_gradients=tf.ones_like(loss)) if s.teacher_grad else None
        return loss, gs, gt

    return f


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    tf = backend.tf
    key = ("distill", case.spec, case.reduction, variant.mode, inputs.labels is None)
    f = backend._compiled(key, variant.mode, lambda: _fn(tf, case))
    with tf.device(backend._device(device)):
        mask = None if inputs.labels is None else tf.constant(inputs.counted())
        loss, gs, gt = f(tf.constant(inputs.student), tf.constant(inputs.teacher), mask)
    grads = {"grad": np.asarray(gs.numpy()), "tgrad": None if gt is None else np.asarray(gt.numpy())}
    return Output(np.asarray(loss.numpy()), grads=grads, loss_dtype=loss.dtype.name, grad_dtype=gs.dtype.name)
