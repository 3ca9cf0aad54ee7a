"""Drawing fuzz cases: random shapes, families, label forms, reductions and options, as case ids.

Case i of a campaign is a pure function of (seed, i) and the draw version: its generator is
Python's `random.Random` seeded with the text "xentcheck-fuzz/<seed>/<i>" (string seeds go
through SHA-512, and the methods used here have given the same numbers since Python 3.2), so for
one DRAW_VERSION the same seed gives the same cases on every machine, and a campaign can resume,
or run in batches, from any index. A change to what (seed, i) draws bumps DRAW_VERSION: a
campaign records the version it was drawn with and refuses to resume under another.

Every drawn case is an ordinary canonical case id (xentcheck.core.cases), so the workers, the
reference, repro and shrinking run it as they run the suites' cases. The draw covers:

- shapes: K small, prime, a power of two, one off a power of two, a vocabulary size, or
  log-uniform, up to MAX_K (256k); N = 1 often, N = 0 sometimes; up to three extra dimensions;
  N x d1 x ... x K at most MAX_ELEMENTS, so that a case runs in seconds on two cores;
- every logit family: uniform scales from tiny (all ties after rounding) to near the dtype's
  largest value, large common offsets, near-ties, a dominant logit, -inf masks, a whole row
  masked, +inf, NaN, logits near the dtype's maximum;
- every label form (label weights that do not sum to one included) and reduction, and every
  option and valid combination of them: class weights, ignored targets (some or all), label
  smoothing, an out-of-range class, and the LLM options (logit scale, softcap, z-loss, cotangent)
  with parameters from small to large;
- cases of other kinds, each the share its problem record asks for (fuzz_share), drawn by its
  fuzz_draw from a plain one (linear-CE: xentcheck.problems.linear.fuzz), the kinds taking their
  shares in the order of the draw version that gave each its share (Problem.fuzz_since).
"""

from __future__ import annotations

import math
import random
import re

from xentcheck.core import dtypes
from xentcheck.core.cases import ALL_LABEL_FORMS, OPTIONS, REDUCTIONS, Case, format_param
from xentcheck.problems import PROBLEMS

# 1: plain, linear-CE, distillation and RL cases; 2: GRPO and linear distillation cases too
DRAW_VERSION = 2
MAX_K = 1 << 18  # 262,144 classes ("256k")
MAX_ELEMENTS = 1 << 18  # N x d1 x ... x K: K = 256k only with N = 1
MAX_ROWS = 4096
VOCABULARIES = (1000, 32000, 32768, 50257, 65536, 100277, 128256, 151936, 256000, MAX_K)
# family -> weight; scale and offset take a value drawn per case
FAMILY_WEIGHTS = {"scale": 30, "offset": 8, "neartie": 10, "dominant": 8, "masked": 10, "rowmasked": 5,
                  "posinf": 4, "nan": 4, "nearmax": 5}
MANTISSAS = ("1", "1", "1", "2", "2.5", "3", "5", "7.5")
PLAIN = 0.4  # the share of cases without options: every API takes those
# the LLM options' parameters: typical and extreme values
SCALES = (0.5, 3.0, 1 / 3, 1e-3, 0.1, 10.0, 100.0, 1 / 30)
SOFTCAPS = (30.0, 50.0, 15.0, 1.0, 0.5, 1e4)
ZLOSSES = (1e-4, 1e-3, 1e-2, 1.0)
COTANGENTS = (1024.0, 1 / 3, -2.0, 1e-3, 0.5, 65536.0, -1e-4)


def _prime_at_least(v: int) -> int:
    def prime(p: int) -> bool:
        return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))

    while not prime(v):
        v += 1
    return v


def log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    """An integer in [lo, hi], uniform in log scale."""
    return min(hi, max(lo, int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))


def _draw_k(rng: random.Random) -> int:
    kind = rng.choices(("small", "prime", "pow2", "nearpow2", "vocab", "any"), (20, 20, 12, 12, 8, 28))[0]
    if kind == "small":
        return rng.randint(2, 16)
    if kind == "prime":
        return min(_prime_at_least(log_uniform(rng, 2, MAX_K - 100)), MAX_K)
    if kind == "pow2":
        return 1 << rng.randint(1, 18)
    if kind == "nearpow2":
        return min(MAX_K, max(2, (1 << rng.randint(2, 18)) + rng.choice((-3, -1, 1, 3))))
    if kind == "vocab":
        return rng.choice(VOCABULARIES)
    return log_uniform(rng, 2, MAX_K)


