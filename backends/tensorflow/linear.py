"""TensorFlow linear-CE: logits = tf.matmul(h, W, transpose_b=True) + b,
tf.nn.sparse_softmax_cross_entropy_with_logits, the mean or sum; gradients by GradientTape
with the cotangent (output_gradients); eagerly, under tf.function and with XLA."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case

API = "tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.matmul(h, W, transpose_b=True) + b)"


def variants() -> list[Variant]:
    return [Variant("linear_sparse_sce", m, ("index",),
                    api=API if m == "eager" else f"tf.function({API}{', jit_compile=True' if m == 'xla' else ''})",
                    default=m == "eager", options=("b", "ct"), kind="linear") for m in ("eager", "function", "xla")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    tf = backend.tf
    key = ("linear", variant.mode, case.reduction, inputs.bias is not None, inputs.cotangent is not None)
    f = backend._fns.get(key)
    if f is None:
        def f(h, w, b, y, ct):
            with tf.GradientTape() as tape:
                tape.watch([h, w] + ([] if b is None else [b]))
                logits = tf.matmul(h, w, transpose_b=True)
                if b is not None:
                    logits = logits + b
                rows = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                loss = (tf.reduce_mean(rows) if case.reduction == "mean" else
                        tf.reduce_sum(rows) if case.reduction == "sum" else rows)
            grads = tape.gradient(loss, [h, w] + ([] if b is None else [b]), output_gradients=ct)
            return loss, grads

        if variant.mode != "eager":
            f = tf.function(f, jit_compile=variant.mode == "xla")
        backend._fns[key] = f
    with tf.device(backend._device(device)):
        c = lambda a: None if a is None else tf.constant(a)  # noqa: E731
        loss, grads = f(c(inputs.hidden), c(inputs.weight), c(inputs.bias), c(inputs.labels), c(inputs.cotangent))
    dh, dw = grads[0], grads[1]
    db = grads[2] if len(grads) > 2 else None
    return Output(loss.numpy(), grads={"dh": dh.numpy(), "dw": dw.numpy(), "db": None if db is None else db.numpy()},
                  loss_dtype=loss.dtype.name, grad_dtype=dh.dtype.name)
