"""Toy kernels of cross-entropy split over ranks: a careful one, one broken each way that sharded
training code is known to break (docs/sharded.md), and two whose rank dies or hangs. Each rank
is simulated in this process ("sim" mode), in float64, rounded once to the case's dtype; name a
class with --backend-file sharded_toys.py::NAME."""

import os
import signal
import time

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant

IGNORE = -100


def vocab_loss(logits, labels, k, world, smoothing, reduction, bug=""):
    """Per-rank vocabulary-parallel CE of the padded logits (M, W s): loss (rank 0's) and gradient."""
    z = logits.astype(np.float64)
    s = z.shape[1] // world
    parts = [z[:, r * s:(r + 1) * s] for r in range(world)]
    lanes = [np.arange(r * s, (r + 1) * s) < k for r in range(world)]
    local_max = [p.max(axis=1) for p in parts]
    m = np.max(local_max, axis=0)
    # the bug "local_max": each rank's exponentials shifted by its own max, summed as if they shared one
    shifts = local_max if bug == "local_max" else [m] * world
    S = np.sum([np.exp(p - sh[:, None]).sum(axis=1) for p, sh in zip(parts, shifts)], axis=0)
    lse = m + np.log(S)
    rows, counted = np.arange(len(labels)), labels != IGNORE
    zy = np.zeros(len(labels))
    for r, p in enumerate(parts):
        mine = (labels >= r * s) & (labels < (r + 1) * s)
        zy[mine] = p[rows[mine], labels[mine] - r * s]
    loss = lse - zy
    grads = []
    for r, (p, ln) in enumerate(zip(parts, lanes)):
        g = np.exp(p - lse[:, None])
        mine = (labels >= r * s) & (labels < (r + 1) * s)
        g[rows[mine], labels[mine] - r * s] -= 1 - smoothing
        kk = ln.sum() if bug == "local_k" else k  # the bug "local_k": the rank's own class count
        g -= np.where(ln, smoothing / kk, 0)
        grads.append(g)
    if smoothing:
        if bug == "local_k":  # rank 0's own lanes and count
            zmean = np.where(lanes[0], parts[0], 0).sum(axis=1) / lanes[0].sum()
        else:
            zmean = np.sum([np.where(ln, p, 0).sum(axis=1) for p, ln in zip(parts, lanes)], axis=0) / k
        loss = (1 - smoothing) * loss + smoothing * (lse - zmean)
    grad = np.concatenate(grads, axis=1)
    loss, grad = np.where(counted, loss, 0), np.where(counted[:, None], grad, 0)
    if reduction == "none":
        return loss, grad
    # the bug "mean_all_rows": divided by every row, the ignored ones included
    denom = (len(labels) if bug == "mean_all_rows" else counted.sum()) if reduction == "mean" else 1
    return loss.sum() / denom, grad / denom


def split_loss(shard, bug=""):
    """Partitions: each micro-batch's summed loss over the global count (or a bug's denominator)."""
    parts = [(shard.logits[a:b], shard.labels[a:b]) for a, b in shard.micro]
    total = sum(int((y != IGNORE).sum()) for _, y in parts)
    loss, grads = 0.0, []
    for x, y in parts:
        n_local = int((y != IGNORE).sum())
        rows_loss, rows_grad = vocab_loss(x, y, shard.k, 1, shard.smoothing, "none")
        if shard.reduction == "sum":
            denom = 1.0
        elif bug == "local_mean":  # each partition's own mean, averaged over the partitions
            denom = max(n_local, 1) * len(parts)
        elif bug == "nan_empty":  # the local mean, rescaled: 0 / 0 for an all-ignored partition
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = rows_loss.sum() / np.float64(n_local)
                loss += mean * n_local / total
                grads.append(rows_grad / np.float64(n_local) * n_local / total)
            continue
        elif bug == "mean_all_rows":
            denom = sum(len(y) for _, y in parts)
        else:
            denom = total
        loss += rows_loss.sum() / denom
        grads.append(rows_grad / denom)
    return loss, np.concatenate(grads)


class ShardedCareful(Backend):
    name = "sharded-careful"
    dtypes = ("float32", "float64")
    label_forms = ("index",)
    bug = ""

    def variants(self):
        return [Variant("toy_vocab", "sim", ("index",), options=("ign", "ls"), semantics="torch", kind="vocab"),
                Variant("toy_split", "sim", ("index",), options=("ign", "ls"), semantics="torch", kind="split")]

    def run_variant(self, variant, case, shard, device):
        dt = shard.logits.dtype
        if variant.kind == "vocab":
            loss, grad = vocab_loss(shard.logits, shard.labels, shard.k, shard.world, shard.smoothing,
                                    shard.reduction, self.bug)
        else:
            loss, grad = split_loss(shard, self.bug)
        return Output(np.asarray(loss).astype(dt), grad=grad.astype(dt))


class LocalK(ShardedCareful):
    name, bug = "sharded-local-k", "local_k"


class LocalMax(ShardedCareful):
    name, bug = "sharded-local-max", "local_max"


class MeanAllRows(ShardedCareful):
    name, bug = "sharded-mean-all-rows", "mean_all_rows"


class LocalMean(ShardedCareful):
    name, bug = "sharded-local-mean", "local_mean"


class NanEmpty(ShardedCareful):
    name, bug = "sharded-nan-empty", "nan_empty"


class RankDies(ShardedCareful):
    """On gloo ranks: rank 1 joins, takes part in one all-reduce, then kills itself (SIGKILL) while
    rank 0 waits in the next one."""
    name = "sharded-rank-dies"

    def load(self):
        import torch
        self.torch = torch

    def variants(self):
        return [Variant("toy_vocab_gloo", "gloo", ("index",), options=("ign", "ls"), semantics="torch", kind="vocab")]

    def run_variant(self, variant, case, shard, device):
        import torch.distributed as dist
        t = self.torch.tensor([float(shard.logits.max())])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if shard.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(t)
        raise AssertionError("unreachable: rank 1 is gone")


class RankHangs(ShardedCareful):
    """Its one process holding every rank (mode "devices", no framework) sleeps."""
    name = "sharded-rank-hangs"

    def variants(self):
        return [Variant("toy_vocab_hang", "devices", ("index",), options=("ign", "ls"), semantics="torch",
                        kind="vocab")]

    def run_variant(self, variant, case, shard, device):
        time.sleep(3600)
