"""Comparing a backend's output with the reference: error metrics (the verdict is
xentcheck.core.evaluate's).

Finite errors (absolute, relative, ULPs of the tested dtype) are measured only where both
sides are finite. NaN/inf positions are compared separately, against the reference rounded to
the tested dtype (so a true value that overflows the dtype is expected to be inf), and never
counted as a pass: no nan_to_num before comparing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xentcheck.core.dtypes import info, round_to, ulp

# "widened": within the requested dtype's tolerance, but computed in a wider dtype (not a failure)
VERDICTS: tuple[str, ...] = ("pass", "fail", "nonfinite", "error", "crashed", "timeout", "skipped", "known", "widened")
BAD_VERDICTS = frozenset({"fail", "nonfinite", "error", "crashed", "timeout"})


def _finite_max(v: np.ndarray) -> float | None:
    return float(v.max()) if v.size else None


RTOL_GRID_EXPONENTS = range(15)  # atol_needed[i] is for rtol = 0 (i = 0), then u * 2**(i - 1)
SAMPLE_SIZE = 32


def rtol_grid(dtype: str) -> list[float]:
    """The rtol values that `atol_needed` is measured at: 0, then u, 2u, 4u, ... 2**14 u."""
    u = info(dtype).eps
    return [0.0] + [u * 2.0 ** j for j in RTOL_GRID_EXPONENTS]


def sample_positions(size: int) -> np.ndarray:
    """Flat indices sampled for cross-backend comparison: the same for every backend of a case."""
    return np.unique(np.linspace(0, size - 1, min(SAMPLE_SIZE, size)).round().astype(np.int64)) if size else \
        np.zeros(0, dtype=np.int64)


def _q(v: np.ndarray, qs: tuple[float, ...], scratch: bool = False) -> list[float]:
    """np.quantile(v, qs) (its "linear" method: (n - 1) q, interpolated as numpy's _lerp does),
    bit for bit, from the order statistics it needs alone. np.quantile partitions at six ranks at
    once (the two neighbours of each quantile, the first and the last), which costs twice a full
    sort; one rank at a time on what is left above the previous costs a fifth of it. `scratch`:
    v is the caller's to reorder (no copy of it is made)."""
    v = v.ravel()  # the whole array's quantiles, as np.quantile without an axis
    n = v.size
    if not n:
        return [0.0] * len(qs)
    q = np.asarray(qs, dtype=np.float64)
    virtual = (n - 1) * q
    if n < 2 or not (q < 1).all() or np.isnan(v).any():  # NaN, ends and one value: numpy's own rules
        return [float(x) for x in np.quantile(v, qs)]
    lo = np.floor(virtual).astype(np.intp)
    stats = _order_statistics(v, {*lo.tolist(), *(lo + 1).tolist()}, scratch)
    a = np.array([stats[i] for i in lo.tolist()], dtype=v.dtype)
    b = np.array([stats[i + 1] for i in lo.tolist()], dtype=v.dtype)
    t = virtual - lo
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return [float(x) for x in out]


def _order_statistics(v: np.ndarray, ranks: set[int], scratch: bool = False) -> dict[int, np.floating]:
    """The values of ascending ranks `ranks` of v (1-D, no NaN), each partition on the part above
    the last (in place when v is `scratch`, else on one copy)."""
    out: dict[int, np.floating] = {}
    part, base = (v if scratch else None), 0
    for k in sorted(ranks):
        j = k - base
        if j == 0:  # the smallest of what is left: `part` keeps it, at its rank 0
            out[k] = (v if part is None else part).min()
            continue
        if part is None:
            part = np.partition(v, j)
        else:
            part.partition(j)
        out[k] = part[j]
        part, base = part[j + 1:], k + 1
    return out


def array_metrics(actual: np.ndarray, ref: np.ndarray, dtype: str, rtol: float, atol: float,
                  scale: np.ndarray | float = 1.0, *, allowed: np.ndarray | None = None,
                  natural: np.ndarray | float | None = None, others: dict | None = None,
                  sample_at: np.ndarray | None = None, keep: dict | None = None) -> dict:
    """Error metrics of `actual` (any float dtype) against the high-precision `ref`; an element
    is within tolerance when |actual - ref| <= rtol * |ref| + atol * scale (or <= `allowed`,
    when given).

    Besides maxima, it stores what the reports need without the arrays: medians and 99th
    percentiles of the absolute, relative and ULP errors, the smallest atol that would pass at each rtol
    of `rtol_grid` (plain, unscaled convention), max(error / allowed) under each tolerance of
    `others` (name -> allowed array) and a fixed sample of signed errors in ULPs of
    max(|ref|, natural scale) for comparing backends with each other.

    A part of a larger array (problems.linear.metrics.StreamedMetrics merges the parts): `sample_at`, the
    flat positions to sample in this part instead of sample_positions(size); `keep`, a dict that
    receives the finite errors the quantiles are of ("abs", "rel", "ulp"; the part's own
    quantiles are then left at 0) and the worst element's score ("score")."""
    ref = np.asarray(ref)
    wp = np.longdouble if ref.dtype == np.longdouble else np.float64
    a = np.asarray(actual).astype(wp)
    r = ref if ref.dtype == wp else ref.astype(wp)  # read only: no copy needed
    a64 = a if wp is np.float64 else a.astype(np.float64)
    finite_a = np.isfinite(a)
    with np.errstate(invalid="ignore"):
        # |ref| <= the dtype's max rounds to a finite number: the rounded reference (slow to form
        # for float16 and bfloat16) is only needed where an output or the reference is not finite
        all_finite = bool(finite_a.all()) and bool((np.abs(r) <= info(dtype).max).all())
    if all_finite:  # the usual case: every element compared, no NaN/inf to match
        both_finite = nonfinite_bad = None
    else:
        expected = round_to(r, dtype).astype(np.float64)
        both_finite = finite_a & np.isfinite(expected)
        same_nonfinite = (np.isnan(a64) & np.isnan(expected)) | (np.isinf(a64) & (a64 == expected))
        nonfinite_bad = ~both_finite & ~same_nonfinite
    signed = a - r
    diff = np.abs(signed)
    mag_wp = np.abs(r)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if allowed is None:
            allowed = atol * np.asarray(scale, dtype=wp) + rtol * mag_wp
        allowed = np.broadcast_to(np.asarray(allowed, dtype=wp), r.shape)
        rel = diff / mag_wp
        if not (r != 0).all():
            rel = np.where(r != 0, rel, np.where(diff == 0, 0.0, np.inf))
        ulps = diff / ulp(r, dtype)
    if both_finite is not None:
        diff, rel, ulps, allowed = (np.where(both_finite, v, 0) for v in (diff, rel, ulps, allowed))
        exceed = both_finite & (diff > allowed)
    else:
        exceed = diff > allowed
    out: dict[str, Any] = {  # JSON-ready: numbers, lists and the excess dict
        "size": int(r.size),
        "abs_err": float(diff.max()) if r.size else 0.0,
        "rel_err": float(rel.max()) if r.size else 0.0,
        "ulp_err": float(ulps.max()) if r.size else 0.0,
        "n_exceed": int(np.count_nonzero(exceed)),
        "n_nonfinite_mismatch": 0 if nonfinite_bad is None else int(np.count_nonzero(nonfinite_bad)),
    }
    d64 = diff.astype(np.float64, copy=False)
    for name, v in (("abs", d64), ("rel", rel), ("ulp", ulps)):
        v = (v if both_finite is None else v[both_finite]).astype(np.float64, copy=False)
        if keep is None:  # rel and ulp are not read after this: reordered in place
            out[f"p50_{name}"], out[f"p99_{name}"] = _q(v, (0.5, 0.99), scratch=name != "abs" or v is not d64)
        else:  # a part: the caller forms the whole array's quantiles from `keep`
            out[f"p50_{name}"], out[f"p99_{name}"] = 0.0, 0.0
            keep[name] = v
    mag = (mag_wp if both_finite is None else np.where(both_finite, mag_wp, 0)).astype(np.float64, copy=False)
    out["atol_needed"] = _atol_needed(d64, mag, rtol_grid(dtype))
    if others:
        excess: dict[int, float | str] = {}  # presets sharing one allowed array (tolerances.allowances): once
        for al in others.values():
            if id(al) not in excess:
                excess[id(al)] = _excess(d64, np.broadcast_to(al, r.shape) if both_finite is None else
                                         np.where(both_finite, np.broadcast_to(al, r.shape), 0))
        out["excess"] = {name: excess[id(al)] for name, al in others.items()}
    nat = np.broadcast_to(np.asarray(1.0 if natural is None else natural, dtype=np.float64), r.shape)
    pos = sample_positions(r.size) if sample_at is None else sample_at
    # elementwise, so only at the sampled positions
    unit = ulp(np.maximum(np.abs(r.ravel()[pos].astype(np.float64)), nat.ravel()[pos]), dtype)
    sample = signed.ravel()[pos].astype(np.float64) / unit
    sampled_finite = [True] * len(pos) if both_finite is None else both_finite.ravel()[pos]
    out["sample_ulp"] = [round(float(v), 4) if np.isfinite(v) and bf else None
                         for v, bf in zip(sample, sampled_finite)]
    if r.size:
        # the worst element: furthest out of tolerance, else furthest from the reference
        with np.errstate(divide="ignore", invalid="ignore"):
            positive = allowed > 0
            score = diff / allowed if positive.all() else np.where(positive, diff / np.where(positive, allowed, 1), diff)
        if nonfinite_bad is not None:
            score = np.where(nonfinite_bad, np.inf, score)
        flat = int(np.argmax(score))
        if keep is not None:
            keep["score"] = float(np.asarray(score).ravel()[flat])
        idx = np.unravel_index(flat, r.shape)
        out["worst_index"] = [int(i) for i in idx]
        out["worst_actual"] = _json_float(a64[idx])
        out["worst_expected"] = _json_float(float(r[idx]))
        out["worst_scale"] = float(np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape)[idx])
        out["worst_allowed"] = float(allowed[idx])
    return out


