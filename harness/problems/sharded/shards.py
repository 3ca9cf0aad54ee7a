"""What a rank is handed: its shard of a case split over ranks (the records' `shard`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xentcheck.core.cases import Case, Inputs
from xentcheck.problems.sharded import cases as sc


@dataclass
class Shard:
    """One rank's part of a case (rank None: a process holding every rank, as JAX's host devices
    or a simulation). Vocabulary-parallel: `logits` are the rank's ceil(K / W) lanes (every rank's
    side by side for rank None; lanes past K are -inf), `labels` the global class indices, and
    `vocab_start` its first class. Partitions: `logits` and `labels` are the rank's rows (every row
    for rank None), split into the micro-batches `micro` (row ranges in them)."""
    rank: int | None
    world: int  # tensor-parallel ranks (vocabulary) or data-parallel ranks (partitions)
    k: int  # the vocabulary's true size
    logits: np.ndarray
    labels: np.ndarray
    vocab_start: int = 0
    part_size: int = 0  # vocabulary: lanes per rank
    micro: tuple[tuple[int, int], ...] = ()
    smoothing: float = 0.0
    zloss: float | None = None
    reduction: str = "mean"

    @property
    def lanes(self) -> np.ndarray:
        """Whether each of this shard's lanes is a true class (not padding)."""
        start = 0 if self.rank is None else self.vocab_start
        return np.arange(start, start + self.logits.shape[-1]) < self.k


def vocab_shard(case: Case, inputs: Inputs, rank: int | None, world: int) -> Shard:
    s = sc.part_size(case)
    padded = np.full((inputs.logits.shape[0], s * world), -np.inf, dtype=inputs.logits.dtype)
    padded[:, :case.k] = inputs.logits
    logits = padded if rank is None else np.ascontiguousarray(padded[:, rank * s:(rank + 1) * s])
    return Shard(rank, world, case.k, logits, inputs.labels.copy(), vocab_start=0 if rank is None else rank * s,
                 part_size=s, smoothing=inputs.smoothing, zloss=case.zloss, reduction=case.reduction)


def split_shard(case: Case, inputs: Inputs, rank: int | None, world: int) -> Shard:
    dp, mb = sc.split_sizes(case)
    parts = sc.partitions(case)
    mine = parts if rank is None else parts[rank * mb:(rank + 1) * mb]
    lo, hi = mine[0][0], mine[-1][1]
    return Shard(rank, world, case.k, inputs.logits[lo:hi].copy(), inputs.labels[lo:hi].copy(),
                 micro=tuple((a - lo, b - lo) for a, b in mine), smoothing=inputs.smoothing, zloss=case.zloss,
                 reduction=case.reduction)
