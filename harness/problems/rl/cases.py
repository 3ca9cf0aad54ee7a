"""RL policy-gradient cases: the log-probability of each sampled token and the policy's entropy,
from logits z (N, K) at a temperature, with per-token upstream cotangents (docs/rl.md).

An RL case is a `Case` whose kind segment starts with "rl-":

    offset-1e+4_float32_16x1000_rl-lp+t0.7+peak_index_none

Tokens, joined by "+", in this order:
    lp          token log-probabilities and entropy (the one output set today)
    t<T>        the temperature: p = softmax(z / T) (verl divides the logits by it); absent: T = 1
    peak        a sharply peaked policy: one class 40 logits above the rest, the sampled token
                that class in three rows of four (entropy near 0, log-probabilities near 0)
Labels are the sampled token ids ("index"); the reduction is "none" (one value per token). The
cotangents: advantages A (N,) for the log-probabilities and an entropy coefficient per token c
(N,), each +-(1 + u) 2^e over 4.5 decades with exact zeros (core.cases.cotangent_rows).
Families: scale<s>, offset<o> and offset-<o> (every logit near -o: a running maximum started at
0 underflows there).

Inputs are a pure function of (seed, id): PCG64 raw words and IEEE-exact arithmetic only, drawn
in the order logits, tokens, peak classes, advantages, entropy coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case, _integers, _rng, _uniform, cotangent_rows, format_param

KIND_TOKEN = "rl"
PEAK_GAP = 40.0


@dataclass(frozen=True)
class RlSpec:
    temperature: float = 1.0
    peak: bool = False

    @property
    def token(self) -> str:
        parts = ["lp"]
        if self.temperature != 1.0:
            parts.append(f"t{format_param(self.temperature)}")
        if self.peak:
            parts.append("peak")
        return f"{KIND_TOKEN}-" + "+".join(parts)


@lru_cache(maxsize=1024)
def parse(spec: str) -> RlSpec:
    if not spec.startswith(KIND_TOKEN + "-lp"):
        raise ValueError(f"RL segment {spec!r}: it starts with rl-lp")
    t, peak = 1.0, False
    for tok in spec[len(KIND_TOKEN) + 1:].split("+")[1:]:
        if tok.startswith("t") and tok[1:2].isdigit():
            t = float(tok[1:])
            if not 0 < t < float("inf") or t == 1.0:
                raise ValueError(f"RL segment {spec!r}: the temperature must be > 0 and not 1 (leave it out)")
        elif tok == "peak":
            peak = True
        else:
            raise ValueError(f"RL segment {spec!r}: unknown token {tok!r}")
    out = RlSpec(t, peak)
    if out.token != spec:
        raise ValueError(f"RL segment {spec!r}: write it as {out.token}")
    return out


def validate(case: Case) -> None:
    parse(case.spec)
    if case.labels != "index" or case.options or case.extra:
        raise ValueError("an RL case has index labels (the sampled tokens), no _opt- options, no extra dimensions")
    if not case.family.startswith(("scale", "offset")):
        raise ValueError(f"an RL case's family is scale<s> or offset[-]<o>, not {case.family!r}")


@dataclass
class RlInputs:
    logits: np.ndarray  # (N, K) in the dtype
    labels: np.ndarray  # (N,) int64: the sampled tokens
    advantages: np.ndarray  # (N,) the log-probabilities' cotangent, in the dtype
    coefficients: np.ndarray  # (N,) the entropy's cotangent, in the dtype

    ARRAYS = ("logits", "labels", "advantages", "coefficients")

    def copy(self) -> RlInputs:
        return RlInputs(self.logits.copy(), self.labels.copy(), self.advantages.copy(), self.coefficients.copy())


def make_inputs(case: Case, seed: int) -> RlInputs:
    if seed < 0:
        raise ValueError("seed must be >= 0")
    s = parse(case.spec)
    bg = _rng(seed, case.id)
    n, k, d = case.n, case.k, dtypes.info(case.dtype)
    u = _uniform(bg, (n, k))
    x = (2.0 * u - 1.0) * float(case.family[5:]) if case.family.startswith("scale") else \
        float(case.family[6:]) + (2.0 * u - 1.0) * 4.0
    tokens = _integers(bg, (n,), k)
    peak = _integers(bg, (n,), k)
    if s.peak:
        x[np.arange(n), peak] += PEAK_GAP
        tokens[np.arange(n) % 4 != 3] = peak[np.arange(n) % 4 != 3]
    adv = cotangent_rows(bg, n)
    coef = cotangent_rows(bg, n)
    with np.errstate(over="ignore"):
        return RlInputs(x.astype(d.np_type), tokens, adv.astype(d.np_type), coef.astype(d.np_type))


def rl_cases(dtype_names, full: bool = False) -> list[Case]:
    """Default: two per dtype (plain logits at a temperature; a peaked policy or all-negative
    logits, alternating). full=True adds large offsets of both signs, scales, peaked policies at
    temperatures and K = 32,000."""
    out: list[Case] = []
    for di, dt in enumerate(dtypes.DTYPE_NAMES):
        if dt not in dtype_names:
            continue
        out.append(Case("scale1e+1", dt, 16, 100, "index", "none", spec="rl-lp+t0.7"))
        out.append(Case("offset-1e+4", dt, 8, 64, "index", "none", spec="rl-lp") if di % 2 else
                   Case("scale1e+0", dt, 16, 50, "index", "none", spec="rl-lp+peak"))
        if not full:
            continue
        for fam in ("scale1e+0", "scale1e+2", "offset1e+4", "offset-1e+4", "offset1e+8", "offset-1e+8"):
            if abs(float(fam[5:] if fam.startswith("scale") else fam[6:])) * 4 <= dtypes.info(dt).max:
                out += [Case(fam, dt, 16, 100, "index", "none", spec=sp) for sp in ("rl-lp", "rl-lp+t0.6+peak")]
        out.append(Case("scale1e+1", dt, 4, 32000, "index", "none", spec="rl-lp+t1.5"))
    return list(dict.fromkeys(out))
