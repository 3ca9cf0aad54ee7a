"""NumPy simulations of cross-entropy split over ranks (docs/sharded.md): every rank computed in
this process, its collectives written out as what they are (a max or a sum over the ranks' parts).

- vocabulary-parallel (kind "vocab"): rank r holds lanes [r s, (r + 1) s); m = max over ranks of
  the local max; S = sum over ranks of sum exp(z - m); z_y from the rank holding y; label
  smoothing's mean of z over the true K classes (padded lanes excluded) summed over ranks;
  z-loss on lse = m + log S; the gradient p - q, local to each rank.
- partitions (kind "split"): each micro-batch's summed loss over the global count of counted
  tokens (the sum of the partitions' counts), gradients accumulated; an empty partition adds 0.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import IGNORE_INDEX

OPTIONS = ("ign", "ls", "z")


def variants() -> list[Variant]:
    return [Variant("vocab_parallel_sim", "sim", ("index",), api="a NumPy simulation of W tensor-parallel ranks",
                    options=OPTIONS, semantics="torch", kind="vocab"),
            Variant("split_global_count_sim", "sim", ("index",),
                    api="sum of each micro-batch's summed loss / the global token count", options=OPTIONS,
                    semantics="torch", kind="split")]


def vocab_rows(logits: np.ndarray, labels: np.ndarray, k: int, world: int, smoothing: float, zloss: float | None):
    """Per-row loss and gradient of the padded logits (M, W s), rank by rank."""
    s = logits.shape[1] // world
    parts = [logits[:, r * s:(r + 1) * s] for r in range(world)]
    lanes = [np.arange(r * s, (r + 1) * s) < k for r in range(world)]
    m = np.max([p.max(axis=1) for p in parts], axis=0)  # all-reduce max
    S = np.sum([np.exp(p - m[:, None]).sum(axis=1) for p in parts], axis=0)  # all-reduce sum
    rows = np.arange(len(labels))
    zy = np.zeros_like(m)
    for r, p in enumerate(parts):  # all-reduce sum of the target logit, from the rank holding it
        mine = (labels >= r * s) & (labels < (r + 1) * s)
        zy[mine] = p[rows[mine], labels[mine] - r * s]
    lse = m + np.log(S)
    loss = lse - zy
    if smoothing:
        zmean = np.sum([np.where(ln, p, 0).sum(axis=1) for p, ln in zip(parts, lanes)], axis=0) / k
        loss = (1 - smoothing) * loss + smoothing * (lse - zmean)
    grads = []
    for r, (p, ln) in enumerate(zip(parts, lanes)):
        prob = np.exp(p - lse[:, None])
        g = prob.copy()
        mine = (labels >= r * s) & (labels < (r + 1) * s)
        g[rows[mine], labels[mine] - r * s] -= 1 - smoothing
        if smoothing:
            g -= np.where(ln, smoothing / k, 0).astype(g.dtype)
        if zloss:
            g += 2 * zloss * lse[:, None] * prob
        grads.append(g)
    if zloss:
        loss = loss + zloss * lse * lse
    return loss, np.concatenate(grads, axis=1)


def _reduce(loss, grad, counted, reduction: str, denominator):
    loss, grad = np.where(counted, loss, 0), np.where(counted[:, None], grad, 0)
    if reduction == "none":
        return loss, grad
    if reduction == "mean":
        return loss.sum() / denominator, grad / denominator
    return loss.sum(), grad


def run(backend, variant: Variant, case, shard, device: str) -> Output:
    dt = shard.logits.dtype
    if variant.kind == "vocab":
        labels = np.where(shard.labels == IGNORE_INDEX, -1, shard.labels)
        loss, grad = vocab_rows(shard.logits, labels, shard.k, shard.world, shard.smoothing, shard.zloss)
        counted = shard.labels != IGNORE_INDEX
        loss, grad = _reduce(loss, grad, counted, shard.reduction, dt.type(counted.sum()))
        return Output(np.asarray(loss, dt), grad=grad.astype(dt))
    # partitions: the global count first (an all-reduce over the ranks' micro-batches), then each partition
    total = dt.type(sum(int((shard.labels[a:b] != IGNORE_INDEX).sum()) for a, b in shard.micro))
    loss, grads = dt.type(0), []
    for a, b in shard.micro:
        labels = shard.labels[a:b]
        counted = labels != IGNORE_INDEX
        rows_loss, rows_grad = vocab_rows(shard.logits[a:b], np.where(counted, labels, -1), shard.k, 1,
                                          shard.smoothing, shard.zloss)
        part_loss, part_grad = _reduce(rows_loss, rows_grad, counted, shard.reduction, total)
        loss = loss + part_loss
        grads.append(part_grad)
    return Output(np.asarray(loss, dt), grad=np.concatenate(grads).astype(dt))
