"""Seeded, reproducible test cases for softmax cross-entropy.

A case is fully described by its id, e.g. ``scale1e+04_float32_64x100_soft_mean``:
family, dtype, shape N x K, label form and reduction. Extra dimensions follow K in torch's
order, ``4x10x3x2`` (logits of N=4 x K=10 x d1=3 x d2=2, one softmax over K per (n, d1, d2)
position); N may be 0 (an empty batch).

The harness itself works on rows: `make_inputs` returns (M, K) arrays with one row per softmax
position, M = N x d1 x ..., in C order of (N, d1, ...). `xentcheck.core.layout` hands a backend the
case's own shape (class axis last, (N, d1, ..., K)); each adapter moves the class axis to where
its framework wants it (torch: dim 1). Its inputs are a pure function of
(seed, id): the random stream comes from PCG64 seeded by both, and only the generator's raw
64-bit words and IEEE-exact arithmetic (no libm calls) turn it into numbers, so the inputs
are bit-for-bit identical on every machine. Workers regenerate inputs from (seed, id);
large arrays never travel between processes. The exception is a user's file case (family
"file-...", xentcheck.core.user_inputs): its inputs are read from the file its `source` names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

import numpy as np

from xentcheck.core import dtypes

LABEL_FORMS: tuple[str, ...] = ("index", "onehot", "soft")  # the forms the suites rotate over
# Label weights that do not sum to one (a per-token loss mask, a distillation target with dropped
# mass, a mixup label): rows of total mass UNNORM_ROW_SUMS[i % 4], all-zero rows among them. Their
# gradient is p * sum(q) - q, not p - q. Its cases come in their own list (unnorm_cases), after the
# others, so the rotation above keeps every case in its place.
UNNORM = "unnorm"
UNNORM_ROW_SUMS: tuple[float, ...] = (0.375, 2.5, 0.0, 1.0)  # exact in every dtype
ALL_LABEL_FORMS: tuple[str, ...] = (*LABEL_FORMS, UNNORM)
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
MAX_N, MAX_K = 1 << 20, 1 << 20
MAX_EXTRA_DIMS = 3  # (N, K, d1, d2, d3): the 5-D volumes torch documents
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
# Families of the full suite only: logits the API must survive or reject sensibly.
EXTREME_FAMILIES: tuple[str, ...] = ("posinf", "nan", "rowmasked", "nearmax")
# Options (the API's arguments), in canonical order: class weights, ignored targets (some, or
# all), label smoothing 0.1, an out-of-range class index; then the LLM-training options, which
# carry a parameter in their token (docs/llm-options.md): a logit scale s ("s0.5": CE of 0.5 x),
# a logit softcap c ("cap30": logits -> 30 tanh(x / 30)), a z-loss coefficient z ("z1e-4":
# loss_n += 1e-4 lse_n^2), an upstream cotangent ("ct": random per element, reduction none;
# "ct1024": a scalar, mean and sum). Their order is the order of operations: scale, softcap,
# CE + z-loss, cotangent.
OPTIONS: tuple[str, ...] = ("w", "ign", "allign", "ls", "oor", "s", "cap", "z", "ct", "b")
# "b" (last, so no existing id changes): a linear-CE case's bias b (V,) (xentcheck.problems.linear.cases)
INDEX_ONLY_OPTIONS = frozenset({"ign", "allign", "oor"})
LLM_OPTIONS = frozenset({"s", "cap", "z", "ct"})  # the ones with a parameter (ct's may be absent)
IGNORE_INDEX = -100
SMOOTHING = 0.1

# ASCII-only and full matches, no leading zeros: an accepted id is its case's canonical id, so
# ids compare equal exactly when cases do (resumed runs match results by id).
_FAMILY_RE = re.compile(r"(?:scale|offset-?)(\d+(?:\.\d+)?e[+-]?\d+)|neartie|dominant|masked|posinf|nan|rowmasked"
                        r"|nearmax|file-[a-z0-9][a-z0-9.-]*-[0-9a-f]{10}", re.ASCII)  # file-: a user's arrays
FILE_FAMILY = "file-"  # a user's own arrays (--inputs; xentcheck.core.user_inputs): file-<stem>-<content hash>
_ID_RE = re.compile(r"(?P<family>[a-z0-9.+-]+)_(?P<dtype>[a-z0-9]+)_(?P<n>0|[1-9]\d*)x(?P<k>0|[1-9]\d*)"
                    r"(?P<extra>(?:x(?:0|[1-9]\d*))*)(?:_lin(?P<d>[1-9]\d*))?(?:_(?P<spec>[a-z]+-[a-z0-9.+-]+))?_(?P<labels>[a-z]+)_(?P<reduction>[a-z]+)"
                    r"(?:_opt-(?P<options>[a-z0-9.+-]+))?", re.ASCII)
# an option token: a name, then (LLM options only) a number in the canonical form of format_param
_TOKEN_RE = re.compile(r"(?P<name>[a-z]+?)(?P<param>-?\d+(?:\.\d+)?(?:e-?\d+)?)?", re.ASCII)


def format_param(value: float) -> str:
    """The canonical text of an option's float64 parameter: its shortest round-trip decimal
    digits (Python's repr), written plainly for 1e-3 <= |v| < 1e6 ("0.5", "30", "1024",
    "0.3333333333333333") and as d.ddde-N / d.dddeN otherwise ("1e-4", "2.5e-7", "1e6"): no '+',
    '_' or '/', so it fits in a case id, and float(text) gives the value back exactly."""
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    if not isinstance(exp, int):
        raise ValueError(f"option parameter {value!r} is not finite")
    lead = exp + len(digits) - 1  # the decimal exponent of the first digit
    text = "".join(map(str, digits))
    if value == 0:
        body = "0"
    elif -3 <= lead < 6:
        body = format(Decimal(text).scaleb(exp), "f")
    else:
        body = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{lead}"
    return ("-" if sign else "") + body


def parse_option(token: str) -> tuple[str, float | None]:
    """(name, parameter) of one option token; raises ValueError on a token that is not an option
    or whose number is not in its canonical form (one id per case)."""
    m = _TOKEN_RE.fullmatch(token)
    name = m["name"] if m else token
    if not m or name not in OPTIONS:
        raise ValueError(f"unknown option {token!r} (known: {', '.join(OPTIONS)})")
    if m["param"] is None:
        if name in LLM_OPTIONS - {"ct"}:
            raise ValueError(f"option {name!r} needs a parameter, e.g. {name}{_EXAMPLES[name]}")
        return name, None
    if name not in LLM_OPTIONS:
        raise ValueError(f"option {name!r} takes no parameter ({token!r})")
    value = float(m["param"])
    if not abs(value) < float("inf"):
        raise ValueError(f"option {token!r}: the parameter overflows")
    canonical = format_param(value)
    if canonical != m["param"]:
        raise ValueError(f"option {token!r}: write its parameter as {name}{canonical} (the canonical form)")
    if name in ("s", "cap", "z") and not value > 0:
        raise ValueError(f"option {token!r}: the parameter must be > 0")
    if (name in ("s", "ct") and value == 1) or (name == "ct" and value == 0):
        raise ValueError(f"option {token!r} is {'the plain case' if value == 1 else 'no gradient'}; leave it out")
    return name, value


_EXAMPLES = {"s": "0.5", "cap": "30", "z": "1e-4", "ct": "1024"}


@dataclass(frozen=True)
class Case:
    family: str
    dtype: str
    n: int
    k: int
    labels: str
    reduction: str
    options: str = ""  # "+"-joined tokens, in OPTIONS order, e.g. "w+ls", "ign+cap30+z1e-4"
    extra: tuple[int, ...] = ()  # extra dimensions d1, ... after the class axis (torch's order)
    # linear-CE (xentcheck.problems.linear.cases): the hidden size D of h (N, D) and W (K, D); 0: plain CE
    d: int = 0
    # a kind's own segment of the id, "<kind token>-<settings>" before the labels (e.g. a
    # distillation case's "kd-jsd0.5+t2": xentcheck.problems.distill); "" for plain and linear CE
    spec: str = ""
    # a user's file holding the inputs (family "file-..."; xentcheck.core.user_inputs). Not part of
    # the case's identity: the id's content hash is
    source: str | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        dims = "".join(f"x{d}" for d in self.extra) + (f"_lin{self.d}" if self.d else "") + \
            (f"_{self.spec}" if self.spec else "")
        base = f"{self.family}_{self.dtype}_{self.n}x{self.k}{dims}_{self.labels}_{self.reduction}"
        return f"{base}_opt-{self.options}" if self.options else base

    @property
    def rows(self) -> int:
        """Softmax positions M = N x d1 x ...: the rows of the harness's (M, K) arrays."""
        return self.n * int(np.prod(self.extra, dtype=np.int64))

    @property
    def shape(self) -> tuple[int, ...]:
        """The logits' shape as a backend receives them, class axis last: (N, d1, ..., K)."""
        return (self.n, *self.extra, self.k)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        """The unreduced loss's shape (and index labels'): (N, d1, ...)."""
        return (self.n, *self.extra)

    @property
    def dims(self) -> str:
        """The shape as written in the id, e.g. "4x10x3" (torch's order: N, K, d1, ...)."""
        return "x".join(str(v) for v in (self.n, self.k, *self.extra))

    @property
    def option_set(self) -> frozenset[str]:
        """The options' names, without parameters: {"w", "cap", "z"} for "w+cap30+z1e-4" (what a
        backend declares it takes)."""
        return frozenset(_parsed(self.options))

    @property
    def logit_scale(self) -> float | None:
        """s of option "s<s>": the loss is CE(s x)."""
        return _parsed(self.options).get("s")

    @property
    def softcap(self) -> float | None:
        """c of option "cap<c>": the logits become c tanh(x / c) (after the scale)."""
        return _parsed(self.options).get("cap")

    @property
    def zloss(self) -> float | None:
        """z of option "z<z>": each counted row's loss gains z lse^2."""
        return _parsed(self.options).get("z")

    @property
    def cotangent(self) -> float | None:
        """The scalar upstream cotangent v of option "ct<v>" (mean and sum): the gradient is v
        times the reduced loss's. None otherwise (see cotangent_rows)."""
        return _parsed(self.options).get("ct")

    @property
    def cotangent_rows(self) -> bool:
        """Option "ct" (reduction none): a random cotangent per loss element (Inputs.cotangent)."""
        opts = _parsed(self.options)
        return "ct" in opts and opts["ct"] is None

    @property
    def linear(self) -> bool:
        """Whether this is a linear-CE case: logits h W^T (+ b) from hidden states and a weight."""
        return self.d > 0

    @property
    def kind(self) -> str:
        """The kind of loss it is (the problem record that claims it, xentcheck.problems.kind_of):
        the Variant.kind that runs it."""
        from xentcheck.problems import kind_of
        return kind_of(self)

    @property
    def llm(self) -> bool:
        """Whether the case has an LLM-training option (scale, softcap, z-loss, cotangent)."""
        return bool(LLM_OPTIONS & self.option_set)

    @property
    def from_file(self) -> bool:
        """Whether the inputs are a user's arrays (--inputs) rather than generated from (seed, id)."""
        return self.family.startswith(FILE_FAMILY)

    @classmethod
    def from_id(cls, case_id: str, source: str | None = None) -> Case:
        m = _ID_RE.fullmatch(case_id) if isinstance(case_id, str) else None
        if not m:
            raise ValueError(f"malformed case id {case_id!r} (expected family_dtype_NxK_labels_reduction)")
        extra = tuple(int(v) for v in m["extra"].split("x")[1:])
        case = cls(m["family"], m["dtype"], int(m["n"]), int(m["k"]), m["labels"], m["reduction"], m["options"] or "",
                   extra, int(m["d"] or 0), m["spec"] or "", source=source)
        case.validate()
        return case

    def validate(self) -> None:
        from xentcheck.problems import problem_of
        problem_of(self).validate(self)  # the kind's own rules, then the checks below, which hold for every kind
        m = _FAMILY_RE.fullmatch(self.family)
        if not m:
            raise ValueError(f"unknown case family {self.family!r}")
        if m[1] is not None and not float(m[1]) < float("inf"):
            raise ValueError(f"case family {self.family!r}: the value overflows")
        dtypes.info(self.dtype)
        if self.labels not in ALL_LABEL_FORMS:
            raise ValueError(f"unknown label form {self.labels!r} (known: {', '.join(ALL_LABEL_FORMS)})")
        reductions = problem_of(self).reductions
        if self.reduction not in reductions:
            raise ValueError(f"unknown reduction {self.reduction!r} (known: {', '.join(reductions)})")
        if self.d and self.spec:
            raise ValueError(f"a linear-CE case (_lin{self.d}) takes no kind segment ({self.spec!r})")
        if not (0 <= self.n <= MAX_N and 2 <= self.k <= MAX_K):
            raise ValueError(f"shape {self.dims} out of range (0 <= N <= {MAX_N}, 2 <= K <= {MAX_K})")
        if len(self.extra) > MAX_EXTRA_DIMS or not all(1 <= d <= MAX_N for d in self.extra):
            raise ValueError(f"shape {self.dims}: at most {MAX_EXTRA_DIMS} extra dimensions, each 1 to {MAX_N}")
        if self.rows > MAX_N or self.rows * self.k > MAX_ELEMENTS:
            raise ValueError(f"shape {self.dims} too large (N x d1 x ... <= {MAX_N}, and times K <= {MAX_ELEMENTS})")
        if self.options:
            if not isinstance(self.options, str):
                raise ValueError(f"options {self.options!r} must be a string")
            names = [parse_option(t)[0] for t in self.options.split("+")]
            if names != sorted(set(names), key=OPTIONS.index):
                raise ValueError(f"options {self.options!r} must be distinct names from {', '.join(OPTIONS)}, "
                                 "in that order, joined by '+'")
            if self.labels != "index" and INDEX_ONLY_OPTIONS & set(names):
                raise ValueError(f"options {', '.join(sorted(INDEX_ONLY_OPTIONS))} need index labels")
            if {"ign", "allign"} <= set(names) or ("oor" in names and len(names) > 1):
                raise ValueError(f"options {self.options!r} do not combine")
            if self.n == 0 and "oor" in names:
                raise ValueError("an empty batch has no label to put out of range (option oor)")
            if self.cotangent_rows and self.reduction != "none":
                raise ValueError("a per-element cotangent (option ct) needs reduction none; "
                                 "mean and sum take a scalar one, e.g. ct1024")
            if self.cotangent is not None and self.reduction == "none":
                raise ValueError(f"a scalar cotangent ({self.options!r}) needs reduction mean or sum; "
                                 "reduction none takes a per-element one (option ct)")

    def as_dict(self) -> dict:
        out = {"case_id": self.id, "family": self.family, "dtype": self.dtype, "n": self.n,
               "k": self.k, "labels": self.labels, "reduction": self.reduction}
        if self.extra:
            out["extra"] = list(self.extra)
        if self.options:
            out["options"] = self.options
        if self.d:
            out["d"] = self.d
        if self.spec:
            out["spec"] = self.spec
        if self.source is not None:
            out["inputs_file"] = self.source
        return out


