"""JAX RL log-probabilities and entropy under jax.jit (docs/rl.md):

- log_softmax_take: log p_y = take_along_axis(jax.nn.log_softmax(z / T), y), H = -sum(softmax * log_softmax);
- optax_ce_lse_entropy: log p_y = -optax.softmax_cross_entropy_with_integer_labels(z / T, y), and
  H = jax.nn.logsumexp(z / T) - sum(softmax(z / T) * z / T) (verl's entropy_from_logits, in JAX).

The gradients: jax.vjp's pullbacks with A and c."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.rl.cases import parse

IMPLS = (("log_softmax_take", "take_along_axis(jax.nn.log_softmax(z / T), y); -sum(softmax * log_softmax)"),
         ("optax_ce_lse_entropy", "-optax.softmax_cross_entropy_with_integer_labels(z / T, y); "
                                  "logsumexp(z / T) - sum(softmax(z / T) * z / T)"))


def variants() -> list[Variant]:
    # the optax one in the default suite (each case compiles two vjps); both in --suite full
    return [Variant(i, "jit", ("index",), f"jax.jit({api})", options=("t",), kind="rl",
                    default=i == "optax_ce_lse_entropy") for i, api in IMPLS]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    jax, jnp, optax = backend.jax, backend.jnp, backend.optax
    T = parse(case.spec).temperature
    impl = variant.impl

    def both(z, y, adv, coef):
        def logp_of(x):
            if impl == "log_softmax_take":
                return jnp.take_along_axis(jax.nn.log_softmax(x / T, axis=-1), y[:, None], axis=-1)[:, 0]
            return -optax.softmax_cross_entropy_with_integer_labels(x / T, y)

        def h_of(x):
            b = x / T
            if impl == "log_softmax_take":
                return -jnp.sum(jax.nn.softmax(b, axis=-1) * jax.nn.log_softmax(b, axis=-1), axis=-1)
            return jax.nn.logsumexp(b, axis=-1) - jnp.sum(jax.nn.softmax(b, axis=-1) * b, axis=-1)

        logp, pb = jax.vjp(logp_of, z)
        h, pbh = jax.vjp(h_of, z)
        return logp, h, pb(adv)[0], pbh(coef)[0]

    key = ("rl", impl, case.spec)
    if key not in backend._jitted:
        backend._jitted[key] = jax.jit(both)
    put = lambda a: backend._put(a, device)  # noqa: E731
    logp, h, g, eg = backend._jitted[key](put(inputs.logits), put(inputs.labels), put(inputs.advantages),
                                          put(inputs.coefficients))
    return Output(np.asarray(logp), grads={"entropy": np.asarray(h), "grad": np.asarray(g), "egrad": np.asarray(eg)},
                  loss_dtype=logp.dtype.name, grad_dtype=g.dtype.name)
