"""tolerance.md / tolerance.json: observed error distributions and tolerances that fit them.

Per backend x implementation x mode x dtype x case family, and per output (loss, gradient):

- quantiles of the absolute, relative and ULP errors. Results store per-element quantiles, not
  arrays, so "max" is the exact maximum over every element of the group, "p99" is the largest
  per-result 99th percentile and "median" the median of the per-result medians;
- a recommended (rtol, atol) in the plain convention |a - r| <= atol + rtol |r| that covers
  every passing result of the group with a margin of MARGIN: each result stores the smallest
  atol that would pass it at each rtol of a grid (0, u, 2u, ... 2**14 u); the group needs the
  maximum over its passes, the pair allowing least error at |r| = 1 is picked, and both
  numbers are multiplied by MARGIN;
- the published defaults (torch.testing, JAX, TensorFlow) checked on the same elements: a false
  alarm is a result this run passes that the default would fail, a miss a finding it would
  pass; "looser" is the factor by which it exceeds the largest error it had to allow.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict

from xentcheck.core.metrics import rtol_grid
from xentcheck.core.records import Metrics, Result
from xentcheck.core.tolerances import TOLERANCE_ROWS as TABLE_ROWS  # the tables' rows
from xentcheck.core.tolerances import default_table
from xentcheck.problems import output_specs

MARGIN = 2.0
PUBLISHED = ("torch", "jax", "tensorflow")
LOOSE_FACTOR = 100.0  # "much looser than needed" from this factor on
# every kind's declared outputs (xentcheck.problems), where a record has them
OUTPUTS = tuple((o.name, o.title) for o in output_specs())
_TABLE_KEYS = {o.name: o.tolerance for o in output_specs()}


def _table_key(what: str) -> str:
    """The tolerance table's row that judges an output (one of TABLE_ROWS)."""
    return _TABLE_KEYS[what]


def _num(v) -> float:
    return v if isinstance(v, (int, float)) else float(v)


def _round_up(v: float) -> float:
    """Two significant digits, rounded up (a tolerance must not shrink when printed)."""
    if v <= 0 or not math.isfinite(v):
        return v
    e = math.floor(math.log10(v)) - 1
    return math.ceil(v / 10 ** e) * 10 ** e


def recommend(results: list[Result], what: str, dtype: str) -> dict | None:
    """The (rtol, atol) covering every result given (their atol_needed grids), with MARGIN."""
    grids = [m.atol_needed for r in results if (m := r.metrics.get(what)) and m.atol_needed is not None]
    if not grids:
        return None
    rtols = rtol_grid(dtype)
    need = [max(g[i] for g in grids) for i in range(len(rtols))]
    best = min(range(len(rtols)), key=lambda i: (rtols[i] + need[i], -rtols[i]))
    return {"rtol": _round_up(MARGIN * rtols[best]), "atol": _round_up(MARGIN * need[best]),
            "rtol_units": 0 if best == 0 else 2 ** (best - 1), "margin": MARGIN, "covers": len(grids)}


def _quantile(m: Metrics, name: str, fallback: str):
    """Metric `name` of `m`, or `fallback` where it is not stored."""
    v = getattr(m, name)
    return getattr(m, fallback) if v is None else v


def _quantiles(ms: list[Metrics], key: str) -> dict:
    return {"max": max(_num(getattr(m, f"{key}_err")) for m in ms),
            "p99": max(_num(_quantile(m, f"p99_{key}", f"{key}_err")) for m in ms),
            "median": statistics.median(_num(_quantile(m, f"p50_{key}", f"{key}_err")) for m in ms)}


def _published(results: list[Result], what: str, dtype: str) -> dict:
    out = {}
    for name in PUBLISHED:
        rtol, atol = default_table(name, dtype, _table_key(what))
        ex = [(r, m, _num(m.excess[name])) for r in results
              if (m := r.metrics.get(what)) and m.excess is not None and name in m.excess]
        if not ex:
            continue
        passes = [e for r, _, e in ex if r.verdict == "pass"]
        worst = max(passes, default=0.0)
        out[name] = {"rtol": rtol, "atol": atol,
                     "false_alarms": sum(1 for r, _, e in ex if r.verdict == "pass" and e > 1),
                     "false_alarm_cases": [r.case_id for r, _, e in ex if r.verdict == "pass" and e > 1],
                     # a finding on this output (not only on the other one) that the default lets pass
                     "misses": sum(1 for r, m, e in ex if r.verdict == "fail" and m.n_exceed and e <= 1),
                     "looser": (1 / worst if worst > 0 else None) if worst <= 1 else None}
    return out