@lru_cache(maxsize=4096)
def _parsed(options: str) -> dict[str, float | None]:
    """{name: parameter} of an options string, in its order."""
    return dict(parse_option(t) for t in options.split("+")) if options else {}


@dataclass
class Inputs:
    """A case's arrays. As the harness holds them: logits (M, K) with one row per softmax position;
    `labels` int64 (M,) for index labels, else (M, K) in the dtype. A backend receives them in the
    case's shape instead (see xentcheck.core.layout): (N, d1, ..., K) and (N, d1, ...)."""

    logits: np.ndarray
    labels: np.ndarray  # ignored rows hold IGNORE_INDEX; an "oor" case holds the class index K
    target: np.ndarray  # int64 (M,): the class each row's label is built around
    weights: np.ndarray | None = None  # (K,) class weights in the dtype, for the "w" option
    smoothing: float = 0.0  # label smoothing, for the "ls" option
    # the upstream cotangent in the dtype, as a backend is fed it: () for a "ct<v>" option, (M,) for "ct"
    cotangent: np.ndarray | None = None

    def copy(self) -> Inputs:
        return Inputs(self.logits.copy(), self.labels.copy(), self.target.copy(),
                      None if self.weights is None else self.weights.copy(), self.smoothing,
                      None if self.cotangent is None else self.cotangent.copy())


