"""The problem registry: one record per kind of softmax loss (base.Problem), looked up by a case's
kind. Every layer that differs by kind reads the record; docs/architecture.md has the checklist
for adding a kind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xentcheck.problems.base import OutputSpec, Problem, Section
from xentcheck.problems.ce import CE
from xentcheck.problems.distill import DISTILL
from xentcheck.problems.grpo import GRPO
from xentcheck.problems.lindistill import LINDISTILL
from xentcheck.problems.linear import LINEAR
from xentcheck.problems.rl import RL
from xentcheck.problems.sharded import SPLIT, VOCAB

if TYPE_CHECKING:
    from xentcheck.core.cases import Case

__all__ = ["OutputSpec", "Problem", "Section", "PROBLEMS", "problem_of", "output_specs", "OUTPUT_NAMES", "runs",
           "of_arrays", "kind_of", "DEFAULT_KIND", "outputs_of", "OUTPUT_TITLES"]

# GRPO before RL: a GRPO caller's arrays hold RL's keys too (of_arrays takes the first match)
PROBLEMS: dict[str, Problem] = {p.kind: p for p in (CE, LINEAR, DISTILL, LINDISTILL, GRPO, RL, VOCAB, SPLIT)}


def problem_of(case: Case) -> Problem:
    """The record of the case's kind."""
    return PROBLEMS[case.kind]


DEFAULT_KIND = CE.kind  # a variant's without a `kind`: plugins written before the registry declare none


def kind_of(case: Case) -> str:
    """The kind of the record that claims the case (one does: their claims split the ids)."""
    return next(p.kind for p in PROBLEMS.values() if p.claims(case))


def runs(variant, case: Case) -> bool:
    """Whether a backend's variant computes cases of this case's kind (DEFAULT_KIND without one)."""
    return getattr(variant, "kind", DEFAULT_KIND) == case.kind


def of_arrays(raw: Mapping[str, Any]) -> Problem:
    """The record whose kind a caller's dict of named arrays is (it holds each of the record's
    `array_keys`); ValueError naming every kind's keys when none matches."""
    for p in PROBLEMS.values():
        if all(k in raw for k in p.array_keys):
            return p
    kinds = "; ".join(f"{p.title}: {', '.join(p.array_keys)}" for p in PROBLEMS.values())
    raise ValueError(f"the arrays are of no known kind (keys {', '.join(map(repr, raw)) or 'none'}; each kind "
                     f"needs: {kinds})")


def output_specs() -> tuple[OutputSpec, ...]:
    """Every kind's declared outputs, each name once, in registry order (the loss first): the
    columns of the reports that cover results of every kind."""
    seen: dict[str, OutputSpec] = {}
    for p in PROBLEMS.values():
        for o in p.outputs:
            seen.setdefault(o.name, o)
    return tuple(seen.values())


OUTPUT_NAMES: tuple[str, ...] = tuple(o.name for o in output_specs())
OUTPUT_TITLES: dict[str, str] = {o.name: o.title for o in output_specs()}


def outputs_of(cases: Iterable[Case]) -> tuple[OutputSpec, ...]:
    """The declared outputs of these cases' kinds, each name once, in registry order (the loss first)."""
    kinds = {c.kind for c in cases}
    names = {o.name for p in PROBLEMS.values() if p.kind in kinds for o in p.outputs}
    return tuple(o for o in output_specs() if o.name in names)


def suite(dtype_names: tuple[str, ...] | list[str], full: bool = False) -> list[Case]:
    """The default suite (every kind's sections in order), or with `full` the full suite: the
    default one, then what each section adds, each case once."""
    sections = sorted((s for p in PROBLEMS.values() for s in p.sections), key=lambda s: s.order)
    out = [c for s in sections for c in s.cases(dtype_names, False)]
    if full:
        out = list(dict.fromkeys(out + [c for s in sections for c in s.cases(dtype_names, True)]))
    return out
