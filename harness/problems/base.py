"""What a problem kind is: one record per kind of softmax loss (plain CE, linear-CE, ...).

torch's OpInfo is the model: one record per op that every layer reads, so that no layer branches
on which op it runs. Here a `Problem` holds everything kind-specific: its cases (where they sit in
the suites, how an id is checked), its input maker, its reference, its declared outputs, how a
worker runs a variant on it and how that output is judged, its properties, shrink steps, repro
files, fuzz draw its caller-array reader (xentcheck.reference), and how many processes it runs in. The runner, worker,
evaluation, records, reports, compare, plots, API, pytest plugin, bench and fuzz iterate over
`problem.outputs` and call the record's functions; they never ask which kind a case is.

Its functions are small wrappers that import their implementation when called: the records load
with `xentcheck.core.cases` (which asks them for the suites) and import no NumPy-heavy module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path
    from random import Random

    from xentcheck.core.cases import Case
    from xentcheck.core.records import VariantOutput
    from xentcheck.core.tolerances import Tolerances


@dataclass(frozen=True)
class OutputSpec:
    """One declared output of a kind: what a backend returns and a result carries metrics of."""
    name: str  # its key: in results.jsonl, the worker's .npz file and a backend's gradients
    title: str  # as the reports name it
    scale: str  # its natural scale (the scale its errors are measured at), in words
    tolerance: str = "grad"  # which row of the tolerance tables judges it: "loss" or "grad"
    short: str = ""  # a short label (a figure's panel, a junit message); empty: the title

    @property
    def label(self) -> str:
        return self.short or self.title


@dataclass(frozen=True)
class Section:
    """A part of the suites: its cases, and where they sit among every kind's (`order`, ascending).
    `cases(dtype_names, full)`: the default suite's cases (full False), or the cases `--suite full`
    adds to them (full True)."""
    order: int
    cases: Callable[[tuple[str, ...] | list[str], bool], list[Case]]


@dataclass(frozen=True)
class Timing:
    """How `xentcheck bench` times a kind: a bench shape turned into a case-like workload that the
    worker's TimeRequest names by its id and builds the inputs of (run/worker.time_case), outside
    the suites' size limits where the kind allows it; the floor and the memory it needs."""
    grammar: str  # a shape as the command line writes it ("NxK", "NxDxV")
    # one shape of the command line -> its dimensions (ValueError: malformed or out of range)
    parse: Callable[[str], tuple[int, ...]]
    # (dtype, dimensions, label form) -> the workload's case (its id travels in the TimeRequest)
    workload: Callable[[str, tuple[int, ...], str], Case]
    # the worker's check of a workload's case, parsed from its id unvalidated (ValueError)
    check: Callable[[Case], None]
    # the workload's arrays from (case, seed), before the record's backend_inputs
    inputs: Callable[[Case, int], Any]
    # bytes forward+backward must move at least (the memory-bandwidth floor's numerator)
    floor_bytes: Callable[[Case], int]
    floor_text: str  # what floor_bytes counts, in words
    # about the memory forward+backward takes: a workload needing more than 80% of what is
    # available is skipped with that reason
    need_bytes: Callable[[Case], int]
    need_text: str  # how need_bytes is estimated, in words (the skip's reason)
    # the workload's shape as a row shows it ("256 x 1000"), and the dimensions its rows hold
    # beyond n and k (k: the classes, the logits' N x K)
    label: Callable[[Case], str]
    fields: Callable[[Case], dict[str, int]] = lambda case: {}
    # a suite case's bench shape, for `run --timing` (the run's own shapes); None: not timed (empty)
    shape_of: Callable[[Case], tuple[int, ...] | None] = lambda case: None
    # what bench times of this kind when the command line names none (no shapes: none of it; no
    # backends, no implementations: every backend, each backend's default implementations)
    default_shapes: tuple[tuple[int, ...], ...] = ()
    default_backends: tuple[str, ...] = ()
    default_impls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """One problem kind (module docstring). A case's kind is `Case.kind` (its id's grammar)."""
    kind: str  # Case.kind and Variant.kind of the cases and variants of this kind
    # whether a case (from its id's grammar) is of this kind: the records' claims split the ids
    claims: Callable[[Case], bool]
    title: str  # as the reports name the kind
    outputs: tuple[OutputSpec, ...]  # the loss first, then the gradients, in results.jsonl's order
    sections: tuple[Section, ...]
    # the kind's rules for a case id, beyond the shared ones (raise ValueError)
    validate: Callable[[Case], None]
    # the case's arrays, a pure function of (case, seed)
    make_inputs: Callable[[Case, int], Any]
    # the high-precision reference of (case, inputs, semantics): .precision and the outputs' arrays
    reference: Callable[[Case, Any, str], Any]
    # the reference's arrays by output name (absent outputs left out), in the caller's shapes (a
    # plain case's (N, d1, ..., K)): what xentcheck.reference returns
    reference_arrays: Callable[[Case, Any], dict]
    # a worker's run of one variant on a copy of the inputs (with property checks when a
    # tolerance is given): (backend, variant, case, inputs, device, properties, all_variants)
    compute: Callable[..., VariantOutput]
    # shapes, dtypes and values of an output that came back, against the reference: result fields
    compare: Callable[[Case, Any, VariantOutput, Tolerances], dict]
    # shrinking: the smaller (description, case, inputs) to try from a state (regress.repro.shrink)
    shrink_steps: Callable[[dict], list[tuple[str, Case, Any]]]
    # the repro .npz and .py of a result: (folder, name, record, inputs, case, reference, shrunk, spec,
    # prelude: the script's first lines, regress.repro.numerics_prelude)
    write_repro: Callable[..., tuple[Path, Path]]
    # the case's shape as reports name it
    dims: Callable[[Case], str]
    # a caller's named arrays (and settings) as (case, inputs), for xentcheck.reference; a dict is
    # this kind's when it holds every key of `array_keys` (ValueError for bad arrays)
    arrays: Callable[[Mapping[str, Any]], tuple[Case, Any]]
    array_keys: tuple[str, ...]
    # the API semantics (Variant.semantics) a case's reference depends on, as a cache key: variants
    # whose semantics give the same key share one reference (the identity: none share)
    reference_key: Callable[[Case, str], str] = lambda case, semantics: semantics
    # the case's inputs as a backend's run_variant and timing_fns receive them (plain CE's: in the
    # case's own shape, (N, d1, ..., K))
    backend_inputs: Callable[[Case, Any], Any] = lambda case, inputs: inputs
    # what the shrink's summary line adds about a shrunk case (its inputs): "" for nothing
    shrink_note: Callable[[Case, Any], str] = lambda case, inputs: ""
    # fuzz: a drawn case turned into one of this kind (`fuzz_share` of the draws)
    fuzz_draw: Callable[[Random, Case], Case] | None = None
    fuzz_share: float = 0.0
    # the fuzz draw version (xentcheck.fuzz.draw.DRAW_VERSION) that gave the kind its share: kinds
    # take their shares in this order, so a kind added later moves only plain cases, not other kinds'
    fuzz_since: int = 1
    # how it executes: the ranks one case is split over (1: the worker computes it; a kind split
    # over ranks says how many, and its compute runs them through xentcheck.run.ranks), and a
    # rank's part of the case's inputs: (case, inputs, rank, world) -> what the adapter is handed
    # (rank None: a process holding every rank)
    ranks: Callable[[Case], int] = lambda case: 1
    shard: Callable[[Case, Any, int | None, int], Any] | None = None
    # the reductions its ids may name (core.cases.REDUCTIONS for plain and linear CE); a kind with
    # its own (distillation's batchmean) lists them
    reductions: tuple[str, ...] = ("mean", "sum", "none")
    # how `xentcheck bench` times it (None: bench does not time this kind)
    timing: Timing | None = None
    # the adapters' module in each framework's folder, backends/<framework>/<adapter>.py ("": the
    # kind's name; plain CE's are the backend classes themselves)
    adapter: str = ""

    def output(self, name: str) -> OutputSpec:
        return next(o for o in self.outputs if o.name == name)

    @property
    def gradients(self) -> tuple[OutputSpec, ...]:
        """Every declared output but the loss."""
        return self.outputs[1:]
