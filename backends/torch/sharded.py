"""PyTorch cross-entropy split over ranks (docs/sharded.md). Gradients by autograd on each rank's
(or micro-batch's) logits; a "gloo" variant runs one process per rank (xentcheck.run.ranks
joins them), the others hold every rank in the worker.

Vocabulary-parallel (kind "vocab"):
- megatron-core's `tensor_parallel.vocab_parallel_cross_entropy(logits, target, label_smoothing)`
  on each rank's lanes, its parallel_state initialised with tensor_model_parallel_size = W; it
  returns per-token losses, reduced as Megatron-LM does (sum(loss * mask) / sum(mask)). Its
  smoothing spreads alpha over the K - 1 other classes (semantics "megatron");
- torch DTensor `loss_parallel()` around F.cross_entropy, the logits a DTensor sharded on the class
  dimension (each rank's true lanes; an uneven last shard), and a log_softmax under it consumed by
  something other than nll_loss (a gather of the target's log-probability: pytorch #190746).

Partitions (kind "split"):
- F.cross_entropy(reduction="sum") / the global count, per micro-batch, gradients accumulated;
  with "gloo", the count and the loss all-reduced over the data-parallel ranks;
- transformers' ForCausalLMLoss with num_items_in_batch (the global count), and without it (each
  micro-batch's mean, averaged over the partitions, as gradient accumulation divides by the
  steps: the mean of means, a documented difference, known-differences.toml).
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import IGNORE_INDEX

MEGATRON = "megatron.vocab_parallel_cross_entropy"
LOSS_PARALLEL = "dtensor.loss_parallel_cross_entropy"
LOSS_PARALLEL_GATHER = "dtensor.loss_parallel_log_softmax_gather"
SUM_COUNT = "cross_entropy_sum_over_global_count"
DP_ALL_REDUCE = "dp_all_reduce_global_count"
HF_NUM_ITEMS = "transformers.ForCausalLMLoss_num_items"
HF_MEAN = "transformers.ForCausalLMLoss_no_num_items"


def variants() -> list[Variant]:
    return [
        Variant(MEGATRON, "gloo", ("index",), api="megatron.core.tensor_parallel.vocab_parallel_cross_entropy("
                "logits, target, label_smoothing)", options=("ign", "ls"), semantics="megatron", kind="vocab"),
        Variant(LOSS_PARALLEL, "gloo", ("index",), api="with loss_parallel(): F.cross_entropy(dtensor, y)",
                options=("ign",), semantics="torch", kind="vocab",
                documented="label_smoothing: 'Currently not supported' (loss_parallel's docstring)"),
        Variant(LOSS_PARALLEL_GATHER, "gloo", ("index",),
                api="with loss_parallel(): -F.log_softmax(dtensor, -1).gather(y)", options=("ign",),
                semantics="torch", kind="vocab"),
        Variant(SUM_COUNT, "eager", ("index",), api="sum over micro-batches of F.cross_entropy(x, y, "
                "reduction='sum') / n_tokens", options=("ign", "ls"), semantics="torch", kind="split"),
        Variant(DP_ALL_REDUCE, "gloo", ("index",), api="all_reduce(count); F.cross_entropy(reduction='sum') / "
                "count per micro-batch; all_reduce(loss)", options=("ign", "ls"), semantics="torch", kind="split"),
        Variant(HF_NUM_ITEMS, "eager", ("index",), api="ForCausalLMLoss(x, y, K, num_items_in_batch=n_tokens, "
                "shift_labels=y)", options=("ign",), semantics="torch", kind="split"),
        Variant(HF_MEAN, "eager", ("index",), api="ForCausalLMLoss(x, y, K, shift_labels=y) / partitions",
                options=("ign",), semantics="torch", kind="split",
                documented="without num_items_in_batch each micro-batch is a mean: the mean of means "
                           "(transformers #34191)"),
    ]


def _dtype(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def run(backend, variant: Variant, case, shard, device: str) -> Output:
    return (_vocab if variant.kind == "vocab" else _split)(backend, variant, case, shard, device)


def _reduce(t, losses, counted, reduction: str):
    if reduction == "none":
        return losses * counted
    total = (losses * counted).sum()
    return total / counted.sum() if reduction == "mean" else total


def _vocab(backend, variant: Variant, case, shard, device: str) -> Output:
    t = backend.torch
    import torch.distributed as dist
    x = t.from_numpy(shard.logits.copy()).requires_grad_(True)
    y = t.from_numpy(shard.labels.copy())
    counted = (y != IGNORE_INDEX).to(x.dtype)
    if variant.impl == MEGATRON:
        from megatron.core import parallel_state
        from megatron.core.tensor_parallel import vocab_parallel_cross_entropy
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=dist.get_world_size())
        # a clone: Megatron subtracts the max from its input in place
        losses = vocab_parallel_cross_entropy(x.clone(), y, label_smoothing=shard.smoothing)
        loss = _reduce(t, losses, counted.to(losses.dtype), shard.reduction)
        loss.backward(t.ones_like(loss))
        return Output(loss.detach().numpy(), grad=x.grad.numpy(), loss_dtype=_dtype(loss), grad_dtype=_dtype(x.grad))
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor.parallel import loss_parallel
    mesh = init_device_mesh("cpu", (shard.world,))
    true = int(shard.lanes.sum())  # DTensor shards unevenly: this rank's true lanes only
    local = x[:, :true]
    dx = DTensor.from_local(local, mesh, [Shard(1)], shape=t.Size((x.shape[0], shard.k)),
                             stride=(shard.k, 1))
    with loss_parallel():
        if variant.impl == LOSS_PARALLEL:
            loss = t.nn.functional.cross_entropy(dx, y, reduction=shard.reduction, ignore_index=IGNORE_INDEX,
                                                 label_smoothing=shard.smoothing)
        else:  # a log_softmax consumed by a gather, not by nll_loss
            logp = t.nn.functional.log_softmax(dx, dim=-1).full_tensor()
            picked = -logp.gather(1, y.clamp(min=0)[:, None])[:, 0]
            loss = _reduce(t, picked, counted, shard.reduction)
        loss.backward(t.ones_like(loss))
    if isinstance(loss, DTensor):
        loss = loss.full_tensor()
    return Output(loss.detach().numpy(), grad=x.grad.numpy(), loss_dtype=_dtype(loss), grad_dtype=_dtype(x.grad))


def _split(backend, variant: Variant, case, shard, device: str) -> Output:
    t = backend.torch
    F = t.nn.functional
    xs = [t.from_numpy(shard.logits[a:b].copy()).requires_grad_(True) for a, b in shard.micro]
    ys = [t.from_numpy(shard.labels[a:b].copy()) for a, b in shard.micro]
    count = t.tensor(float(sum(int((y != IGNORE_INDEX).sum()) for y in ys)), dtype=xs[0].dtype)
    gloo = variant.mode == "gloo"
    if gloo:
        import torch.distributed as dist
        dist.all_reduce(count)
    total = t.zeros((), dtype=xs[0].dtype)
    for x, y in zip(xs, ys):  # gradient accumulation: a backward per micro-batch
        if variant.impl in (SUM_COUNT, DP_ALL_REDUCE):
            part = F.cross_entropy(x, y, reduction="sum", ignore_index=IGNORE_INDEX, label_smoothing=shard.smoothing)
            loss = part / count if shard.reduction == "mean" else part
        else:
            from transformers.loss.loss_utils import ForCausalLMLoss
            if variant.impl == HF_NUM_ITEMS:
                loss = ForCausalLMLoss(x, y, shard.k, num_items_in_batch=count, shift_labels=y)
            else:
                loss = ForCausalLMLoss(x, y, shard.k, shift_labels=y) / len(xs)
            if shard.reduction == "sum":
                loss = loss * count
        loss.backward()
        total = total + loss.detach()
    if gloo:
        dist.all_reduce(total)
    grad = np.concatenate([x.grad.numpy() for x in xs])
    return Output(total.numpy(), grad=grad, loss_dtype=_dtype(total), grad_dtype=_dtype(xs[0].grad))
