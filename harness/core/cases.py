"""Seeded, reproducible test cases for softmax cross-entropy.

A case is fully described by its id, e.g. ``scale1e+04_float32_64x100_soft_mean``:
family, dtype, shape N x K, label form and reduction. Extra dimensions follow K in torch's
order, ``4x10x3x2`` (logits of N=4 x K=10 x d1=3 x d2=2, one softmax over K per (n, d1, d2)
position); N may be 0 (an empty batch).

The harness itself works on rows: `make_inputs` returns (M, K) arrays with one row per softmax
position, M = N x d1 x ..., in C order of (N, d1, ...). `xentcheck.problems.ce.layout` hands a backend the
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
                    r"(?P<extra>(?:x(?:0|[1-9]\d*))*)(?:_lin(?P<d>[1-9]\d*))?(?:_(?P<part>(?:tp|dp|mb)[0-9a-z]*))?"
                    r"(?:_(?P<spec>[a-z]+-[a-z0-9.+-]+))?_(?P<labels>[a-z]+)_(?P<reduction>[a-z]+)"
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
    # how the case is split over ranks or micro-batches (xentcheck.problems.sharded): "tp2" (the
    # vocabulary over 2 tensor-parallel ranks), "dp2mb3" (2 data-parallel ranks x 3 micro-batches); "": none
    part: str = ""
    # a kind's own segment of the id, "<kind token>-<settings>" before the labels (e.g. a
    # distillation case's "kd-jsd0.5+t2": xentcheck.problems.distill); "" for plain and linear CE
    spec: str = ""
    # a user's file holding the inputs (family "file-..."; xentcheck.core.user_inputs). Not part of
    # the case's identity: the id's content hash is
    source: str | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        dims = "".join(f"x{d}" for d in self.extra) + (f"_lin{self.d}" if self.d else "") + \
            (f"_{self.part}" if self.part else "") + (f"_{self.spec}" if self.spec else "")
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
    def from_id(cls, case_id: str, source: str | None = None, validate: bool = True) -> Case:
        """The case an id names; `validate` False: parsed only (a bench workload, which its kind's
        record checks: problems.base.Timing)."""
        m = _ID_RE.fullmatch(case_id) if isinstance(case_id, str) else None
        if not m:
            raise ValueError(f"malformed case id {case_id!r} (expected family_dtype_NxK_labels_reduction)")
        extra = tuple(int(v) for v in m["extra"].split("x")[1:])
        case = cls(m["family"], m["dtype"], int(m["n"]), int(m["k"]), m["labels"], m["reduction"], m["options"] or "",
                   extra, int(m["d"] or 0), m["part"] or "", m["spec"] or "", source=source)
        if validate:
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
        segments = [s for s in (f"_lin{self.d}" if self.d else "", self.part, self.spec) if s]
        if len(segments) > 1:  # each names another kind: the records' claims would overlap
            raise ValueError(f"a case takes one of _lin<D>, a partitioning and a kind segment, not "
                             f"{' and '.join(segments)}")
        reductions = problem_of(self).reductions
        if self.reduction not in reductions:
            raise ValueError(f"unknown reduction {self.reduction!r} (known: {', '.join(reductions)})")
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
        if self.part:
            out["part"] = self.part
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
    case's shape instead (see xentcheck.problems.ce.layout): (N, d1, ..., K) and (N, d1, ...)."""

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


def full_suite(dtype_names: tuple[str, ...] | list[str] = dtypes.DTYPE_NAMES) -> list[Case]:
    """The default suite, then what each kind's sections add in the full one (full_extras, the
    LLM options' combinations and extremes, linear-CE's and unnorm's full sets), each case once."""
    from xentcheck.problems import suite
    return suite(dtype_names, full=True)


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


