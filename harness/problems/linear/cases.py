"""Linear-CE cases: the loss of a language model's last layer, CE(h W^T + b, y), as fused kernels
(torch's F.linear_cross_entropy, cut-cross-entropy, Liger) compute it without the N x V logits.

A linear-CE case is a `Case` with a hidden size d > 0 (K is the vocabulary V); its id writes D
after the shape: ``scale1e+0_float32_32x1000_lin64_index_mean_opt-b``. Labels are class
indices (ignored positions: option "ign"); option "b" adds a bias b (V,). The other options are
the plain cases' (w, ign, allign, ls; cap and z: the reference takes them; ct); "oor" and "s"
are not for this kind, nor extra dimensions, nor z together with w (their means' denominators
differ). docs/linear-ce.md has the formulas.

Families (the logits' standard deviation is about s; h uniform in [-1, 1], W uniform in
[-a, a] with a = 3 s / sqrt(D)):
    scale<s>    as above
    offset<o>   s = 1, and a bias o + U[-4, 4] (needs option "b"): a huge common offset
    dominant    s = 1 and h_n += 13 W_{y_n}: the target's logit leads by about 40 (p_y ~ 1)
    neartie     every row of W the same but for a few units in the last place of one entry:
                logits a few ulps apart

Inputs are a pure function of (seed, id), as for plain cases: PCG64 raw words and IEEE-exact
arithmetic (+, -, x, /, sqrt) only; the stream is drawn in the order h, W, targets, bias, then
the options' draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import (
    LABEL_FORMS,
    REDUCTIONS,
    Case,
    _integers,
    _rng,
    _uniform,
    format_param,
    option_inputs,
)

MAX_D = 1 << 16
MAX_WEIGHT_ELEMENTS = 1 << 26  # V x D: 256,000 x 256 (W of 256 MiB in float32)
LINEAR_OPTIONS = frozenset({"w", "ign", "allign", "ls", "cap", "z", "ct", "b"})
DOMINANT_PUSH = 13.0  # h_n += 13 W_y: the target's logit gains about 13 x 3 = 39 (s = 1)


@dataclass
class LinearInputs:
    """A linear-CE case's arrays, in the case's dtype (labels int64)."""

    hidden: np.ndarray  # h (N, D)
    weight: np.ndarray  # W (V, D)
    bias: np.ndarray | None  # b (V,), option "b"
    labels: np.ndarray  # (N,) class indices; ignored positions hold IGNORE_INDEX
    target: np.ndarray  # (N,) the class each row is built around
    weights: np.ndarray | None = None  # (V,) class weights, option "w"
    smoothing: float = 0.0  # option "ls"
    cotangent: np.ndarray | None = None  # () for "ct<v>", (N,) for "ct"

    def copy(self) -> LinearInputs:
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return LinearInputs(self.hidden.copy(), self.weight.copy(), c(self.bias), self.labels.copy(),
                            self.target.copy(), c(self.weights), self.smoothing, c(self.cotangent))

    ARRAYS = ("hidden", "weight", "bias", "labels")  # what an adapter must not modify


def validate_linear(case: Case) -> None:
    """The linear-CE rules (Case.validate checks the rest)."""
    names = set(case.option_set)
    if not case.d:
        raise ValueError(f"option b (a bias) is for linear-CE cases only ({case.options!r})")
    if not 1 <= case.d <= MAX_D or case.k * case.d > MAX_WEIGHT_ELEMENTS:
        raise ValueError(f"linear-CE case: need 1 <= D <= {MAX_D} and V x D <= {MAX_WEIGHT_ELEMENTS}")
    if case.labels != "index" or case.extra:
        raise ValueError("linear-CE cases take index labels and no extra dimensions")
    if names - LINEAR_OPTIONS:
        raise ValueError(f"linear-CE cases take options {', '.join(sorted(LINEAR_OPTIONS))} only")
    if {"w", "z"} <= names:
        raise ValueError("linear-CE cases: options w and z do not combine (the means' denominators differ)")
    fam = case.family
    if not (fam.startswith("scale") or fam.startswith("offset") or fam in ("dominant", "neartie")):
        raise ValueError(f"linear-CE family {fam!r}: scale<s>, offset<o>, dominant or neartie")
    if fam.startswith("offset") and "b" not in names:
        raise ValueError("the offset family of linear-CE cases needs option b (the offset is the bias)")


def make_linear_inputs(case: Case, seed: int) -> LinearInputs:
    """h, W, b and the labels of a linear-CE case; identical bytes for the same (seed, id)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    bg = _rng(seed, case.id)
    n, v, dim, d = case.n, case.k, case.d, dtypes.info(case.dtype)
    fam = case.family
    scale = float(fam[len("scale"):]) if fam.startswith("scale") else 1.0
    a = 3.0 * scale / np.sqrt(float(dim))  # sqrt is correctly rounded (IEEE): the same everywhere
    h = 2.0 * _uniform(bg, (n, dim)) - 1.0
    if fam == "neartie":
        w_row = 2.0 * _uniform(bg, (1, dim)) - 1.0
        w = np.repeat(w_row.astype(d.np_type).astype(np.float64), v, axis=0)
        steps = np.floor(_uniform(bg, (v,)) * 7.0) - 3.0  # -3 .. 3 ulps on entry v mod D
        cols = np.arange(v) % dim
        w[np.arange(v), cols] += steps * dtypes_ulp(w[np.arange(v), cols], d)
    else:
        w = (2.0 * _uniform(bg, (v, dim)) - 1.0) * a
    target = _integers(bg, (n,), v)
    wq: np.ndarray = w.astype(d.np_type)
    if fam == "dominant":
        h = h + DOMINANT_PUSH * wq[target].astype(np.float64)
    bias: np.ndarray | None = None
    if "b" in case.option_set:
        u = _uniform(bg, (v,))
        bias = (float(fam[len("offset"):]) + (2.0 * u - 1.0) * 4.0 if fam.startswith("offset")
                else (2.0 * u - 1.0) * scale).astype(d.np_type)
    labels = target.copy()
    inputs = LinearInputs(h.astype(d.np_type), wq, bias, labels, target)
    option_inputs(case, inputs, bg, n, v)  # the plain cases' options, from the same stream
    return inputs


