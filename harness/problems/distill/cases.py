"""Distillation cases: a divergence between the teacher's and the student's softmax at a
temperature (docs/distillation.md).

A distillation case is a `Case` whose kind segment starts with "kd-":

    scale1e+0_float32_16x100_kd-jsd0.5+t2+sq+tg+mask_index_batchmean

The segment's tokens, joined by "+", in this order:
    fkl | rkl | jsd<b>   the divergence: forward KL(p_t || p_s), reverse KL(p_s || p_t), or the
                         generalised JSD with weight b in (0, 1) (M = b p_t + (1 - b) p_s)
    t<T>                 the temperature (T > 0, not 1): p = softmax(z / T); absent: T = 1
    sq                   the loss (and gradients) times T^2 (Hinton's scaling)
    tg                   the teacher is not detached: its gradient is asked for too; without it,
                         the teacher's gradient must be zero
    same|peak|mask|disj  the teacher: equal to the student (KL 0), near one-hot (a class 40 above
                         the rest), sharing -inf classes with the student (vocabulary padding), on a
                         support disjoint from the student's (jsd only); absent: independent logits
Labels: "soft" (no labels) or "index" (token labels; about 30 % of the rows hold IGNORE_INDEX and
count neither in the loss nor in its denominator). Reductions: batchmean (sum / counted rows),
sum, mean (sum / (counted rows x K), torch's kl_div "mean") and none (one loss per row).
Families: the student's logits as a plain case's (scale<s>, offset<o>, and offset-<o>: every
logit near -o, all negative); the teacher's are drawn from the same family.

Inputs are a pure function of (seed, id): PCG64 raw words and IEEE-exact arithmetic only, drawn
in the order student, teacher, peak classes, masks, ignored rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import IGNORE_INDEX, Case, _integers, _rng, _uniform, format_param

KIND_TOKEN = "kd"
DIVERGENCES = ("fkl", "rkl", "jsd")
TEACHERS = ("indep", "same", "peak", "mask", "disj")  # "indep" is written as no token
REDUCTIONS = ("batchmean", "sum", "mean", "none")
LABELS = ("soft", "index")
FAMILIES = ("scale", "offset")
PEAK_GAP = 40.0  # the near one-hot teacher's lead (in logits; e^-40 / T of the others)
IGNORED_SHARE = 0.3


@dataclass(frozen=True)
class DistillSpec:
    """The settings a distillation case's id names."""
    divergence: str  # fkl, rkl, jsd
    beta: float  # jsd's weight (0 for fkl and rkl)
    temperature: float = 1.0
    squared: bool = False  # times T^2
    teacher_grad: bool = False  # the teacher is not detached
    teacher: str = "indep"

    @property
    def factor(self) -> float:
        return self.temperature ** 2 if self.squared else 1.0

    @property
    def token(self) -> str:
        parts = [self.divergence + (format_param(self.beta) if self.divergence == "jsd" else "")]
        if self.temperature != 1.0:
            parts.append(f"t{format_param(self.temperature)}")
        parts += [t for t, on in (("sq", self.squared), ("tg", self.teacher_grad)) if on]
        if self.teacher != "indep":
            parts.append(self.teacher)
        return f"{KIND_TOKEN}-" + "+".join(parts)


def _number(text: str, token: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"distillation token {token!r}: {text!r} is not a number") from None
    if format_param(value) != text:
        raise ValueError(f"distillation token {token!r}: write the number as {format_param(value)}")
    return value


@lru_cache(maxsize=1024)
def parse(spec: str) -> DistillSpec:
    """The settings of a "kd-..." segment; ValueError naming what is wrong."""
    if not spec.startswith(KIND_TOKEN + "-"):
        raise ValueError(f"not a distillation segment: {spec!r}")
    tokens = spec[len(KIND_TOKEN) + 1:].split("+")
    head, rest = tokens[0], tokens[1:]
    div = next((d for d in DIVERGENCES if head.startswith(d)), None)
    if div is None:
        raise ValueError(f"distillation {spec!r}: the first token names the divergence ({', '.join(DIVERGENCES)})")
    beta = 0.0
    if div == "jsd":
        beta = _number(head[3:], head)
        if not 0 < beta < 1:
            raise ValueError(f"distillation {spec!r}: jsd's beta must be in (0, 1) (its end points are fkl and rkl)")
    elif head != div:
        raise ValueError(f"distillation {spec!r}: {div} takes no parameter")
    temperature, squared, tg, teacher = 1.0, False, False, "indep"
    order = ("t", "sq", "tg", "teacher")
    last = -1
    for tok in rest:
        if tok.startswith("t") and tok[1:2].isdigit():
            at, temperature = 0, _number(tok[1:], tok)
            if not 0 < temperature < float("inf") or temperature == 1.0:
                raise ValueError(f"distillation {spec!r}: the temperature must be > 0 and not 1 (leave it out)")
        elif tok == "sq":
            at, squared = 1, True
        elif tok == "tg":
            at, tg = 2, True
        elif tok in TEACHERS[1:]:
            at, teacher = 3, tok
        else:
            raise ValueError(f"distillation {spec!r}: unknown token {tok!r}")
        if at <= last:
            raise ValueError(f"distillation {spec!r}: tokens once each, in the order {', '.join(order)}")
        last = at
    if squared and temperature == 1.0:
        raise ValueError(f"distillation {spec!r}: sq (times T^2) needs a temperature")
    if teacher == "disj" and div != "jsd":
        raise ValueError(f"distillation {spec!r}: disjoint supports give an infinite KL; they are for jsd")
    out = DistillSpec(div, beta, temperature, squared, tg, teacher)
    if out.token != spec:
        raise ValueError(f"distillation {spec!r}: write it as {out.token}")
    return out


