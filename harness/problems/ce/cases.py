"""Plain CE's cases: where they sit in the suites (plain, LLM options, unnormalised label
weights, the full suite's extras) and their seeded inputs (make_ce_inputs). The case grammar
(ids, families, options) and the seeded random stream every kind draws from are
xentcheck.core.cases'."""

from __future__ import annotations

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import (
    DOMINANT_GAP,
    EXTREME_FAMILIES,
    FAMILIES,
    GEN_CHUNK_ELEMENTS,
    LABEL_FORMS,
    REDUCTIONS,
    SHAPES,
    UNNORM,
    UNNORM_ROW_SUMS,
    Case,
    Inputs,
    _fork,
    _integers,
    _rng,
    _uniform,
    format_param,
    option_inputs,
)

# The LLM-training options' cases (docs/llm-options.md): a few per option for the default suite,
# their combinations and extremes for the full one.
THIRD = format_param(1 / 3)  # the scalar cotangent 1/3 (mean), as in the id: "0.3333333333333333"


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


def _fits(family: str, dtype: str) -> bool:
    """Offsets that overflow a dtype are not a meaningful case for it (1e8 in float16)."""
    if family.startswith("offset"):
        return float(family[len("offset"):]) * 4 <= dtypes.info(dtype).max
    return True