def _fits(family: str, dtype: str) -> bool:
    """Offsets that overflow a dtype are not a meaningful case for it (1e8 in float16)."""
    if family.startswith("offset"):
        return abs(float(family[len("offset"):])) * 4 <= dtypes.info(dtype).max
    return True


def default_suite(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """Every kind's default cases, in the order of their sections (xentcheck.problems.suite): the
    plain cases (plain_cases), the LLM options' (llm_cases), linear-CE's, then the unnormalised
    label weights' (unnorm_cases), last, so the plain cases keep their places."""
    from xentcheck.problems import suite
    return suite(dtype_names)


def plain_cases(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """Every family x dtype x label form, with shapes and reductions rotated so that each family
    sees several shapes and every (label form, reduction) pair. Ordered round-robin over
    families, so any prefix (``--cases N``) spans the families. Then the LLM-training options'
    cases (llm_cases: one z-loss, softcap, scale and cotangent case per dtype, 16 x 10 each), then
    the unnormalised label weights' (unnorm_cases), last, so the plain cases keep their places."""
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
    ordered: list[Case] = []
    for i in range(max((len(c) for c in per_family), default=0)):
        ordered.extend(c[i] for c in per_family if i < len(c))
    return ordered


def full_suite(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """The default suite, then what each kind's sections add in the full one (full_extras, the
    LLM options' combinations and extremes, linear-CE's and unnorm's full sets), each case once."""
    from xentcheck.problems import suite
    return suite(dtype_names, full=True)


def full_extras(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """What the full suite adds to the plain cases: every option family (class weights, ignored targets, label
    smoothing and their combinations, an out-of-range class), the extreme logit families, a
    vocabulary-sized K, extra dimensions and empty batches, then the LLM-training options'
    combinations and extremes (llm_cases(full=True)), for each dtype asked for."""
    extra: list[Case] = []
    option_sets = {"index": ("w", "ign", "allign", "ls", "w+ls", "ign+ls", "w+ign+ls", "oor"),
                   "onehot": ("w", "ls", "w+ls"), "soft": ("w", "ls", "w+ls")}
    for dt in dtypes.DTYPE_NAMES:
        if dt not in dtype_names:
            continue
        for labels, sets in option_sets.items():
            for i, opts in enumerate(sets):
                extra.append(Case("scale1e+0", dt, 16, 10, labels, REDUCTIONS[i % 3], opts))
        extra.append(Case("scale1e+0", dt, 8, 10, "index", "mean", "allign"))
        for fi, family in enumerate(EXTREME_FAMILIES):
            for li, labels in enumerate(LABEL_FORMS):
                extra.append(Case(family, dt, 6, 12, labels, REDUCTIONS[(fi + li) % 3]))
        if dt in ("bfloat16", "float32"):
            extra.append(Case("scale1e+1", dt, 4, 128256, "index", "mean"))
        # extra dimensions (torch's (N, K, d1, ...), the others' (N, d1, ..., K)), with the options
        # whose denominators count every position, and empty batches (a mean over nothing)
        for li, labels in enumerate(LABEL_FORMS):
            extra.append(Case("scale1e+0", dt, 4, 10, labels, REDUCTIONS[li], extra=(3,)))
        extra.append(Case("scale1e+1", dt, 2, 7, "soft", "mean", extra=(3, 2)))
        extra.append(Case("scale1e+0", dt, 4, 10, "index", "mean", "w+ign+ls", extra=(3,)))
        extra.append(Case("scale1e+0", dt, 4, 10, "index", "sum", "ign", extra=(3,)))
        for labels, reduction in (("index", "mean"), ("onehot", "sum"), ("soft", "none")):
            extra.append(Case("scale1e+0", dt, 0, 10, labels, reduction))
        extra.append(Case("scale1e+0", dt, 0, 10, "index", "mean", extra=(3,)))
    return extra


def unnorm_cases(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES, full: bool = False) -> list[Case]:
    """Label weights whose rows sum to 0.375, 2.5, 0 and 1 (UNNORM_ROW_SUMS), for each dtype asked
    for. Default: three cases per dtype, one per reduction, on plain logits, on masked ones (no
    weight on the -inf classes) and on rows with a dominant class (p ~ 1 there: its gradient is
    sum(q) - q, where p - q gives 1 - q). full=True adds class weights and smoothing
    (which turns an all-zero row into e/K), extra dimensions, and logits with a +inf / no finite
    entry (rowmasked: row 0 is undefined whatever its weights)."""
    out: list[Case] = []
    for di, dt in enumerate(dtypes.DTYPE_NAMES):
        if dt not in dtype_names:
            continue
        out += [Case("scale1e+0", dt, 16, 10, UNNORM, REDUCTIONS[di % 3]),
                Case("masked", dt, 64, 100, UNNORM, REDUCTIONS[(di + 1) % 3]),
                Case("dominant", dt, 8, 1000, UNNORM, REDUCTIONS[(di + 2) % 3])]
        if full:
            out += [Case("scale1e+0", dt, 16, 10, UNNORM, REDUCTIONS[i % 3], opts)
                    for i, opts in enumerate(("w", "ls", "w+ls"))]
            out += [Case("scale1e+0", dt, 4, 10, UNNORM, "mean", extra=(3,)),
                    Case("rowmasked", dt, 6, 12, UNNORM, "none")]
    return out


# The LLM-training options' cases (docs/llm-options.md): a few per option for the default suite,
# their combinations and extremes for the full one.
THIRD = format_param(1 / 3)  # the scalar cotangent 1/3 (mean), as in the id: "0.3333333333333333"


def llm_cases(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES, full: bool = False) -> list[Case]:
    """The cases of the LLM-training options for each dtype asked for. Default (full=False): one
    z-loss, one softcap, one logit scale and one cotangent case per dtype, the label forms,
    reductions, scales s < 1 / s > 1 and cotangent kinds rotated over the dtypes. full=True: the
    combinations with class weights, ignored targets and smoothing (torch's composition), logits
    far beyond the softcap (|x| up to the dtype's max, +inf), scales of huge logits, extra
    dimensions and an empty batch."""
    out: list[Case] = []
    cotangents = (("index", "none", "ct"), ("soft", "mean", f"ct{THIRD}"), ("onehot", "sum", "ct1024"))
    for di, dt in enumerate(dtypes.DTYPE_NAMES):
        if dt not in dtype_names:
            continue
        li = di % len(LABEL_FORMS)
        out.append(Case("scale1e+2", dt, 16, 10, LABEL_FORMS[li], REDUCTIONS[li], "z1e-4"))
        out.append(Case("scale1e+2", dt, 16, 10, LABEL_FORMS[(li + 1) % 3], REDUCTIONS[(li + 2) % 3], "cap30"))
        out.append(Case("scale1e+1", dt, 16, 10, LABEL_FORMS[(li + 2) % 3], REDUCTIONS[(li + 1) % 3],
                        "s0.5" if di % 2 == 0 else "s3"))
        labels, reduction, ct = cotangents[di % len(cotangents)]
        out.append(Case("scale1e+1", dt, 16, 10, labels, reduction, ct))
        if not full:
            continue
        d = dtypes.info(dt)
        out += [
            Case("scale1e+1", dt, 16, 10, "index", "mean", "w+ign+ls+cap30+z1e-4"),
            Case("scale1e+1", dt, 16, 10, "index", "mean", "ign+z1e-4"),
            Case("scale1e+1", dt, 16, 10, "index", "none", "ign+ct"),
            Case("scale1e+1", dt, 16, 10, "index", "sum", "cap30+z1e-4+ct1024"),
            Case("scale1e+1", dt, 16, 10, "index", "mean", f"ls+s0.5+cap30+ct{THIRD}"),
            Case("scale1e+1", dt, 16, 10, "soft", "none", "w+ls+s0.5+ct"),
            Case("scale1e+1", dt, 16, 10, "soft", "sum", "s3+cap30+z1e-4"),
            Case("scale1e+4", dt, 16, 10, "index", "mean", "cap30"),  # |x| far beyond c
            Case("nearmax", dt, 6, 12, "index", "sum", "cap30"),  # finite where the plain loss is not
            Case("posinf", dt, 6, 12, "onehot", "none", "cap30"),  # c tanh(+inf / c) = c
            Case("scale1e+4", dt, 16, 10, "index", "sum", "s3"),
            Case("nearmax", dt, 6, 12, "soft", "mean", "s0.5"),
            Case("offset1e+4", dt, 16, 10, "index", "mean", "z1e-4"),  # z lse^2 ~ 1e4 dominates
            Case("scale1e+0", dt, 4, 10, "index", "none", "z1e-4+ct", extra=(3,)),
            Case("scale1e+0", dt, 0, 10, "index", "mean", "z1e-4"),
        ]
        if 1e12 <= d.max:  # the JAX report: jit of CE(x / 3) at logits [1e12, 5e11, 0]
            out.append(Case("scale1e+12", dt, 16, 10, "index", "mean", f"s{THIRD}"))
    return list(dict.fromkeys(out))


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


GEN_CHUNK_ELEMENTS = 1 << 20  # rows generated at a time: float64 temporaries of 8 MiB, whatever N x K


def _fork(bitgen: np.random.PCG64) -> np.random.PCG64:
    """An independent generator at `bitgen`'s position in the stream."""
    copy = np.random.PCG64()
    copy.state = bitgen.state
    return copy


def make_inputs(case: Case, seed: int) -> Inputs:
    """The case's inputs, rounded to its dtype; identical bytes for the same (seed, id): a user's
    file case's arrays, else its kind's input maker (a plain case's: make_ce_inputs; another
    kind's gives that kind's inputs record)."""
    if case.from_file:  # a user's arrays: read from the file, not generated
        from xentcheck.core.user_inputs import inputs_of
        return inputs_of(case)
    from xentcheck.problems import problem_of
    return problem_of(case).make_inputs(case, seed)


def make_ce_inputs(case: Case, seed: int, chunk_elements: int | None = None) -> Inputs:
    """A plain CE case's generated inputs, rounded to its dtype.

    The stream is drawn in a fixed order: the N x K uniforms of the logits, the targets, the
    dominant classes ("dominant"), the N x K mask uniforms ("masked"), the N x K soft-label
    uniforms ("soft" and "unnorm"), then the options' draws. The N x K blocks are read a chunk of rows at a
    time (about `chunk_elements`, default GEN_CHUNK_ELEMENTS) from generators forked at each
    block's start, and the main generator skips over them (PCG64.advance), so the float64
    temporaries stay chunk-sized (a whole-array pass held about 6x the logits' size) and every
    byte is the one a whole-array pass gives: each step is row-wise, and a row's words do not
    depend on how the rows are split."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    bg = _rng(seed, case.id)
    n, k, d = case.rows, case.k, dtypes.info(case.dtype)
    fam = case.family
    if not (fam.startswith(("scale", "offset")) or fam in ("neartie", "dominant", "posinf", "nan", "rowmasked",
                                                           "nearmax", "masked")):
        raise ValueError(f"unknown case family {fam!r}")
    u_stream = _fork(bg)
    bg.advance(n * k)
    target = _integers(bg, (n,), k)
    dom = _integers(bg, (n,), k) if fam == "dominant" else None
    if dom is not None:
        target[::2] = dom[::2]  # half the rows are labelled with the dominant class
    mask_stream = w_stream = None
    if fam == "masked":
        mask_stream = _fork(bg)
        bg.advance(n * k)
    if case.labels in ("soft", UNNORM):
        w_stream = _fork(bg)
        bg.advance(n * k)
    logits: np.ndarray = np.empty((n, k), dtype=d.np_type)
    labels = target.copy() if case.labels == "index" else np.empty((n, k), dtype=d.np_type)
    step = max(1, (chunk_elements or GEN_CHUNK_ELEMENTS) // k)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        x = _logit_rows(fam, d, lo, hi, k, _uniform(u_stream, (hi - lo, k)), target[lo:hi],
                        None if dom is None else dom[lo:hi], mask_stream)
        with np.errstate(over="ignore"):
            logits[lo:hi] = x
        if case.labels != "index":
            labels[lo:hi] = _label_rows(case.labels, d, x, target[lo:hi], w_stream, lo)
    inputs = Inputs(logits=logits, labels=labels, target=target)
    option_inputs(case, inputs, bg, n, k)
    return inputs


def option_inputs(case: Case, inputs, bg: np.random.PCG64, n: int, k: int) -> None:
    """Draw the inputs of the case's options into `inputs` (an Inputs or another kind's inputs record),
    after its logits and labels, from the same stream `bg`: class weights (K,), smoothing,
    ignored targets (some or all), an out-of-range class, the cotangent."""
    d = dtypes.info(case.dtype)
    opts = case.option_set
    if "w" in opts:
        inputs.weights = (0.5 + 1.5 * _uniform(bg, (k,))).astype(d.np_type)
    if "ls" in opts:
        inputs.smoothing = SMOOTHING
    if "ign" in opts:
        ignored = _uniform(bg, (n,)) < 0.3
        ignored[:1] = False  # at least one row counts
        inputs.labels[ignored] = IGNORE_INDEX
    if "allign" in opts:
        inputs.labels[:] = IGNORE_INDEX
    if "oor" in opts:
        inputs.labels[n // 2] = k  # one past the last class
    if case.cotangent is not None:
        inputs.cotangent = np.asarray(case.cotangent).astype(d.np_type)
    if case.cotangent_rows:
        inputs.cotangent = cotangent_rows(bg, n).astype(d.np_type)


COTANGENT_EXPONENTS = (-10, 4)  # |v| in [2^-10, 2^5): about 4.5 decimal orders of magnitude
COTANGENT_ZEROS = 0.125  # the share of exact zeros (tokens whose loss does not count)


def cotangent_rows(bitgen: np.random.PCG64, n: int) -> np.ndarray:
    """A per-element upstream cotangent (float64, (n,)): +-(1 + u) 2^e with e uniform in
    COTANGENT_EXPONENTS, signs even, and a share COTANGENT_ZEROS of exact zeros (always the last
    of three or more rows): per-token weights that differ by orders of magnitude and in sign, so
    a backward that uses one element for every row (or drops the sign) is off. Exact arithmetic
    only (ldexp is exact)."""
    lo, hi = COTANGENT_EXPONENTS
    u = _uniform(bitgen, (n,))
    picks = _integers(bitgen, (n,), 2 * (hi - lo + 1))
    zero = _uniform(bitgen, (n,)) < COTANGENT_ZEROS
    sign = np.where(picks % 2 == 1, -1.0, 1.0)
    v = sign * np.ldexp(1.0 + u, (picks // 2 + lo).astype(np.int32))
    v[zero] = 0.0
    if n >= 3:
        v[-1] = 0.0
    return v


def _logit_rows(fam: str, d: dtypes.DtypeInfo, lo: int, hi: int, k: int, u: np.ndarray, target: np.ndarray,
                dom: np.ndarray | None, mask_stream: np.random.PCG64 | None) -> np.ndarray:
    """Rows lo:hi of the family's float64 logits, from their uniforms `u` (and targets)."""
    rows = np.arange(hi - lo)
    if fam.startswith("scale"):
        return (2.0 * u - 1.0) * float(fam[len("scale"):])
    if fam.startswith("offset"):
        return float(fam[len("offset"):]) + (2.0 * u - 1.0) * 4.0
    if fam == "neartie":
        # values a few units in the last place apart around 1.0; every 4th row exactly tied
        steps = np.floor(u * 7.0) - 3.0
        steps[-lo % 4::4] = 0.0  # rows 0, 4, 8, ... of the whole array
        return 1.0 + steps * 2.0 ** (1 - d.digits)
    if fam == "dominant":
        x = 2.0 * u - 1.0
        x[rows, dom] += DOMINANT_GAP
        return x
    if fam == "posinf":
        # a +inf logit: row 0 on another class than its target, row 1 on its target
        x = 2.0 * u - 1.0
        if lo == 0:
            x[0, (target[0] + 1) % k] = np.inf
        if lo <= 1 < hi:
            x[1 - lo, target[1 - lo]] = np.inf
        return x
    if fam == "nan":
        x = 2.0 * u - 1.0
        if lo == 0:
            x[:1, (target[:1] + 1) % k] = np.nan
        return x
    if fam == "rowmasked":
        x = (2.0 * u - 1.0) * 5.0
        if lo == 0:
            x[:1, :] = -np.inf  # a whole row masked: no finite logit at all
        return x
    if fam == "nearmax":
        return d.max * (0.5 + 0.5 * u)  # all positive, so differences stay finite
    # masked
    assert mask_stream is not None  # make_inputs forks a mask stream for the masked family
    x = (2.0 * u - 1.0) * 5.0
    mask = _uniform(mask_stream, (hi - lo, k)) < 0.5
    if lo == 0:
        mask[:1, :] = True  # row 0: only its target is finite
    mask[rows, target] = False
    x[mask] = -np.inf
    return x


def _label_rows(form: str, d: dtypes.DtypeInfo, x: np.ndarray, target: np.ndarray,
                w_stream: np.random.PCG64 | None, lo: int = 0) -> np.ndarray:
    """One-hot, soft or unnormalised labels of rows lo:lo+n, whose float64 logits are `x`, in the
    dtype. Unnormalised rows are the soft ones times UNNORM_ROW_SUMS[row % 4]."""
    n, k = x.shape
    rows = np.arange(n)
    q = np.zeros((n, k))
    if form == "onehot":
        q[rows, target] = 1.0
        return q.astype(d.np_type)
    assert w_stream is not None  # make_inputs forks a weight stream for soft labels
    w = _uniform(w_stream, (n, k)) ** 4  # spread-out weights
    w[rows, target] += 1.0
    w[~np.isfinite(x)] = 0.0  # no probability on -inf classes
    w[w.sum(axis=1) == 0] = 1.0  # a row with no finite logit: any labels will do
    q = w / w.sum(axis=1, keepdims=True)
    mass: float | np.ndarray = 1.0
    if form == UNNORM:
        row_sums = np.take(UNNORM_ROW_SUMS, np.arange(lo, lo + n) % len(UNNORM_ROW_SUMS))
        q, mass = q * row_sums[:, None], row_sums
    labels = q.astype(d.np_type)
    # put the rounding residual on each row's largest entry so sums are as close to the row's mass
    # (1 for soft labels) as the dtype allows
    resid = mass - labels.astype(np.float64).sum(axis=1)
    big = labels.astype(np.float64).argmax(axis=1)
    labels[rows, big] = (labels[rows, big].astype(np.float64) + resid).astype(d.np_type)
    return labels
