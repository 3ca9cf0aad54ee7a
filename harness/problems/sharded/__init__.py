"""Cross-entropy split over ranks or micro-batches (docs/sharded.md): two kinds, one record each.

- `vocab` (vocabulary-parallel, ids with `_tp<W>_`): each of W tensor-parallel ranks holds a slice
  of the classes; the loss needs the all-reduced max, sum of exponentials and target logit.
- `split` (partitions, `_dp<R>mb<B>_`): the batch split into micro-batches and data-parallel
  ranks, each partition's summed loss divided by the global count of counted tokens.

Both are plain CE on the unsharded batch: the same inputs, reference, outputs (loss, grad) and
comparison as the `ce` record's. What differs is how a variant runs (sharded.worker: on W ranks
through xentcheck.run.ranks, or every rank in the worker) and how the pieces are put back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import Problem, Section
from xentcheck.problems.ce import CE

if TYPE_CHECKING:
    from pathlib import Path

    from xentcheck.core.cases import Case, Inputs
    from xentcheck.core.records import Result, VariantOutput

MEGATRON_SMOOTHING = "megatron"  # a variant's semantics: smoothing spreads alpha over the K - 1 other classes


def _vocab_cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.sharded.cases import vocab_cases
    return vocab_cases(dtype_names, full)


def _split_cases(dtype_names, full: bool) -> list[Case]:
    from xentcheck.problems.sharded.cases import split_cases
    return split_cases(dtype_names, full)


def _validate_vocab(case: Case) -> None:
    from xentcheck.problems.sharded.cases import validate_vocab
    validate_vocab(case)


def _validate_split(case: Case) -> None:
    from xentcheck.problems.sharded.cases import validate_split
    validate_split(case)


def _vocab_inputs(case: Case, seed: int) -> Inputs:
    from xentcheck.problems.sharded.cases import unsharded_inputs
    return unsharded_inputs(case, seed)


def _split_inputs(case: Case, seed: int) -> Inputs:
    from xentcheck.problems.sharded.cases import make_split_inputs
    return make_split_inputs(case, seed)


def _reference(case: Case, inputs: Inputs, semantics: str):
    """Plain CE's reference of the whole batch. Megatron's smoothing (semantics "megatron") gives
    the target 1 - alpha and every other class alpha / (K - 1): torch's with alpha K / (K - 1)."""
    if semantics == MEGATRON_SMOOTHING:  # otherwise torch's: ignored targets out of the mean
        from dataclasses import replace
        inputs = replace(inputs, smoothing=inputs.smoothing * case.k / (case.k - 1))
        semantics = "torch"
    return CE.reference(case, inputs, semantics)


def _world_vocab(case: Case) -> int:
    from xentcheck.problems.sharded.cases import tp_size
    return tp_size(case)


def _world_split(case: Case) -> int:
    from xentcheck.problems.sharded.cases import split_sizes
    return split_sizes(case)[0]


def _shard_vocab(case: Case, inputs: Inputs, rank: int | None, world: int):
    from xentcheck.problems.sharded.shards import vocab_shard
    return vocab_shard(case, inputs, rank, world)


def _shard_split(case: Case, inputs: Inputs, rank: int | None, world: int):
    from xentcheck.problems.sharded.shards import split_shard
    return split_shard(case, inputs, rank, world)


def _compute_vocab(backend, v, case: Case, pristine: Inputs, device: str, properties=None,
                   all_variants=()) -> VariantOutput:
    from xentcheck.problems.sharded.cases import gather_vocab, other_tp_sizes
    from xentcheck.problems.sharded.worker import compute
    return compute(backend, v, case, pristine, device, properties, all_variants, gather=gather_vocab,
                   others=other_tp_sizes)


def _compute_split(backend, v, case: Case, pristine: Inputs, device: str, properties=None,
                   all_variants=()) -> VariantOutput:
    from xentcheck.problems.sharded.cases import gather_split, unsplit
    from xentcheck.problems.sharded.worker import compute
    return compute(backend, v, case, pristine, device, properties, all_variants, gather=gather_split,
                   others=unsplit)


def _write_repro(folder: Path, name: str, record: Result, inputs: Inputs, case: Case, ref, shrunk: bool,
                 spec: str | None, prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems.sharded.repro import write
    return write(folder, name, record, inputs, case, ref, shrunk, spec, prelude)


def _no_arrays(raw: Mapping[str, Any]):
    raise ValueError("a sharded case's reference is plain CE's: pass the unsharded logits and labels")


_COMMON: dict[str, Any] = dict(
    outputs=CE.outputs, reference=_reference, reference_arrays=CE.reference_arrays, compare=CE.compare,
    shrink_steps=lambda state: [], write_repro=_write_repro, dims=lambda case: f"{case.dims}_{case.part}",
    arrays=_no_arrays,
)

VOCAB = Problem(
    kind="vocab", adapter="sharded", title="vocabulary-parallel CE", claims=lambda case: case.part.startswith("tp"),
    sections=(Section(50, _vocab_cases),), validate=_validate_vocab, make_inputs=_vocab_inputs,
    compute=_compute_vocab, array_keys=("vocab_parallel_logits",), ranks=_world_vocab, shard=_shard_vocab,
    **_COMMON,
)

SPLIT = Problem(
    kind="split", adapter="sharded", title="partitioned CE",
    claims=lambda case: bool(case.part) and not case.part.startswith("tp"),
    sections=(Section(60, _split_cases),), validate=_validate_split, make_inputs=_split_inputs,
    compute=_compute_split, array_keys=("partitioned_logits",), ranks=_world_split, shard=_shard_split,
    **_COMMON,
)
