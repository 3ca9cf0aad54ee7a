"""Fuzzing distillation: a drawn plain case turned into a distillation one (the record's fuzz_draw)."""

from __future__ import annotations

import random

from xentcheck.core.cases import Case
from xentcheck.fuzz.draw import token_name
from xentcheck.problems.distill.cases import REDUCTIONS, DistillSpec

MAX_ELEMENTS = 1 << 22  # N x K: the long-double reference of float64 cases is slow


def draw(rng: random.Random, case: Case) -> Case:
    """A divergence (beta in (0, 1) for jsd), a temperature (or none), T^2, the teacher's gradient
    and a teacher form, on the drawn case's dtype, K and family (scale or offset, either sign)."""
    div = rng.choice(("fkl", "rkl", "jsd"))
    beta = rng.choice((0.5, 0.1, 0.9, round(rng.uniform(0.01, 0.99), 3))) if div == "jsd" else 0.0
    t = rng.choice((1.0, 1.0, 2.0, 0.5, 0.9, 3.0, round(rng.uniform(0.1, 10), 2)))
    teachers = ["indep", "same", "peak"] + (["mask"] if case.k >= 4 else []) + \
        (["disj"] if case.k >= 4 and div == "jsd" else [])
    spec = DistillSpec(div, beta, t, t != 1.0 and rng.random() < 0.5, rng.random() < 0.5, rng.choice(teachers))
    family = case.family if token_name(case.family) in ("scale", "offset") else "scale1e+0"
    if family.startswith("offset") and rng.random() < 0.5:
        family = "offset-" + family[len("offset"):]
    n = max(1, min(case.n * max(1, len(case.extra)), MAX_ELEMENTS // case.k))
    return Case(family, case.dtype, n, case.k, rng.choice(("soft", "index")), rng.choice(REDUCTIONS),
                spec=spec.token)