def validate(case: Case) -> None:
    s = parse(case.spec)
    if case.labels not in LABELS:
        raise ValueError(f"a distillation case's labels are {' or '.join(LABELS)} (token labels for ignore_index)")
    if case.options or case.extra:
        raise ValueError("a distillation case takes no _opt- options and no extra dimensions")
    if not case.family.startswith(FAMILIES):
        raise ValueError(f"a distillation case's family is scale<s> or offset[-]<o>, not {case.family!r}")
    if s.teacher in ("mask", "disj") and case.k < 4:
        raise ValueError("masked and disjoint teachers need K >= 4")


@dataclass
class DistillInputs:
    """A distillation case's arrays, in the case's dtype (labels int64 or None)."""
    student: np.ndarray  # z_s (N, K)
    teacher: np.ndarray  # z_t (N, K)
    labels: np.ndarray | None  # (N,) for index labels: IGNORE_INDEX rows do not count

    ARRAYS = ("student", "teacher", "labels")

    def copy(self) -> DistillInputs:
        return DistillInputs(self.student.copy(), self.teacher.copy(), None if self.labels is None else self.labels.copy())

    def counted(self) -> np.ndarray:
        """(N,) bool: the rows that count."""
        n = len(self.student)
        return np.ones(n, dtype=bool) if self.labels is None else self.labels != IGNORE_INDEX


def _family_rows(family: str, u: np.ndarray) -> np.ndarray:
    if family.startswith("scale"):
        return (2.0 * u - 1.0) * float(family[len("scale"):])
    return float(family[len("offset"):]) + (2.0 * u - 1.0) * 4.0


def make_inputs(case: Case, seed: int) -> DistillInputs:
    """The case's student and teacher logits (and labels), rounded to its dtype."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    s = parse(case.spec)
    bg = _rng(seed, case.id)
    n, k, d = case.n, case.k, dtypes.info(case.dtype)
    zs = _family_rows(case.family, _uniform(bg, (n, k)))
    zt = _family_rows(case.family, _uniform(bg, (n, k)))
    peak = _integers(bg, (n,), k)
    if s.teacher == "same":
        zt = zs.copy()
    elif s.teacher == "peak":
        zt[np.arange(n), peak] += PEAK_GAP
    elif s.teacher == "mask":  # a quarter of the classes -inf in both (padding), the peak class kept
        pad = _uniform(bg, (n, k)) < 0.25
        pad[np.arange(n), peak] = False
        zs[pad] = zt[pad] = -np.inf
    elif s.teacher == "disj":  # each class finite in exactly one of the two, each side one at least
        side = _uniform(bg, (n, k)) < 0.5
        side[:, 0], side[:, 1] = True, False
        zs[~side] = -np.inf
        zt[side] = -np.inf
    labels = None
    if case.labels == "index":
        labels = peak.copy()
        ignored = _uniform(bg, (n,)) < IGNORED_SHARE
        ignored[:1] = False  # at least one row counts
        labels[ignored] = IGNORE_INDEX
    with np.errstate(over="ignore"):
        return DistillInputs(zs.astype(d.np_type), zt.astype(d.np_type), labels)


def _case(family: str, dt: str, n: int, k: int, spec: str, labels: str, reduction: str) -> Case:
    return Case(family, dt, n, k, labels, reduction, spec=spec)


def distill_cases(dtype_names, full: bool = False) -> list[Case]:
    """The default suite: a few cases per dtype, the divergences, reductions and teachers rotated
    over the dtypes. full=True adds the grid: every divergence x teacher x reduction on a few
    families, temperatures with and without T^2, and the teacher's gradient."""
    out: list[Case] = []
    rot = (("kd-fkl+t2+sq", "index", "batchmean", "scale1e+1", 16, 100),
           ("kd-rkl+t0.5+peak", "soft", "none", "scale1e+0", 8, 50),
           ("kd-jsd0.25+tg+mask", "soft", "sum", "scale1e+0", 8, 64),
           ("kd-jsd0.5+t2+disj", "index", "mean", "offset-1e+4", 8, 64))
    for di, dt in enumerate(dtypes.DTYPE_NAMES):
        if dt not in dtype_names:
            continue
        out.append(_case("scale1e+0", dt, 8, 32, "kd-fkl+same", "soft", "batchmean"))
        for j in (di, di + 2):
            spec, labels, red, fam, n, k = rot[j % len(rot)]
            out.append(_case(fam, dt, n, k, spec, labels, red))
        if not full:
            continue
        for div in ("fkl", "rkl", "jsd0.5", "jsd0.1", "jsd0.9"):
            for ti, teacher in enumerate(("", "+same", "+peak", "+mask", "+disj")):
                if teacher == "+disj" and not div.startswith("jsd"):
                    continue
                red = REDUCTIONS[(ti + len(div)) % 4]
                out.append(_case("scale1e+0", dt, 16, 100, f"kd-{div}{teacher}", LABELS[ti % 2], red))
                out.append(_case("scale1e+1", dt, 16, 100, f"kd-{div}+t2+sq+tg{teacher}", "index",
                                 REDUCTIONS[(ti + 1) % 4]))
            for fam in ("offset1e+4", "offset-1e+4", "scale1e+2"):
                if abs(float(fam[6:] if fam.startswith("offset") else fam[5:])) * 4 <= dtypes.info(dt).max:
                    out.append(_case(fam, dt, 16, 100, f"kd-{div}+t3", "soft", "batchmean"))
        out.append(_case("scale1e+0", dt, 4, 32000, "kd-jsd0.5+t0.9", "index", "batchmean"))
    return list(dict.fromkeys(out))