ATOL_CHUNK = 1 << 15  # entries a pass of _atol_needed runs over: its 16 rtols' passes stay in cache


def _atol_needed(d64: np.ndarray, mag: np.ndarray, rtols: list[float]) -> list[float]:
    """max(0, max(d64 - t * mag)) for each t: exact zeros of d64 can only give <= 0, so the
    passes run over the nonzero differences alone, in one reused buffer, ATOL_CHUNK entries at a
    time (every t on a chunk, then the next: a third of the time on large arrays; the maxima of
    the chunks' maxima are the same numbers, NaN included)."""
    nonzero = d64 != 0  # NaN stays in
    if not nonzero.all():
        d64, mag = d64[nonzero], mag[nonzero]
    d64, mag = d64.ravel(), mag.ravel()
    buf = np.empty(min(d64.size, ATOL_CHUNK))
    per_chunk = np.zeros((max(1, -(-d64.size // ATOL_CHUNK)), len(rtols)))
    for c, lo in enumerate(range(0, d64.size, ATOL_CHUNK)):
        d, m = d64[lo:lo + ATOL_CHUNK], mag[lo:lo + ATOL_CHUNK]
        b = buf[:d.size]
        for i, t in enumerate(rtols):
            np.multiply(t, m, out=b)
            np.subtract(d, b, out=b)
            per_chunk[c, i] = np.max(b, initial=0.0)
    return [float(x) for x in per_chunk.max(axis=0)]


def _excess(diff: np.ndarray, allowed: np.ndarray) -> float | str:
    """max(diff / allowed): <= 1 passes. 0 / 0 counts as 0, d / 0 as inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if allowed.size and allowed.min() > 0:  # the usual case: one division, no selects (NaN: below)
            ratio = diff / allowed
        else:
            positive = allowed > 0
            ratio = np.where(positive, diff / np.where(positive, allowed, 1), np.where(diff > 0, np.inf, 0.0))
    return _json_float(float(ratio.max())) if ratio.size else 0.0


def _json_float(v: float) -> float | str:
    v = float(v)
    return v if np.isfinite(v) else str(v)
