"""Cases split over ranks or micro-batches: the `part` token of an id (docs/sharded.md).

- vocabulary-parallel: `tp<W>`, the classes split over W tensor-parallel ranks, ceil(K / W) lanes
  each, the last rank's padded with -inf lanes when W does not divide K:
  `scale1e+0_float32_16x1000_tp2_index_mean_opt-ls`;
- partitions: `dp<R>` data-parallel ranks, each split into `mb<B>` micro-batches (either may be
  left out: `mb4`, `dp2`, `dp2mb2`), R x B partitions of unequal sizes (1 : 2 : ... : P rows,
  so their counted tokens differ); with option `ign` the first partition's targets are all ignored.

The inputs are plain CE's (the same (seed, id) stream), and so is the reference: the unsharded batch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from xentcheck.core.cases import Case, Inputs

_TP_RE = re.compile(r"tp([1-9]\d*)")
_SPLIT_RE = re.compile(r"(?:dp([1-9]\d*))?(?:mb([1-9]\d*))?")
MAX_WORLD = 8


def tp_size(case: Case) -> int:
    m = _TP_RE.fullmatch(case.part)
    return int(m[1]) if m else 0


def split_sizes(case: Case) -> tuple[int, int]:
    """(data-parallel ranks, micro-batches per rank) of a partition case."""
    m = _SPLIT_RE.fullmatch(case.part)
    if not m or not (m[1] or m[2]):
        return 0, 0
    return int(m[1] or 1), int(m[2] or 1)


def is_vocab(case: Case) -> bool:
    return bool(_TP_RE.fullmatch(case.part))


def is_split(case: Case) -> bool:
    return split_sizes(case) != (0, 0)


def _common(case: Case, what: str) -> None:
    if case.d:
        raise ValueError(f"{what} ({case.part!r}) is for plain CE cases, not linear-CE (_lin{case.d})")
    if case.extra:
        raise ValueError(f"{what} ({case.part!r}) takes 2-D logits (N x K), not {case.dims}")
    if case.labels != "index":
        raise ValueError(f"{what} ({case.part!r}) takes index labels, not {case.labels}")
    if case.from_file:
        raise ValueError(f"{what} ({case.part!r}) takes generated inputs, not a file's")
    unsupported = case.option_set - {"ign", "ls", "z"}
    if unsupported:
        raise ValueError(f"{what} ({case.part!r}) takes options ign, ls and z, not {', '.join(sorted(unsupported))}")


def validate_vocab(case: Case) -> None:
    w = tp_size(case)
    if not 1 <= w <= MAX_WORLD or w > case.k:
        raise ValueError(f"tensor-parallel size {case.part!r}: 1 to {MAX_WORLD} ranks, at most K = {case.k}")
    _common(case, "a vocabulary-parallel case")


def validate_split(case: Case) -> None:
    dp, mb = split_sizes(case)
    if not dp:
        raise ValueError(f"unknown partitioning {case.part!r} (tp<W>, dp<R>, mb<B> or dp<R>mb<B>)")
    if dp > MAX_WORLD or dp * mb > case.n:
        raise ValueError(f"partitioning {case.part!r}: at most {MAX_WORLD} ranks and one row per partition "
                         f"(N = {case.n})")
    if case.reduction == "none":
        raise ValueError(f"a partitioned case ({case.part!r}) has reduction mean or sum: none has nothing to split")
    _common(case, "a partitioned case")


def other_tp_sizes(case: Case) -> list[Case]:
    """The same case at the other TP sizes of 1 to 4 (at most K): TP invariance."""
    from dataclasses import replace
    return [replace(case, part=f"tp{w}") for w in range(1, 5) if w != tp_size(case) and w <= case.k]


def unsplit(case: Case) -> list[Case]:
    """The same batch unsplit (one micro-batch on one rank): invariance under the split."""
    from dataclasses import replace
    return [replace(case, part="mb1")] if case.part != "mb1" else []


def part_size(case: Case) -> int:
    """Classes per tensor-parallel rank: ceil(K / W)."""
    w = tp_size(case)
    return -(-case.k // w)


def partitions(case: Case) -> list[tuple[int, int]]:
    """The row ranges of the R x B partitions (rank-major: rank 0's micro-batches first), of sizes
    in the ratio 1 : 2 : ... : P (at least one row each)."""
    dp, mb = split_sizes(case)
    p = dp * mb
    ends = [round(case.n * (i + 1) * (i + 2) / (p * (p + 1))) for i in range(p)]
    bounds = [0]
    for i, e in enumerate(ends):
        bounds.append(min(max(e, bounds[-1] + 1), case.n - (p - 1 - i)))
    return list(zip(bounds[:-1], bounds[1:]))


def unsharded_inputs(case: Case, seed: int) -> Inputs:
    """The plain case's inputs (the id without its partitioning): every TP size and split of a batch
    sees the same batch."""
    from dataclasses import replace

    from xentcheck.problems.ce.cases import make_ce_inputs
    return make_ce_inputs(replace(case, part=""), seed)


def make_split_inputs(case: Case, seed: int) -> Inputs:
    """Plain CE's inputs; with option ign, the first partition's targets all ignored."""
    from xentcheck.core.cases import IGNORE_INDEX
    inputs = unsharded_inputs(case, seed)
    if "ign" in case.option_set:
        start, stop = partitions(case)[0]
        inputs.labels[start:stop] = IGNORE_INDEX
    return inputs


def vocab_cases(dtype_names, full: bool) -> list[Case]:
    """Default: TP = 2 with a padded vocabulary on float64 (ignored targets) and label smoothing on
    float32. Full: TP = 1 to 4 on each, and z-loss and sums."""
    from xentcheck.core.cases import Case
    base = [("scale1e+1", "float64", 16, 999, "mean", "ign"), ("scale1e+0", "float32", 16, 1000, "mean", "ls")]
    extra = [("scale1e+1", "float32", 12, 1001, "sum", "ign+z1e-4"), ("scale1e+0", "float32", 16, 10, "mean", "ign+ls")]
    sizes = (1, 2, 3, 4) if full else (2,)
    return [Case(family, dt, n, k, "index", red, opts, part=f"tp{w}")
            for family, dt, n, k, red, opts in (base + extra if full else base) if dt in dtype_names for w in sizes]


def split_cases(dtype_names, full: bool) -> list[Case]:
    """Default: 2 data-parallel ranks x 2 micro-batches, the first partition all ignored. Full:
    micro-batches alone, ranks alone, the sum, and smoothing."""
    from xentcheck.core.cases import Case
    parts = [("dp2mb2", "mean", "ign")]
    if full:
        parts += [("mb4", "mean", "ign"), ("dp3", "mean", "ign+ls"), ("dp2mb2", "sum", "ign"), ("mb3", "mean", "")]
    return [Case("scale1e+0", "float32", 16, 100, "index", red, opts, part=part)
            for part, red, opts in parts if "float32" in dtype_names]


def gather_vocab(case: Case, pieces: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The loss (rank 0's; a note where another rank's differs) and the gradient: every rank's
    lanes side by side, the padded ones dropped (a note where their gradient is not zero)."""
    loss = pieces[0]["loss"]
    notes = []
    for r, p in enumerate(pieces[1:], 1):
        diff = np.nanmax(np.abs(np.asarray(p["loss"], np.float64) - np.asarray(loss, np.float64)), initial=0.0)
        if not diff == 0:
            notes.append(f"rank {r}'s loss differs from rank 0's by {diff:.3g}: the loss depends on the rank")
    grad = np.concatenate([p["grad"] for p in pieces], axis=-1)
    pad = grad[:, case.k:]
    if pad.size and not np.all(pad == 0):
        notes.append(f"the padded lanes' gradient is not zero (max |g| {np.nanmax(np.abs(pad.astype(np.float64))):.3g}, "
                     f"{int(np.isnan(pad).sum())} NaN)")
    return loss, grad[:, :case.k], notes


def gather_split(case: Case, pieces: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The loss (rank 0's, all-reduced; a note where another rank's differs) and the gradient:
    every rank's rows in order."""
    loss = pieces[0]["loss"]
    notes = [f"rank {r}'s loss differs from rank 0's" for r, p in enumerate(pieces[1:], 1)
             if not np.array_equal(p["loss"], loss, equal_nan=True)]
    return loss, np.concatenate([p["grad"] for p in pieces], axis=0), notes
