"""JAX distillation with optax, as users write it (docs/distillation.md), op by op or under jax.jit:

- optax_kl: optax.kl_divergence(jax.nn.log_softmax(z_s / T), jax.nn.softmax(z_t / T)) (forward
  KL; the arguments swapped for reverse KL); JSD with the mixture in probabilities and its log
  taken: M = beta p_t + (1 - beta) p_s, beta kl_divergence(log M, p_t) + (1 - beta) kl_divergence(log M, p_s);
- optax_kl_log_targets: optax.kl_divergence_with_log_targets(log p_s, log p_t); JSD with
  log M = jnp.logaddexp(log beta + log p_t, log(1 - beta) + log p_s).

Per-row divergences, masked for token labels, then the reduction; T^2 multiplies the loss. The
gradients are jax.vjp's with ones; without "tg" the teacher passes through jax.lax.stop_gradient
and no teacher gradient is returned."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.distill.cases import parse

IMPLS = (("optax_kl", "optax.kl_divergence(jax.nn.log_softmax(s / T), jax.nn.softmax(t / T))"),
         ("optax_kl_log_targets", "optax.kl_divergence_with_log_targets(log_softmax(s / T), log_softmax(t / T))"))
FEATURES = ("fkl", "rkl", "jsd", "t", "sq", "tg", "ign", "batchmean", "sum", "mean", "none")


def variants() -> list[Variant]:
    # optax_kl under jax.jit in the default suite (each case compiles a vjp: seconds); the others
    # (op by op: a compilation per primitive and shape) when asked for and in --suite full
    return [Variant(i, m, ("soft", "index"), api if m == "eager" else f"jax.jit({api})", options=FEATURES,
                    kind="distill", default=m == "jit" and i == "optax_kl") for m in ("eager", "jit") for i, api in IMPLS]


def loss_fn(backend, impl: str, case: Case):
    jax, jnp, optax = backend.jax, backend.jnp, backend.optax
    s = parse(case.spec)
    T, beta = s.temperature, s.beta

    def fn(zs, zt, mask):
        if not s.teacher_grad:
            zt = jax.lax.stop_gradient(zt)
        ls, lt = jax.nn.log_softmax(zs / T, axis=-1), jax.nn.log_softmax(zt / T, axis=-1)
        if impl == "optax_kl":
            ps, pt = jax.nn.softmax(zs / T, axis=-1), jax.nn.softmax(zt / T, axis=-1)
            if s.divergence == "fkl":
                rows = optax.kl_divergence(ls, pt)
            elif s.divergence == "rkl":
                rows = optax.kl_divergence(lt, ps)
            else:
                lm = jnp.log(beta * pt + (1 - beta) * ps)
                rows = beta * optax.kl_divergence(lm, pt) + (1 - beta) * optax.kl_divergence(lm, ps)
        else:
            kl = optax.losses.kl_divergence_with_log_targets
            if s.divergence == "fkl":
                rows = kl(ls, lt)
            elif s.divergence == "rkl":
                rows = kl(lt, ls)
            else:
                lm = jnp.logaddexp(jnp.log(beta) + lt, jnp.log1p(-beta) + ls).astype(ls.dtype)
                rows = beta * kl(lm, lt) + (1 - beta) * kl(lm, ls)
        if mask is not None:
            rows = jnp.where(mask, rows, 0)
        count = rows.shape[0] if mask is None else mask.sum()
        if case.reduction == "none":
            loss = rows
        elif case.reduction == "sum":
            loss = rows.sum()
        elif case.reduction == "batchmean":
            loss = rows.sum() / count
        else:
            loss = rows.sum() / (count * zs.shape[-1])
        return (loss * T ** 2).astype(zs.dtype) if s.squared else loss.astype(zs.dtype)

    return fn


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    jax, jnp = backend.jax, backend.jnp
    spec = parse(case.spec)
    fn = loss_fn(backend, variant.impl, case)
    mask = None if inputs.labels is None else backend._put(inputs.counted(), device)

    def both(zs, zt, mask):  # the mask an argument: a jitted function is reused across cases
        loss, pullback = jax.vjp(lambda a, b: fn(a, b, mask), zs, zt)
        return (loss, *pullback(jnp.ones_like(loss)))

    if variant.mode == "jit":
        key = ("distill", variant.impl, case.spec, case.reduction, mask is None, case.dtype)
        if key not in backend._jitted:
            backend._jitted[key] = jax.jit(both)
        both = backend._jitted[key]
    loss, gs, gt = both(backend._put(inputs.student, device), backend._put(inputs.teacher, device), mask)
    gs.block_until_ready()
    grads = {"grad": np.asarray(gs), "tgrad": np.asarray(gt) if spec.teacher_grad else None}
    return Output(np.asarray(loss), grads=grads, loss_dtype=loss.dtype.name, grad_dtype=gs.dtype.name)
