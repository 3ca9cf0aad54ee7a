"""Seeded, reproducible test cases for softmax cross-entropy.

A case is fully described by its id, e.g. ``scale1e+04_float32_64x100_soft_mean``:
family, dtype, shape N x K, label form and reduction. Its inputs are a pure function of
(seed, id): the random stream comes from PCG64 seeded by both, and only the generator's raw
64-bit words and IEEE-exact arithmetic (no libm calls) turn it into numbers, so the inputs
are bit-for-bit identical on every machine. Workers regenerate inputs from (seed, id);
large arrays never travel between processes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from harness import dtypes

LABEL_FORMS: tuple[str, ...] = ("index", "onehot", "soft")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
MAX_N, MAX_K = 1 << 20, 1 << 20
MAX_ELEMENTS = 1 << 30  # N x K: 8192 x 128,256 fits; the reference works in row chunks, its float64 gradient is 8 GiB here

# Logit families of the default suite. "scale" draws uniform logits in [-s, s]; "offset"
# adds a large common value o to logits in [-4, 4]; the rest are adversarial structures.
SCALES: tuple[str, ...] = ("1e-3", "1e-1", "1e+0", "1e+1", "1e+2", "1e+4")
OFFSETS: tuple[str, ...] = ("1e+4", "1e+8")
FAMILIES: tuple[str, ...] = (
    *(f"scale{s}" for s in SCALES),
    *(f"offset{o}" for o in OFFSETS),
    "neartie",
    "dominant",
    "masked",
)
SHAPES: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 5), (16, 10), (64, 100), (128, 1000), (512, 128), (8, 32000), (4, 50000),
)
DOMINANT_GAP = 40.0  # the dominant logit's lead: p of the others ~ e^-40

# ASCII-only and full matches, no leading zeros: an accepted id is its case's canonical id, so
# ids compare equal exactly when cases do (resumed runs match results by id).
_FAMILY_RE = re.compile(r"(?:scale|offset)(\d+(?:\.\d+)?e[+-]?\d+)|neartie|dominant|masked", re.ASCII)
_ID_RE = re.compile(r"(?P<family>[a-z0-9.+-]+)_(?P<dtype>[a-z0-9]+)_(?P<n>0|[1-9]\d*)x(?P<k>0|[1-9]\d*)"
                    r"_(?P<labels>[a-z]+)_(?P<reduction>[a-z]+)", re.ASCII)


@dataclass(frozen=True)
class Case:
    family: str
    dtype: str
    n: int
    k: int
    labels: str
    reduction: str

    @property
    def id(self) -> str:
        return f"{self.family}_{self.dtype}_{self.n}x{self.k}_{self.labels}_{self.reduction}"

    @classmethod
    def from_id(cls, case_id: str) -> "Case":
        m = _ID_RE.fullmatch(case_id) if isinstance(case_id, str) else None
        if not m:
            raise ValueError(f"malformed case id {case_id!r} (expected family_dtype_NxK_labels_reduction)")
        case = cls(m["family"], m["dtype"], int(m["n"]), int(m["k"]), m["labels"], m["reduction"])
        case.validate()
        return case

    def validate(self) -> None:
        m = _FAMILY_RE.fullmatch(self.family)
        if not m:
            raise ValueError(f"unknown case family {self.family!r}")
        if m[1] is not None and not float(m[1]) < float("inf"):
            raise ValueError(f"case family {self.family!r}: the value overflows")
        dtypes.info(self.dtype)
        if self.labels not in LABEL_FORMS:
            raise ValueError(f"unknown label form {self.labels!r} (known: {', '.join(LABEL_FORMS)})")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r} (known: {', '.join(REDUCTIONS)})")
        if not (1 <= self.n <= MAX_N and 2 <= self.k <= MAX_K):
            raise ValueError(f"shape {self.n}x{self.k} out of range (1 <= N <= {MAX_N}, 2 <= K <= {MAX_K})")
        if self.n * self.k > MAX_ELEMENTS:
            raise ValueError(f"shape {self.n}x{self.k} too large (N x K <= {MAX_ELEMENTS})")

    def as_dict(self) -> dict:
        return {"case_id": self.id, "family": self.family, "dtype": self.dtype, "n": self.n,
                "k": self.k, "labels": self.labels, "reduction": self.reduction}


@dataclass
class Inputs:
    """What a backend receives. `labels` is int64 (N,) for index labels, else (N, K) in the dtype."""

    logits: np.ndarray
    labels: np.ndarray
    target: np.ndarray  # int64 (N,): the class each row's label is built around

    def copy(self) -> "Inputs":
        return Inputs(self.logits.copy(), self.labels.copy(), self.target.copy())


def _fits(family: str, dtype: str) -> bool:
    """Offsets that overflow a dtype are not a meaningful case for it (1e8 in float16)."""
    if family.startswith("offset"):
        return float(family[len("offset"):]) * 4 <= dtypes.info(dtype).max
    return True


def default_suite(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """Every family x dtype x label form, with shapes and reductions rotated so that each family
    sees several shapes and every (label form, reduction) pair. Ordered round-robin over
    families, so any prefix (``--cases N``) spans the families."""
    per_family: list[list[Case]] = []
    for fi, family in enumerate(FAMILIES):
        cases = []
        for li, labels in enumerate(LABEL_FORMS):
            for di, dt in enumerate(dtypes.DTYPE_NAMES):
                if dt not in dtype_names or not _fits(family, dt):
                    continue
                n, k = SHAPES[(3 * di + li + 2 * fi) % len(SHAPES)]
                reduction = REDUCTIONS[(li + di + fi) % len(REDUCTIONS)]
                cases.append(Case(family, dt, n, k, labels, reduction))
        per_family.append(cases)
    ordered = []
    for i in range(max((len(c) for c in per_family), default=0)):
        ordered.extend(c[i] for c in per_family if i < len(c))
    return ordered


# --- deterministic random numbers -------------------------------------------------------

def _rng(seed: int, case_id: str) -> np.random.PCG64:
    digest = hashlib.sha256(case_id.encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.PCG64(np.random.SeedSequence([seed, *words]))


def _uniform(bitgen: np.random.PCG64, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform [0, 1) from raw 64-bit words: exact arithmetic only, identical everywhere."""
    raw = bitgen.random_raw(int(np.prod(shape, dtype=np.int64)))
    return ((raw >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)


def _integers(bitgen: np.random.PCG64, shape: tuple[int, ...], high: int) -> np.ndarray:
    raw = bitgen.random_raw(int(np.prod(shape, dtype=np.int64)))
    return (raw % np.uint64(high)).astype(np.int64).reshape(shape)


def make_inputs(case: Case, seed: int) -> Inputs:
    """The case's inputs, rounded to its dtype; identical bytes for the same (seed, id)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    bg = _rng(seed, case.id)
    n, k, d = case.n, case.k, dtypes.info(case.dtype)
    u = _uniform(bg, (n, k))
    target = _integers(bg, (n,), k)
    rows = np.arange(n)
    fam = case.family

    if fam.startswith("scale"):
        x = (2.0 * u - 1.0) * float(fam[len("scale"):])
    elif fam.startswith("offset"):
        x = float(fam[len("offset"):]) + (2.0 * u - 1.0) * 4.0
    elif fam == "neartie":
        # values a few units in the last place apart around 1.0; every 4th row exactly tied
        steps = np.floor(u * 7.0) - 3.0
        steps[::4] = 0.0
        x = 1.0 + steps * 2.0 ** (1 - d.digits)
    elif fam == "dominant":
        x = 2.0 * u - 1.0
        dom = _integers(bg, (n,), k)
        x[rows, dom] += DOMINANT_GAP
        target[::2] = dom[::2]  # half the rows are labelled with the dominant class
    elif fam == "masked":
        x = (2.0 * u - 1.0) * 5.0
        mask = _uniform(bg, (n, k)) < 0.5
        mask[0, :] = True  # row 0: only its target is finite
        mask[rows, target] = False
        x[mask] = -np.inf
    else:
        raise ValueError(f"unknown case family {fam!r}")

    logits = x.astype(d.np_type)
    if case.labels == "index":
        labels = target.copy()
    else:
        q = np.zeros((n, k))
        if case.labels == "onehot":
            q[rows, target] = 1.0
        else:
            w = _uniform(bg, (n, k)) ** 4  # spread-out weights
            w[rows, target] += 1.0
            w[~np.isfinite(x)] = 0.0  # no probability on -inf classes
            q = w / w.sum(axis=1, keepdims=True)
        labels = q.astype(d.np_type)
        if case.labels == "soft":
            # put the rounding residual on each row's largest entry so sums are as close to 1
            # as the dtype allows
            resid = 1.0 - labels.astype(np.float64).sum(axis=1)
            big = labels.astype(np.float64).argmax(axis=1)
            labels[rows, big] = (labels[rows, big].astype(np.float64) + resid).astype(d.np_type)
    return Inputs(logits=logits, labels=labels, target=target)
