"""JAX cross-entropy split over ranks (docs/sharded.md).

- vocabulary-parallel (kind "vocab", mode "devices": one process with W host devices,
  XLA_FLAGS=--xla_force_host_platform_device_count=W): `jax.shard_map` over a mesh axis "tp",
  the logits sharded on the class axis, written as MaxText's and levanter's vocabulary-parallel
  losses are: m = pmax(stop_gradient(max z)), S = psum(sum exp(z - m)), z_y = psum of the rank's
  own target logit, smoothing's mean of z psum'd over the true classes, z-loss on lse; the gradient
  by jax.grad through the collectives.
- partitions (kind "split", mode "jit"): gradient accumulation, each micro-batch's summed loss
  (optax.softmax_cross_entropy_with_integer_labels) over the global count, one jax.grad each.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import IGNORE_INDEX


def variants() -> list[Variant]:
    return [Variant("shard_map_vocab_parallel", "devices", ("index",),
                    api="jax.shard_map(pmax/psum cross-entropy, in_specs=P(None, 'tp'))", options=("ign", "ls", "z"),
                    semantics="torch", kind="vocab"),
            Variant("optax_sum_over_global_count", "jit", ("index",),
                    api="sum over micro-batches of optax.softmax_cross_entropy_with_integer_labels(x, y).sum() / "
                        "n_tokens", options=("ign",), semantics="torch", kind="split")]


def run(backend, variant: Variant, case, shard, device: str) -> Output:
    return (_vocab if variant.kind == "vocab" else _split)(backend, variant, case, shard, device)


def _vocab(backend, variant: Variant, case, shard, device: str) -> Output:
    jax, jnp = backend.jax, backend.jnp
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P
    world, s, k = shard.world, shard.part_size, shard.k
    if len(jax.devices()) < world:
        raise RuntimeError(f"{len(jax.devices())} host devices for {world} ranks (XLA_FLAGS not applied)")
    mesh = Mesh(np.array(jax.devices()[:world]), ("tp",))
    alpha, zl, reduction = shard.smoothing, shard.zloss, shard.reduction

    def local(z, y):
        r = jax.lax.axis_index("tp")
        m = jax.lax.pmax(jax.lax.stop_gradient(z.max(axis=-1)), "tp")
        lse = m + jnp.log(jax.lax.psum(jnp.exp(z - m[:, None]).sum(axis=-1), "tp"))
        mine = y - r * s
        here = (mine >= 0) & (mine < s)
        zy = jnp.take_along_axis(z, jnp.clip(mine, 0, s - 1)[:, None], axis=-1)[:, 0]
        loss = lse - jax.lax.psum(jnp.where(here, zy, 0), "tp")
        if alpha:
            true = (r * s + jnp.arange(s)) < k
            zsum = jax.lax.psum(jnp.where(true[None, :], z, 0).sum(axis=-1), "tp")
            loss = (1 - alpha) * loss + alpha * (lse - zsum / k)
        if zl:
            loss = loss + zl * lse * lse
        counted = (y != IGNORE_INDEX).astype(z.dtype)
        loss = loss * counted
        if reduction == "none":
            return loss
        return loss.sum() / counted.sum() if reduction == "mean" else loss.sum()

    out_spec = P() if reduction != "none" else P()
    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(None, "tp"), P()), out_specs=out_spec)

    def total(x, y):
        loss = fn(x, y)
        return loss.sum(), loss

    x = jnp.asarray(shard.logits)
    y = jnp.asarray(shard.labels)
    (_, loss), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(x, y)
    grad = np.asarray(grad)
    return Output(np.asarray(loss), grad=grad, loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)


def _split(backend, variant: Variant, case, shard, device: str) -> Output:
    jax, jnp, optax = backend.jax, backend.jnp, backend.optax
    count = sum(int((shard.labels[a:b] != IGNORE_INDEX).sum()) for a, b in shard.micro)
    dt = shard.logits.dtype

    @jax.jit
    def part(x, y, n):
        counted = y != IGNORE_INDEX
        losses = optax.softmax_cross_entropy_with_integer_labels(x, jnp.where(counted, y, 0))
        total = jnp.where(counted, losses, 0).sum()
        return total / n if shard.reduction == "mean" else total

    loss, grads = np.zeros((), dt), []
    for a, b in shard.micro:
        value, g = jax.value_and_grad(part)(jnp.asarray(shard.logits[a:b]), jnp.asarray(shard.labels[a:b]),
                                            jnp.asarray(count, dt))
        loss = loss + np.asarray(value)
        grads.append(np.asarray(g))
    return Output(np.asarray(loss, dt), grad=np.concatenate(grads), loss_dtype=dt.name, grad_dtype=grads[0].dtype.name)
