"""Comparing a linear-CE output (loss, dh, dW, db) with its reference (the verdict rule of
xentcheck.core.evaluate, for linear-CE cases).

Each entry is judged at its natural scale (xentcheck.problems.linear.reference: sum_v A_nv |W_vd|
for dh, sum_n A_nv |h_nd| for dW, sum_n A_nv for db), with the gradient's tolerance for dh, dW
and db. Under the "model" preset the bound is u (2 + ceil(log2 T)) times the natural scale, T
the number of terms the entry sums (D for a logit, so the loss; V for dh; N for dW and db):
recursive summation errs by up to (T - 1) u of the scale, pairwise and blocked summation (what
BLAS and reductions do) by about log2 T u.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import info
from xentcheck.core.metrics import array_metrics, sample_positions
from xentcheck.core.tolerances import allowances

GRADS = ("dh", "dw", "db")


def terms(case: Case, what: str) -> int:
    return {"loss": case.d, "dh": case.k, "dw": case.n, "db": case.n}[what]


def model_bound(case: Case, ref, what: str, scale: np.ndarray | None = None) -> np.ndarray:
    """u (2 + ceil(log2 T)) times the natural scale (`scale`: a part of ref.scales[what])."""
    u = info(case.dtype).eps
    return u * (2 + math.ceil(math.log2(max(2, terms(case, what))))) * \
        np.asarray(ref.scales[what] if scale is None else scale)


def _metrics(case: Case, ref, what: str, actual: np.ndarray, expected: np.ndarray, scale: np.ndarray,
             tolerances, **part) -> dict:
    """array_metrics of one output (or a part of it, `part`: sample_at, keep) against `expected`."""
    tol_key = "loss" if what == "loss" else "grad"
    rtol, atol = tolerances.get(case.dtype, tol_key)
    scale = np.asarray(scale)
    bound = model_bound(case, ref, what, scale)
    mine, others = allowances(tolerances, case.dtype, tol_key, expected, scale, bound)
    return array_metrics(actual, expected, case.dtype, rtol, atol, scale if tolerances.scaled else 1.0,
                         allowed=mine, natural=scale, others=others, **part)


def measure_linear(case: Case, ref, loss: np.ndarray, grads: dict[str, np.ndarray], tolerances) -> dict[str, dict]:
    """array_metrics of each output under the run's tolerance and every preset's (their excess);
    a streamed dW (ref.streamed), and a dh of more than WHOLE_ELEMENTS entries, a few rows at a
    time (StreamedMetrics): array_metrics makes some 15 temporaries of its input's size."""
    out = {}
    for what in ("loss", *GRADS):
        parts: Iterator[tuple[int, np.ndarray, np.ndarray]] | None = None
        if what == "dw" and ref.streamed:
            parts = ((vb.start, block, block_scale) for vb, block, block_scale in ref.dw_blocks())
        elif what == "dh" and np.size(ref.dh) > WHOLE_ELEMENTS:
            parts = iter([(0, ref.dh, ref.scales["dh"])])
        if parts is not None:
            actual, merged = grads[what], StreamedMetrics(np.shape(grads[what]))
            step = max(1, METRIC_BLOCK_ELEMENTS // max(1, case.d))
            for start, block, block_scale in parts:
                for lo in range(0, len(block), step):  # a few rows of the block at a time
                    rows = slice(lo, min(len(block), lo + step))
                    part, scale, got = block[rows], block_scale[rows], actual[start + rows.start:start + rows.stop]
                    merged.add(start + lo, rows.stop - lo,
                               lambda got=got, part=part, scale=scale, what=what, **keep:
                               _metrics(case, ref, what, got, part, scale, tolerances, **keep))
            out[what] = merged.result()
            continue
        expected = ref.get(what)
        if expected is None:
            continue
        actual = loss if what == "loss" else grads[what]
        out[what] = _metrics(case, ref, what, actual, expected, ref.scales[what], tolerances)
    return out


# entries of a streamed dW measured at a time: array_metrics makes some 15 temporaries of this size
METRIC_BLOCK_ELEMENTS = 1 << 19
# dh (N x D) above this many entries is measured a few rows at a time too (1 GB of temporaries at 4096 x 2048)
WHOLE_ELEMENTS = 1 << 22
HIST_SHIFT = 44  # a float64's top 20 bits: sign, exponent, 8 bits of the significand


class StreamedMetrics:
    """array_metrics of a 2-D array whose reference comes a block of rows at a time, merged into
    the whole array's metrics: sizes and counts summed; maxima (errors, atol_needed, each
    preset's excess; NaN wins, as in a NumPy max) and the worst element (the first of the
    highest score, as np.argmax finds it) the whole array's, bit for bit; the sampled signed
    errors at the whole array's sample positions. The medians and 99th percentiles come from a
    histogram of the errors' float64 bits (buckets 2^-8 wide, relative; a quantile is its
    bucket's midpoint, 0 for the bucket of 0): within 2^-9 (relative) of the whole array's, not exact
    (that would need every error of the array at once)."""

    def __init__(self, shape: tuple[int, ...]):
        self.row = int(np.prod(shape[1:], dtype=np.int64))
        self.positions = sample_positions(int(np.prod(shape, dtype=np.int64)))
        self.hist = {name: np.zeros(1 << (64 - HIST_SHIFT), dtype=np.int64) for name in ("abs", "rel", "ulp")}
        self.out: dict | None = None
        self.score: float | None = None

    def add(self, row0: int, rows: int, measure) -> None:
        """Rows row0 .. row0 + rows: measure(sample_at=..., keep=...) is their array_metrics."""
        lo, hi = row0 * self.row, (row0 + rows) * self.row
        keep: dict = {}
        m = measure(sample_at=self.positions[(self.positions >= lo) & (self.positions < hi)] - lo, keep=keep)
        for name, hist in self.hist.items():
            bits = np.ascontiguousarray(keep[name], dtype=np.float64).view(np.uint64) >> np.uint64(HIST_SHIFT)
            hist += np.bincount(bits.ravel().astype(np.int64), minlength=hist.size)
        if self.out is None:
            self.out = m
        else:
            out = self.out
            for key in ("size", "n_exceed", "n_nonfinite_mismatch"):
                out[key] += m[key]
            for key in ("abs_err", "rel_err", "ulp_err"):
                out[key] = _max(out[key], m[key])
            out["atol_needed"] = [_max(a, b) for a, b in zip(out["atol_needed"], m["atol_needed"])]
            out["excess"] = {k: _json_float(_max(float(v), float(m["excess"][k]))) for k, v in out["excess"].items()}
            out["sample_ulp"] = out["sample_ulp"] + m["sample_ulp"]
        if m["size"] and ("score" in keep) and (self.score is None or _beats(keep["score"], self.score)):
            self.score = keep["score"]
            for key in ("worst_index", "worst_actual", "worst_expected", "worst_scale", "worst_allowed"):
                self.out[key] = m[key]
            self.out["worst_index"] = [m["worst_index"][0] + row0, *m["worst_index"][1:]]

    def result(self) -> dict:
        out = self.out if self.out is not None else {}
        for name, hist in self.hist.items():
            out[f"p50_{name}"], out[f"p99_{name}"] = _hist_quantiles(hist, (0.5, 0.99))
        return out


def _max(a: float, b: float) -> float:
    """max of two floats as a NumPy max finds it: NaN if either is."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _beats(new: float, old: float) -> bool:
    """np.argmax's order: the first NaN, else the first of the largest."""
    return not math.isnan(old) and (math.isnan(new) or new > old)


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def _hist_quantiles(hist: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.quantile's (linear) quantiles of the values a bit histogram counts, each order statistic
    its bucket's midpoint (0 in the bucket of 0)."""
    n = int(hist.sum())
    if not n:
        return [0.0] * len(qs)
    cum = np.cumsum(hist)

    def value(rank: int) -> float:
        b = int(np.searchsorted(cum, rank, side="right"))
        if b == 0:
            return 0.0
        lo, hi = (float(x) for x in np.array([b << HIST_SHIFT, (b + 1) << HIST_SHIFT], dtype=np.uint64).view(np.float64))
        return (lo + hi) / 2 if math.isfinite(hi) else lo

    out = []
    for q in qs:
        idx = q * (n - 1)
        i = int(math.floor(idx))
        a, b = value(i), value(min(i + 1, n - 1))
        out.append(float(a + (idx - i) * (b - a)) if b != a else a)
    return out


def shape_problems(case: Case, loss: np.ndarray, grads: dict[str, np.ndarray]) -> list[str]:
    """What is wrong with the shapes of a linear-CE output (empty: nothing): layout.check's
    counterpart for linear-CE cases."""
    want = {"loss": (case.n,) if case.reduction == "none" else (), "dh": (case.n, case.d), "dw": (case.k, case.d),
            "db": (case.k,)}
    got = {"loss": loss.shape, **{k: a.shape for k, a in grads.items()}}
    out = [f"{k} has shape {tuple(got[k])}, expected {want[k]}" for k in got if tuple(got[k]) != want[k]]
    if "b" in case.option_set and "db" not in grads:
        out.append("no db returned for a case with a bias")
    return out


def compare_linear(case: Case, ref, output, tolerances) -> dict:
    """evaluate._compare for a linear-CE case: shapes, dtypes, then values of each output."""
    loss, grads = np.asarray(output.loss), {k: np.asarray(a) for k, a in (output.grads or {}).items()}
    out: dict = {"loss_dtype": output.loss_dtype or loss.dtype.name,
                 "grad_dtype": output.grad_dtype or (grads["dh"].dtype.name if "dh" in grads else "")}
    reasons = shape_problems(case, loss, grads)
    if reasons:
        return {**out, "verdict": "fail", "reasons": reasons}
    from xentcheck.core.evaluate import dtype_reasons, values_verdict
    from xentcheck.problems.linear import OUTPUTS
    reasons, widened = dtype_reasons(case, out)
    out.update(measure_linear(case, ref, loss, grads, tolerances))
    return {**out, **values_verdict(case, OUTPUTS, out, tolerances, reasons, widened)}
