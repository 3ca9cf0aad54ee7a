"""Fuzzing linear-CE: a drawn plain case turned into a linear-CE one (the record's fuzz_draw)."""

from __future__ import annotations

import math
import random

from xentcheck.core.cases import Case
from xentcheck.fuzz.draw import log_uniform, token_name
from xentcheck.problems.linear.cases import LINEAR_OPTIONS

WEIGHT_ELEMENTS = 1 << 20  # V x D: W of at most 8 MiB in float64
FAMILIES = ("scale", "offset", "dominant", "neartie")


def draw(rng: random.Random, case: Case) -> Case:
    """The drawn case as a linear-CE case: index labels, no extra dimensions, a family and options
    linear-CE takes (an invalid combination is redrawn by draw_case), D with V x D bounded."""
    d = min(log_uniform(rng, 1, 512), max(1, WEIGHT_ELEMENTS // case.k))
    family = case.family if token_name(case.family) in FAMILIES else "scale1e+0"
    names = [t for t in case.options.split("+") if t and token_name(t) in LINEAR_OPTIONS]
    if family.startswith("offset") or rng.random() < 0.5:
        names.append("b")
    n = case.n * max(1, math.prod(case.extra))
    return Case(family, case.dtype, n, case.k, "index", case.reduction, "+".join(names), d=d)
