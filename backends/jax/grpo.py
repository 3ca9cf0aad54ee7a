"""JAX GRPO under jax.jit (docs/rl.md), the composition JAX RL libraries write (tunix's GRPO loss
has the same terms): log p = take_along_axis(jax.nn.log_softmax(z / T), y), r = exp(log p - old),
-jnp.minimum(r A, jnp.clip(r, 1 - e_lo, 1 + e_hi) A) + beta (exp(ref - log p) - (ref - log p) - 1),
reduced by the loss type with the integer completion mask; the gradient by jax.grad."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.grpo.cases import parse

API = "take_along_axis(log_softmax(z / T), y); -minimum(r A, clip(r, 1 - e_lo, 1 + e_hi) A) + beta k3; by loss type"


def variants() -> list[Variant]:
    return [Variant("grpo_log_softmax_take", "jit", ("index",), f"jax.jit({API})",
                    options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"), kind="grpo")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    jax, jnp = backend.jax, backend.jnp
    s = parse(case.spec)
    loss_type = case.reduction

    def loss_of(z, y, old, ref, adv, mask):
        logp = jnp.take_along_axis(jax.nn.log_softmax(z / s.temperature, axis=-1), y[..., None], axis=-1)[..., 0]
        r = jnp.exp(logp - old)
        a = adv[:, None]
        per_token = -jnp.minimum(r * a, jnp.clip(r, 1 - s.eps_low, 1 + s.eps_high) * a)
        if s.beta:
            per_token = per_token + s.beta * (jnp.exp(ref - logp) - (ref - logp) - 1)
        if loss_type == "grpo":
            return ((per_token * mask).sum(-1) / jnp.clip(mask.sum(-1), 1)).mean()
        if loss_type == "bnpo":
            return (per_token * mask).sum() / jnp.clip(mask.sum(), 1)
        return (per_token * mask).sum() / (mask.shape[0] * mask.shape[1])

    key = ("grpo", case.spec, loss_type)
    if key not in backend._jitted:
        backend._jitted[key] = jax.jit(jax.value_and_grad(loss_of))
    put = lambda a: backend._put(a, device)  # noqa: E731
    loss, g = backend._jitted[key](*(put(a) for a in (inputs.logits, inputs.labels, inputs.old_logp, inputs.ref_logp,
                                                      inputs.advantages, inputs.mask)))
    return Output(np.asarray(loss), grads={"grad": np.asarray(g)}, loss_dtype=loss.dtype.name, grad_dtype=g.dtype.name)