def _draw_shape(rng: random.Random, k: int) -> tuple[int, tuple[int, ...]]:
    """N and the extra dimensions, with N x d1 x ... x K <= MAX_ELEMENTS."""
    rows_max = max(1, min(MAX_ROWS, MAX_ELEMENTS // k))
    extra: tuple[int, ...] = ()
    if rows_max >= 2 and rng.random() < 0.15:
        extra = tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 3)))
        while math.prod(extra) > rows_max:
            extra = extra[:-1]
    rows_max //= max(1, math.prod(extra))
    r = rng.random()
    n = 0 if r < 0.04 else 1 if r < 0.25 else log_uniform(rng, 1, max(1, rows_max))
    return n, extra


def _exponent_range(dtype: str) -> int:
    """The largest decimal exponent e with 10^(e+1) below the dtype's largest value."""
    return int(math.floor(math.log10(dtypes.info(dtype).max))) - 1


def _draw_family(rng: random.Random, dtype: str) -> str:
    family = rng.choices(list(FAMILY_WEIGHTS), list(FAMILY_WEIGHTS.values()))[0]
    top = _exponent_range(dtype)
    if family == "scale":
        # mostly ordinary logits; one in four from tiny (rounding to ties) to near the dtype's range
        e = rng.randint(-top - 3, top) if rng.random() < 0.25 else rng.randint(-3, min(4, top))
        return f"scale{rng.choice(MANTISSAS)}e{e:+d}"
    if family == "offset":
        return f"offset{rng.choice(MANTISSAS)}e{rng.randint(1, max(1, top - 1)):+d}"  # offset x 4 fits (_fits)
    return family


def _param(name: str, value: float) -> str:
    return f"{name}{format_param(value)}"


def _draw_options(rng: random.Random, labels: str, reduction: str, n: int) -> str:
    """A valid "+"-joined option string (Case.validate's rules), in OPTIONS order."""
    names: dict[str, str] = {}
    if rng.random() < PLAIN:
        return ""
    if labels == "index":
        pick = rng.choices(("", "ign", "allign", "oor"), (60, 25, 7, 8))[0]
        if pick == "oor" and n > 0:
            return "oor"  # combines with nothing
        if pick in ("ign", "allign"):
            names[pick] = pick
    if rng.random() < 0.3:
        names["w"] = "w"
    if rng.random() < 0.3:
        names["ls"] = "ls"
    if rng.random() < 0.2:
        names["s"] = _param("s", rng.choice(SCALES))
    if rng.random() < 0.2:
        names["cap"] = _param("cap", rng.choice(SOFTCAPS))
    if rng.random() < 0.2:
        names["z"] = _param("z", rng.choice(ZLOSSES))
    if rng.random() < 0.2:
        names["ct"] = "ct" if reduction == "none" else _param("ct", rng.choice(COTANGENTS))
    return "+".join(names[o] for o in OPTIONS if o in names)


def token_name(token: str) -> str:
    """A family's or option token's name without its number: "scale1e+0" -> "scale", "z1e-4" -> "z"."""
    m = re.match(r"[a-z]*", token)  # matches every string (maybe empty)
    return m[0] if m else ""


def _as_other_kind(rng: random.Random, case: Case) -> Case:
    """The drawn plain case, or (with the share each kind's record asks for) one of another kind."""
    u, below = rng.random(), 0.0
    # stable: within one version, the registry's order
    for problem in sorted(PROBLEMS.values(), key=lambda p: p.fuzz_since):
        below += problem.fuzz_share
        if problem.fuzz_draw is not None and u < below:
            return problem.fuzz_draw(rng, case)
    return case


def draw_case(seed: int, index: int, dtype_names: list[str] | tuple[str, ...]) -> Case:
    """Case `index` of the campaign with this seed: a valid case whose id round-trips."""
    for attempt in range(100):
        rng = random.Random(f"xentcheck-fuzz/{seed}/{index}" + (f"/{attempt}" if attempt else ""))
        dtype = rng.choice(list(dtype_names))
        k = _draw_k(rng)
        n, extra = _draw_shape(rng, k)
        labels, reduction = rng.choice(ALL_LABEL_FORMS), rng.choice(REDUCTIONS)
        family = _draw_family(rng, dtype)
        options = _draw_options(rng, labels, reduction, n)
        case = Case(family, dtype, n, k, labels, reduction, options, extra)
        case = _as_other_kind(rng, case)
        try:
            if Case.from_id(case.id) == case:
                return case
        except ValueError:
            continue
    raise RuntimeError(f"no valid case drawn for seed {seed}, index {index}")  # a bug in the drawing


def draw_cases(seed: int, start: int, count: int, dtype_names: list[str] | tuple[str, ...]) -> list[Case]:
    """Cases start, ..., start + count - 1 of the campaign with this seed."""
    return [draw_case(seed, i, dtype_names) for i in range(start, start + count)]
