"""JAX linear-CE: logits = h @ W.T + b, optax.softmax_cross_entropy_with_integer_labels, the
mean or sum; gradients by jax.vjp with the cotangent; eagerly and under jax.jit."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case

API = "optax.softmax_cross_entropy_with_integer_labels(h @ W.T + b, y)"


def variants() -> list[Variant]:
    return [Variant("linear_optax_int", m, ("index",), api=API if m == "eager" else f"jax.jit({API})",
                    default=m == "eager", options=("b", "ct"), kind="linear") for m in ("eager", "jit")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    jax, jnp, optax = backend.jax, backend.jnp, backend.optax
    key = ("linear", variant.mode, case.reduction, inputs.bias is not None)
    f = backend._jitted.get(key)
    if f is None:
        def loss_fn(h, w, b, y):
            logits = h @ w.T if b is None else h @ w.T + b
            rows = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return rows.mean() if case.reduction == "mean" else rows.sum() if case.reduction == "sum" else rows

        def f(h, w, b, y, ct):
            loss, pull = jax.vjp(lambda h_, w_, b_: loss_fn(h_, w_, b_, y), h, w, b)
            return loss, pull(jnp.ones_like(loss) if ct is None else ct.astype(loss.dtype))

        if variant.mode == "jit":
            f = jax.jit(f)
        backend._jitted[key] = f
    put = lambda a: None if a is None else backend._put(a, device)  # noqa: E731
    loss, (dh, dw, db) = f(put(inputs.hidden), put(inputs.weight), put(inputs.bias), put(inputs.labels),
                           put(inputs.cotangent))
    dh.block_until_ready()
    return Output(np.asarray(loss), grads={"dh": np.asarray(dh), "dw": np.asarray(dw),
                                           "db": None if db is None else np.asarray(db)},
                  loss_dtype=loss.dtype.name, grad_dtype=dh.dtype.name)
