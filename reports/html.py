"""report.html: one self-contained page (inline CSS, figures as data URIs, no network).

Rendered by jinja2 with autoescaping on, so every string that comes from a backend or plugin
(names, versions, exception messages, settings) reaches the page as text, never as markup.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Metrics, Result
from xentcheck.core.tolerances import ROW_TITLES
from xentcheck.reports import blame, kinds, plots
from xentcheck.reports import tolerance_report as tolerance
from xentcheck.reports.junit import repro

MAX_FINDINGS = 100
_RANK = {"crashed": 0, "timeout": 0, "error": 1, "nonfinite": 2, "fail": 3}


def _past_tolerance(r: Result) -> float:
    """How many times the allowed error the worst element reached (inf for NaN/inf mismatches)."""
    worst = 0.0
    for what, _ in tolerance.OUTPUTS:
        m = r.metrics.get(what)
        if m is None:
            continue
        if m.n_nonfinite_mismatch:
            return float("inf")
        if m.worst_actual is None or m.worst_expected is None:
            continue
        try:
            d = abs(float(m.worst_actual) - float(m.worst_expected))
            worst = max(worst, d / m.worst_allowed if m.worst_allowed else (float("inf") if d else 0.0))
        except (TypeError, ValueError):
            continue
    return worst


def findings(records: list[Result], specs: dict, preset: str | None) -> tuple[int, list[dict]]:
    bad = [r for r in records if r.verdict in BAD_VERDICTS]
    bad.sort(key=lambda r: (_RANK.get(str(r.verdict), 9), -_past_tolerance(r)))
    rows = []
    for r in bad[:MAX_FINDINGS]:
        past = _past_tolerance(r) if r.verdict in ("fail", "nonfinite") else None
        rows.append({"case_id": r.case_id, "backend": r.backend, "dtype": r.dtype, "verdict": r.verdict,
                     "excess": "" if past is None else ("NaN/inf" if past == float("inf") else f"{past:.3g}x"),
                     "explanation": "; ".join(r.reasons or []),
                     "repro": repro(r, specs.get(r.backend), preset)})
    return len(bad), rows


def largest_errors(records: list[Result]) -> list[dict]:
    """Per output, backend, implementation and dtype: the result with the largest scaled error
    (max |a - r| / (u (scale + |r|)), what the default tolerance bounds by 8), not the largest
    relative error, which flush-to-zero of a 1e-40 gradient entry would make 1 everywhere."""
    best: dict[tuple, tuple[float, Result, Metrics]] = {}
    for r in records:
        for what, title in tolerance.OUTPUTS:
            m = r.metrics.get(what)
            if m is None:
                continue
            e = blame.scaled_error(m)
            key = (title, r.backend, r.impl or "", r.dtype)
            if e is not None and (key not in best or e > best[key][0]):
                best[key] = (e, r, m)
    rows = []
    for (title, backend, impl, dtype), (e, r, m) in sorted(best.items(), key=lambda kv: (kv[0][0] != "loss", kv[0][1:])):
        rows.append({"output": title, "backend": backend, "impl": impl, "dtype": dtype, "case_id": r.case_id,
                     "verdict": r.verdict, "scaled": e, "abs_err": m.abs_err, "rel_err": m.rel_err,
                     "ulp_err": m.ulp_err})
    return rows


def _pass_groups(summary: dict) -> tuple[list[str], list[dict]]:
    groups: dict[tuple, dict] = defaultdict(dict)
    for row in summary.get("pass_rates", []):
        groups[(row["backend"], row["impl"], row["mode"])][row["dtype"]] = row
    dts = [d for d in DTYPE_NAMES if any(d in g for g in groups.values())]
    return dts, [{"backend": b, "impl": i, "mode": m, "cells": cells} for (b, i, m), cells in groups.items()]


def _tol_rows(tol_report: dict) -> list[dict]:
    rows = []
    for d in tol_report.get("per_dtype", []):
        for what, title in ROW_TITLES.items():  # the tolerance tables' two rows
            rec = d[what]["recommended"] or {}
            rows.append({"dtype": d["dtype"], "output": title,
                         "rtol": f"{rec['rtol']:.2g}" if rec else "-", "atol": f"{rec['atol']:.2g}" if rec else "-",
                         "published": [tolerance.verdict_cell(d[what]["published"].get(n)) for n in tolerance.PUBLISHED]})
    return rows


def _rule(tol: dict) -> str:
    kind = tol.get("kind") or ("scaled" if tol.get("scaled") else "table")
    if kind == "scaled":
        return ("an element passes when |actual - reference| <= rtol |reference| + atol scale, scale being the output's "
                "natural scale: max(1, sum q) / denominator per gradient row, max(1, row loss) per loss row (summed "
                "for sum and mean).")
    if kind == "model":
        return ("an element passes when |actual - reference| <= its error-model bound (from the dtype's unit roundoff, "
                "the number of classes, the logits' spread below the row maximum and the reduction's denominator; "
                "docs/tolerance-model.md) + rtol |reference| + atol.")
    return "an element passes when |actual - reference| <= rtol |reference| + atol."


def render(summary: dict, records: list[Result], tol_report: dict | None = None, matrix: dict | None = None,
           timing: dict | None = None, figures: list[dict] | None = None) -> str:
    """The page; `timing` (the folder's timing.json, from `xentcheck bench`) adds its figure;
    `figures`: plots.figures(records, matrix) when already drawn."""
    import jinja2

    tol_report = tol_report if tol_report is not None else tolerance.build(records)
    matrix = matrix if matrix is not None else blame.build(records)
    specs = {b.get("name"): b.get("spec") for b in summary.get("backends", []) if isinstance(b, dict)}
    tol = summary.get("tolerances") or {"preset": "", "dtypes": {}}
    n_bad, rows = findings(records, specs, tol.get("preset"))
    dts, groups = _pass_groups(summary)
    worst = largest_errors(records)
    figures = list(figures if figures is not None else plots.figures(records, matrix))
    if timing:
        from xentcheck.reports import timing_report
        figures += timing_report.figures(timing)
    backends = []
    for b in summary.get("backends", []):
        settings = ", ".join(f"{k}={v}" for k, v in (b.get("settings") or {}).items())
        backends.append({"name": b.get("name", b.get("spec", "")), "status": b.get("status", ""),
                         "version": b.get("version", ""), "impl": b.get("impl", ""),
                         "detail": b.get("reason", settings)})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined)
    return env.get_template("report.html.j2").render(
        config={"backends": [], "seed": "", "device": "", "n_cases": "", **summary.get("config", {})},
        version=summary.get("xentcheck_version", ""), tolerances=tol, rule=_rule(tol),
        exit_status=summary.get("exit_status", 0), interrupted=summary.get("interrupted", False),
        results=summary.get("results", len(records)), counts=summary.get("counts", {}),
        dtypes=dts, pass_groups=groups, findings=rows, n_bad=n_bad, kinds=kinds.group(records), worst=worst,
        figures=figures,
        blame_text=[f"{title}: {blame.blame_sentence(matrix, what)}"
                    for what, title in tolerance.OUTPUTS if matrix["backends"] and what in matrix["outputs"]],
        margin=tol_report.get("margin"), tol_rows=_tol_rows(tol_report), backends=backends,
        env=summary.get("environment", {}), reference_float64=summary.get("reference_float64", ""))
