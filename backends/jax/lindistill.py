"""JAX linear distillation as users compose it: the logits h @ W.T of student and teacher (the
teacher's through jax.lax.stop_gradient), then the divergence as jax/distill.py composes it (its
loss_fn: optax.kl_divergence or kl_divergence_with_log_targets), ignored rows masked, batchmean or
sum, T^2 with sq; dh and dW by jax.vjp with ones; op by op or under jax.jit (docs/distillation.md)."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.backends.jax.distill import IMPLS, loss_fn
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.lindistill.cases import kd_case

OPTIONS = ("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean", "sum")


def variants() -> list[Variant]:
    # as distill.py: optax_kl under jax.jit in the default suite, the rest when asked for and in --suite full
    return [Variant(f"linear_{i}", m, ("soft", "index"), f"h @ W.T; {api}" if m == "eager" else f"jax.jit(h @ W.T; {api})",
                    options=OPTIONS, kind="lindistill", default=m == "jit" and i == "optax_kl")
            for m in ("eager", "jit") for i, api in IMPLS]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    jax, jnp = backend.jax, backend.jnp
    impl = variant.impl.removeprefix("linear_")
    mask = None if inputs.labels is None else backend._put(inputs.labels != IGNORE_INDEX, device)
    key = ("lindistill", impl, variant.mode, case.spec, case.reduction, mask is None)
    f = backend._jitted.get(key)
    if f is None:
        fn = loss_fn(backend, impl, kd_case(case))  # stops the teacher's gradient itself; done here as a user would

        def f(hs, ws, ht, wt, mask):  # the mask an argument: a jitted function is reused across cases
            zt = jax.lax.stop_gradient(ht @ wt.T)
            loss, pullback = jax.vjp(lambda h, w: fn(h @ w.T, zt, mask), hs, ws)
            return (loss, *pullback(jnp.ones_like(loss)))

        if variant.mode == "jit":
            f = jax.jit(f)
        backend._jitted[key] = f
    loss, dh, dw = f(*(backend._put(getattr(inputs, a), device) for a in inputs.ARRAYS[:4]), mask)
    dh.block_until_ready()
    return Output(np.asarray(loss), grads={"dh": np.asarray(dh), "dw": np.asarray(dw)},
                  loss_dtype=loss.dtype.name, grad_dtype=dh.dtype.name)
