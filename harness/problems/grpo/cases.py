"""GRPO cases: the clipped policy-gradient objective of B sampled completions of L tokens, from the
new policy's logits z (B, L, K), the sampled tokens, the old policy's and a reference policy's
log-probabilities and one advantage per completion (docs/rl.md).

A GRPO case is a `Case` with one extra dimension (the completion length L: the logits are (B, L, K),
the id's shape B x K x L in torch's order) and a kind segment that starts with "grpo-":

    scale1e+1_float32_4x100x8_grpo-clip0.2+hi0.28+kl0.04+t0.7_index_grpo

Tokens, joined by "+", in this order:
    clip<e>     the clip range's lower side: ratios below 1 - e are clipped (and the upper side's
                too, unless hi is given)
    hi<e>       the upper side: ratios above 1 + e are clipped (DAPO's clip-higher)
    kl<beta>    the k3 KL penalty against the reference policy, beta times exp(ref - new) - (ref - new) - 1
    t<T>        the temperature: log p = log_softmax(z / T)
Labels are the sampled tokens ("index"). The reduction is the loss type (Liger's and TRL's
`loss_type`): "grpo" (each completion's mean over its tokens, then the mean over completions),
"bnpo" (the mean over every counted token) or "drgrpo" (the sum over B L).

Inputs are a pure function of (seed, id): PCG64 raw words, exact arithmetic, and one float64
log-softmax whose result is snapped to a grid of 2^-20 (a last-bit difference of exp or log
between CPUs moves no input). Drawn in this order: logits, tokens, completion lengths, advantage
magnitudes, ratio picks, ratio jitter, reference offsets. The log-ratio log p_new - log p_old of
each token is one of seven targets placed around the clip range's two ends (each well inside or
well outside it, or 0), so that every case has ratios inside the range and outside it on both
sides; advantages alternate in sign (a fifth completion's is 0); for B >= 4 the first two
completions are full (with L >= 7, each reaches all seven targets: both signs of advantage meet
ratios past both ends) and the fourth empty (mask all 0: it counts nothing, as the clamps say).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case, _integers, _rng, _uniform, format_param

KIND_TOKEN = "grpo"
LOSS_TYPES = ("grpo", "bnpo", "drgrpo")
GRID = 2.0 ** -20  # the log-probabilities' grid (module docstring)
MIN_EPS = 0.05  # a clip side narrower than this leaves the ratio targets no room around it


@dataclass(frozen=True)
class GrpoSpec:
    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    temperature: float = 1.0

    @property
    def token(self) -> str:
        parts = [f"clip{format_param(self.eps_low)}"]
        if self.eps_high != self.eps_low:
            parts.append(f"hi{format_param(self.eps_high)}")
        if self.beta:
            parts.append(f"kl{format_param(self.beta)}")
        if self.temperature != 1.0:
            parts.append(f"t{format_param(self.temperature)}")
        return f"{KIND_TOKEN}-" + "+".join(parts)

    def targets(self) -> tuple[float, ...]:
        """The seven log-ratio targets: far and near below the clip range, inside it (below, at 0,
        above) and near and far above it."""
        lo, hi = math.log1p(-self.eps_low), math.log1p(self.eps_high)
        return (lo - 0.6, lo - 0.15, lo / 2, 0.0, hi / 2, hi + 0.15, hi + 0.6)


@lru_cache(maxsize=1024)
def parse(spec: str) -> GrpoSpec:
    if not spec.startswith(KIND_TOKEN + "-clip"):
        raise ValueError(f"GRPO segment {spec!r}: it starts with grpo-clip<eps>")
    values: dict[str, float] = {}
    for tok in spec[len(KIND_TOKEN) + 1:].split("+"):
        name = next((n for n in ("clip", "hi", "kl", "t") if tok.startswith(n) and tok[len(n):len(n) + 1].isdigit()),
                    None)
        if name is None or name in values:
            raise ValueError(f"GRPO segment {spec!r}: unknown or repeated token {tok!r}")
        try:
            values[name] = float(tok[len(name):])
        except ValueError:
            raise ValueError(f"GRPO segment {spec!r}: {tok!r} is no number") from None
    lo = values["clip"]
    out = GrpoSpec(lo, values.get("hi", lo), values.get("kl", 0.0), values.get("t", 1.0))
    if not (MIN_EPS <= out.eps_low <= 0.9 and MIN_EPS <= out.eps_high <= 10):
        raise ValueError(f"GRPO segment {spec!r}: the clip sides must be in [{MIN_EPS}, 0.9] (low) and "
                         f"[{MIN_EPS}, 10] (high)")
    if not (0 <= out.beta <= 100 and 0 < out.temperature <= 100):
        raise ValueError(f"GRPO segment {spec!r}: kl in [0, 100], t in (0, 100]")
    if out.token != spec:
        raise ValueError(f"GRPO segment {spec!r}: write it as {out.token}")
    return out


def validate(case: Case) -> None:
    parse(case.spec)
    if case.labels != "index" or case.options or len(case.extra) != 1:
        raise ValueError("a GRPO case has index labels (the sampled tokens), no _opt- options and one extra "
                         "dimension, the completion length: B x K x L")
    if not case.family.startswith("scale"):
        raise ValueError(f"a GRPO case's family is scale<s>, not {case.family!r}")
    if case.n < 1:
        raise ValueError("a GRPO case has at least one completion (B >= 1)")


@dataclass
class GrpoInputs:
    logits: np.ndarray  # (B, L, K) in the dtype: the new policy's
    labels: np.ndarray  # (B, L) int64: the sampled tokens
    mask: np.ndarray  # (B, L) int64 0/1: the completion mask (1: a counted token)
    old_logp: np.ndarray  # (B, L) in the dtype: log p_old(y)
    ref_logp: np.ndarray  # (B, L) in the dtype: log p_ref(y), read only with a KL penalty
    advantages: np.ndarray  # (B,) in the dtype: one per completion

    ARRAYS = ("logits", "labels", "mask", "old_logp", "ref_logp", "advantages")

    def copy(self) -> GrpoInputs:
        return GrpoInputs(*(getattr(self, a).copy() for a in self.ARRAYS))


def log_probs64(logits: np.ndarray, labels: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(z / T)[y] in float64, the row maximum taken out."""
    a = logits.astype(np.float64) / temperature
    m = a.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]
    return np.take_along_axis(a, labels[..., None], axis=-1)[..., 0] - lse


