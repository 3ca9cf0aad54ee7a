"""The backend x backend discrepancy matrix and who is to blame for disagreements.

Results keep no arrays, so the matrix is measured on a fixed sample: every result stores the
signed error (actual - reference) at the same <= 32 element positions of its case, in ULPs of
the tested dtype at max(|reference|, the output's natural scale). Two backends' signed errors at
the same positions differ by exactly (a - b) in those units, so off-diagonal cells are true
pairwise differences, on sampled elements; the diagonal is |actual - reference| on the same
sample. The blame uses every element: a backend's distance from the reference is the mean over
results of max |actual - reference| / (u (scale + |reference|)) ("scaled error", stored as the
xentcheck preset's excess times 8), and the furthest backend is blamed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from itertools import combinations

from xentcheck.core.records import Metrics, Result
from xentcheck.problems import OUTPUT_NAMES

OUTPUTS = OUTPUT_NAMES  # every kind's declared outputs (xentcheck.problems): in the matrix when a record has them
XENTCHECK_UNITS = 8.0  # the xentcheck preset allows 8 u: excess * 8 = error in u of the scale


def label(r: Result) -> str:
    return str(r.backend)


def scaled_error(m: Metrics) -> float | None:
    """max |a - r| / (u (scale + |r|)) over the finite elements, or None when not stored."""
    ex = (m.excess or {}).get("xentcheck")
    if ex is None:
        return None
    return float(ex) * XENTCHECK_UNITS


def _stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def build(records: list[Result]) -> dict:
    """{"backends": [...], "outputs": {what: {"pairs": {a: {b: cell}}, "reference": {a: cell}, "blame": ...}}}"""
    by_case: dict[str, dict[str, Result]] = defaultdict(dict)
    for r in records:
        if any(r.metrics.get(w) for w in OUTPUTS):
            by_case[str(r.case_id)][label(r)] = r
    backends = sorted({b for per in by_case.values() for b in per})
    outputs: dict[str, dict] = {}
    out = {"backends": backends, "outputs": outputs}
    for what in [w for w in OUTPUTS if any(r.metrics.get(w) for r in records)]:
        pair_vals: dict[tuple[str, str], list[float]] = defaultdict(list)
        pair_cases: dict[tuple[str, str], int] = defaultdict(int)
        pair_nonfinite: dict[tuple[str, str], int] = defaultdict(int)
        ref_vals: dict[str, list[float]] = defaultdict(list)  # full-array scaled errors, per result
        ref_sample: dict[str, list[float]] = defaultdict(list)  # |a - ref| on the sampled elements
        wins: dict[tuple[str, str], int] = defaultdict(int)  # (a, b): cases where a is further from the reference
        for per in by_case.values():
            for b, r in per.items():
                m = r.metrics.get(what) or Metrics()
                e = scaled_error(m)
                if e is not None:
                    ref_vals[b].append(e)
                ref_sample[b] += [abs(v) for v in m.sample_ulp or [] if v is not None]
            for a, b in combinations(sorted(per), 2):
                ma, mb = per[a].metrics.get(what), per[b].metrics.get(what)
                if not ma or not mb:
                    continue
                sa, sb = ma.sample_ulp or [], mb.sample_ulp or []
                if len(sa) != len(sb) or not sa:
                    continue
                pair_cases[(a, b)] += 1
                for x, y in zip(sa, sb):
                    if x is None or y is None:
                        pair_nonfinite[(a, b)] += x is not y
                    else:
                        pair_vals[(a, b)].append(abs(x - y))
                ea, eb = scaled_error(ma), scaled_error(mb)
                if ea is not None and eb is not None and ea != eb:
                    wins[(a, b) if ea > eb else (b, a)] += 1
        pairs: dict[str, dict[str, dict]] = {a: {} for a in backends}
        for a, b in pair_cases:
            cell = {**_stats(pair_vals.get((a, b), [])), "cases": pair_cases[(a, b)],
                    "nonfinite_disagreements": pair_nonfinite[(a, b)],
                    "further_from_reference": {a: wins[(a, b)], b: wins[(b, a)]}}
            pairs[a][b] = pairs[b][a] = cell
        reference = {b: _stats(ref_vals[b]) for b in backends}
        ranked = sorted((b for b in backends if reference[b]["n"]),
                        key=lambda b: (reference[b]["mean"], reference[b]["max"]), reverse=True)
        outputs[what] = {"pairs": pairs, "reference": reference,
                                "reference_sampled": {b: _stats(ref_sample[b]) for b in backends},
                                "blame": ranked[0] if ranked else None, "ranking": ranked}
    return out


def blame_sentence(matrix: dict, what: str) -> str:
    o = matrix["outputs"].get(what) or {}
    b = o.get("blame")
    if not b:
        return "No backend results to compare."
    ref = o["reference"][b]
    return (f"{b} is furthest from the reference: mean scaled error {ref['mean']:.3g} u (median "
            f"{ref['median']:.3g} u, largest {ref['max']:.3g} u) over {ref['n']} results.")