def build(records: list[Result]) -> dict:
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in records:
        if any(r.metrics.get(w) for w, _ in OUTPUTS):
            groups[(r.backend, r.impl or "", r.mode or "", r.dtype, r.family)].append(r)
    rows = []
    for (backend, impl, mode, dtype, family), rs in sorted(groups.items()):
        row = {"backend": backend, "impl": impl, "mode": mode, "dtype": dtype, "family": family,
               "results": len(rs), "passed": sum(r.verdict == "pass" for r in rs)}
        for what, _ in OUTPUTS:
            ms = [m for r in rs if (m := r.metrics.get(what))]
            if not ms and what != "loss":  # a group has the outputs of its kind only
                continue
            row[what] = {"abs": _quantiles(ms, "abs"), "rel": _quantiles(ms, "rel"), "ulp": _quantiles(ms, "ulp"),
                         "recommended": recommend([r for r in rs if r.verdict == "pass"], what, dtype),
                         "published": _published(rs, what, dtype)}
        rows.append(row)
    per_dtype = []
    for dtype in sorted({str(r.dtype) for r in records if r.metrics.get("loss")}):
        rs = [r for r in records if r.dtype == dtype and r.metrics.get("loss")]
        passes = [r for r in rs if r.verdict == "pass"]
        per_dtype.append({"dtype": dtype, "results": len(rs), "passed": len(passes),
                          **{what: {"recommended": recommend(passes, what, dtype),
                                    "published": _published(rs, what, dtype)} for what in TABLE_ROWS}})
    return {"margin": MARGIN, "loose_factor": LOOSE_FACTOR,
            "method": __doc__.split("\n\n", 1)[1].strip(), "groups": rows, "per_dtype": per_dtype}


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2) + "\n"


def verdict_cell(p: dict | None) -> str:
    """Plain-text judgement of a published default on a group."""
    if not p:
        return ""
    if p["false_alarms"]:
        out = f"FALSE ALARM x{p['false_alarms']}"
    elif p["looser"] is not None and p["looser"] >= LOOSE_FACTOR:
        out = f"{p['looser']:.3g}x looser"
    elif p["looser"] is not None:
        out = f"ok ({p['looser']:.3g}x)"
    else:
        out = "ok"
    if p["misses"]:
        out += f", misses {p['misses']}"
    return out


def _g(v: float) -> str:
    return f"{v:.2g}"


def render_md(report: dict) -> str:
    from xentcheck.reports.markdown import esc

    lines = ["# xentcheck tolerance report", "",
             "Errors are given as max / p99 / median. Results store per-element quantiles, not arrays: max is exact "
             "over every element of a group, p99 the largest per-result 99th percentile, median the median of the "
             "per-result medians.", "",
             "Recommended (rtol, atol), in the plain convention |a - r| <= atol + rtol |r|, covers every passing "
             f"result of the row with a margin of {report['margin']:g} (each result stores the smallest atol that "
             "passes it at rtol = 0, u, 2u, ... 2^14 u; the pair allowing least error at |r| = 1 is chosen).", "",
             "Published defaults are checked on the same elements: FALSE ALARM xN = the default fails N results "
             "that this run passes; N x looser = it allows N times the largest error it had to "
             f"(flagged from {report['loose_factor']:g}x); misses N = it would pass N findings of this run.", ""]
    lines += ["## Recommended tolerances per dtype (all backends)", "",
              "| dtype | results | loss rtol | loss atol | gradient rtol | gradient atol | torch loss / grad | "
              "jax loss / grad | tensorflow loss / grad |", "|" + "---|" * 9]
    for d in report["per_dtype"]:
        recs = [d[w]["recommended"] or {} for w in TABLE_ROWS]
        pub = [" / ".join(esc(verdict_cell(d[w]["published"].get(n))) for w in TABLE_ROWS) for n in PUBLISHED]
        lines.append(f"| {d['dtype']} | {d['passed']} passed / {d['results']} | {_g(recs[0].get('rtol', 0))} | "
                     f"{_g(recs[0].get('atol', 0))} | {_g(recs[1].get('rtol', 0))} | {_g(recs[1].get('atol', 0))} | "
                     + " | ".join(pub) + " |")
    lines.append("")
    for what, title in [o for o in OUTPUTS if any(o[0] in g for g in report["groups"])]:
        lines += [f"## {title[0].upper() + title[1:]} errors and tolerances per backend, dtype and family", "",
                  "Errors as max / p99 / median. Recommended (rtol, atol) covers every passing result of the row "
                  f"with margin {report['margin']:g}.", "",
                  "| backend | impl | dtype | family | passed | abs err | rel err | ULP err | rec. rtol | rec. atol | "
                  "torch | jax | tensorflow |", "|" + "---|" * 13]
        for g in report["groups"]:
            if what not in g:
                continue
            o = g[what]
            q = [" / ".join(_g(o[k][s]) for s in ("max", "p99", "median")) for k in ("abs", "rel", "ulp")]
            rec = o["recommended"] or {}
            lines.append(f"| {esc(g['backend'])} | {esc(g['impl'])} | {g['dtype']} | {esc(g['family'])} | "
                         f"{g['passed']} / {g['results']} | {q[0]} | {q[1]} | {q[2]} | "
                         f"{_g(rec.get('rtol', 0)) if rec else '-'} | "
                         f"{_g(rec.get('atol', 0)) if rec else '-'} | "
                         + " | ".join(esc(verdict_cell(o["published"].get(n))) for n in PUBLISHED) + " |")
        lines.append("")
    return "\n".join(lines)