def _snap(v: np.ndarray) -> np.ndarray:
    return np.round(v / GRID) * GRID


def make_inputs(case: Case, seed: int) -> GrpoInputs:
    if seed < 0:
        raise ValueError("seed must be >= 0")
    s = parse(case.spec)
    bg = _rng(seed, case.id)
    b, k, (seq,) = case.n, case.k, case.extra
    d = dtypes.info(case.dtype).np_type
    x: np.ndarray = ((2.0 * _uniform(bg, (b, seq, k)) - 1.0) * float(case.family[5:])).astype(d)
    tokens = _integers(bg, (b, seq), k)
    lengths = 1 + _integers(bg, (b,), seq)
    if b >= 4:
        lengths[0], lengths[1], lengths[3] = seq, seq, 0
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    mags = np.ldexp(1.0 + _uniform(bg, (b,)), (_integers(bg, (b,), 4) - 2).astype(np.int32))
    adv = np.where(np.arange(b) % 2 == 0, mags, -mags)
    if b >= 5:
        adv[4] = 0.0
    picks = (_integers(bg, (b, 1), 7) + np.arange(seq)[None, :]) % 7
    jitter = (2.0 * _uniform(bg, (b, seq)) - 1.0) * 0.02
    ref_off = (2.0 * _uniform(bg, (b, seq)) - 1.0) * 0.5
    logp = log_probs64(x, tokens, s.temperature)
    ratio = np.asarray(s.targets())[picks] + jitter
    with np.errstate(over="ignore"):
        return GrpoInputs(x, tokens, mask, _snap(logp - ratio).astype(d), _snap(logp + ref_off).astype(d),
                          adv.astype(d))


def grpo_cases(dtype_names, full: bool = False) -> list[Case]:
    """Default: one per dtype, each loss type and the clip, clip-higher and KL settings among them.
    full=True adds the grid: every loss type for each dtype at three settings, and K = 32,000."""
    default = {"float16": ("scale1e+0", 4, 100, 8, "grpo-clip0.2+hi0.28+kl0.04", "grpo"),
               "bfloat16": ("scale1e+0", 4, 100, 8, "grpo-clip0.2", "drgrpo"),
               "float32": ("scale1e+1", 6, 100, 8, "grpo-clip0.2+hi0.28+kl0.04+t0.7", "grpo"),
               "float64": ("scale1e+0", 6, 64, 8, "grpo-clip0.2+t0.7", "bnpo")}
    out: list[Case] = []
    for dt in dtypes.DTYPE_NAMES:
        if dt not in dtype_names:
            continue
        fam, b, k, seq, spec, red = default[dt]
        out.append(Case(fam, dt, b, k, "index", red, extra=(seq,), spec=spec))
        if not full:
            continue
        fam = "scale1e+0" if dt in ("float16", "bfloat16") else "scale1e+1"
        for spec in ("grpo-clip0.2", "grpo-clip0.2+hi0.28+kl0.04", "grpo-clip0.3+kl0.1+t0.7"):
            out += [Case(fam, dt, 6, 100, "index", red, extra=(8,), spec=spec) for red in LOSS_TYPES]
        out.append(Case("scale1e+0", dt, 2, 32000, "index", "grpo", extra=(4,), spec="grpo-clip0.2+hi0.28+kl0.04"))
    return list(dict.fromkeys(out))
