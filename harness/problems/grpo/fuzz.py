"""Fuzzing GRPO: a drawn plain case turned into a GRPO one (the record's fuzz_draw)."""

from __future__ import annotations

import random

from xentcheck.core.cases import Case
from xentcheck.fuzz.draw import MANTISSAS, log_uniform
from xentcheck.problems.grpo.cases import LOSS_TYPES, MIN_EPS, GrpoSpec

MAX_ELEMENTS = 1 << 18  # B x L x K: the plain draw's bound, a case of seconds on two cores


def draw(rng: random.Random, case: Case) -> Case:
    """The clip's sides (clip-higher half the time), a KL penalty and a temperature (each half the
    time), a loss type, B completions of L tokens and a logit scale, on the drawn case's dtype and
    K, with B x L x K bounded."""
    low = rng.choice((0.2, 0.2, 0.1, 0.3, MIN_EPS, 0.9, round(rng.uniform(MIN_EPS, 0.9), 2)))
    high = low if rng.random() < 0.5 else rng.choice((0.28, 0.3, 0.4, 1.0, 10.0, round(rng.uniform(MIN_EPS, 10), 2)))
    beta = 0.0 if rng.random() < 0.5 else rng.choice((0.04, 0.1, 1e-3, 1.0, 100.0, round(rng.uniform(0, 1), 3)))
    t = 1.0 if rng.random() < 0.5 else rng.choice((0.7, 0.6, 1.5, 2.0, 0.1, 10.0, round(rng.uniform(0.1, 5), 2)))
    b, seq = log_uniform(rng, 1, 16), log_uniform(rng, 1, 64)
    while b * seq * case.k > MAX_ELEMENTS and seq > 1:
        seq //= 2
    b = max(1, min(b, MAX_ELEMENTS // (seq * case.k)))
    family = f"scale{rng.choice(MANTISSAS)}e{rng.randint(-2, 2):+d}"
    return Case(family, case.dtype, b, case.k, "index", rng.choice(LOSS_TYPES), extra=(seq,),
                spec=GrpoSpec(low, high, beta, t).token)