def dtypes_ulp(x: np.ndarray, d: dtypes.DtypeInfo) -> np.ndarray:
    """The spacing of the dtype at |x| (normal numbers): 2^(floor(log2 |x|) + 1 - digits), exact."""
    _, e = np.frexp(np.abs(x))
    return np.ldexp(1.0, e - d.digits)


V_FULL = (50257, 128256, 151936, 256000)  # GPT-2, Llama 3, Qwen 2, Gemma vocabularies
THIRD = format_param(1 / 3)


def linear_cases(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES, full: bool = False) -> list[Case]:
    """Default (full=False): three small cases per dtype (V not a power of two, with and without
    a bias, torch's options, a confident target), reductions rotated. full=True adds the
    families (offset, near-ties, scales), D from 16 to 4096, cotangents and the vocabularies of
    V_FULL (16- and 32-bit dtypes: the float64 reference of a vocabulary-sized case is slow)."""
    out: list[Case] = []
    for di, dt in enumerate(dtypes.DTYPE_NAMES):
        if dt not in dtype_names:
            continue
        red = lambda i, di=di: REDUCTIONS[(di + i) % 3]  # noqa: E731
        out += [
            Case("scale1e+0", dt, 32, 1000, "index", red(0), "b", d=64),
            Case("scale1e+1", dt, 24, 777, "index", red(1), "w+ign+ls", d=16),
            Case("dominant", dt, 16, 2000, "index", red(2), "", d=64),
        ]
        if not full:
            continue
        out += [
            Case("offset1e+4", dt, 16, 1000, "index", "mean", "b", d=64),
            Case("neartie", dt, 16, 1000, "index", "sum", "", d=32),
            Case("scale1e+1", dt, 16, 1000, "index", "none", "ign+ct+b", d=64),
            Case("scale1e+0", dt, 16, 1000, "index", "mean", f"ct{THIRD}", d=256),
            Case("scale1e+2", dt, 16, 1000, "index", "sum", "b", d=64),
            Case("scale1e+0", dt, 8, 1000, "index", "mean", "allign", d=16),
            Case("scale1e+0", dt, 0, 1000, "index", "mean", "", d=16),
            Case("scale1e+0", dt, 64, 1000, "index", "mean", "b", d=1024),
            Case("scale1e+0", dt, 16, 500, "index", "mean", "cap30+z1e-4", d=64),
        ]
        if dt != "float64":
            out += [Case("scale1e+0", dt, 32, 1000, "index", "mean", "b", d=4096)]
            out += [Case("scale1e+0", dt, 8, v, "index", red(i), "b" if i % 2 else "", d=64)
                    for i, v in enumerate(V_FULL)]
            out.append(Case("dominant", dt, 8, 50257, "index", "mean", "ign", d=256))
    return list(dict.fromkeys(out))


__all__ = ["LinearInputs", "linear_cases", "make_linear_inputs", "validate_linear", "LABEL_FORMS"]
