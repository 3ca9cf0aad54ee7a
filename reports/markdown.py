"""report.md: what a person reads first. Every string from a backend or plugin is escaped."""

from __future__ import annotations

import re
from collections import defaultdict

from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Result
from xentcheck.problems import output_specs
from xentcheck.reports import kinds

MAX_FINDINGS = 60
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!~])")


def esc(value: object) -> str:
    """Markdown-safe text for a table cell: no markup, no HTML, no line breaks."""
    text = str(value).replace("&", "&amp;").replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return esc(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


def render(summary: dict, records: list[Result]) -> str:
    c = summary["counts"]
    cfg = summary.get("config", {})
    lines = ["# xentcheck report", ""]
    status = "**OK: every result within tolerance**" if summary["exit_status"] == 0 else \
        "**DISCREPANCIES FOUND**"
    if summary.get("interrupted"):
        status += " (run interrupted: partial results)"
    lines += [status, "",
              f"{summary['results']} results: " + ", ".join(f"{v} {k}" for k, v in c.items() if v) + ".",
              f"Seed {esc(cfg.get('seed'))}, device {esc(cfg.get('device'))}, "
              f"{esc(cfg.get('n_cases'))} cases, backends {esc(', '.join(cfg.get('backends', [])))}.", ""]

    lines += ["Also in this folder: report.html (plots, discrepancy matrix), junit.xml (CI), tolerance.md "
              "(observed errors and recommended tolerances); docs/reports.md explains them.", ""]
    lines += ["## Pass rates per backend and dtype", "",
              "Cell: passed / ran (+ skipped). A backend fails a result when any loss or gradient element is "
              "out of tolerance, NaN/inf where the reference is finite (or the reverse), of the wrong shape "
              "or computed in another dtype.", ""]
    by_group: dict[tuple, dict] = defaultdict(dict)
    for row in summary["pass_rates"]:
        by_group[(row["backend"], row["impl"], row["mode"])][row["dtype"]] = row
    dts = [d for d in DTYPE_NAMES if any(d in g for g in by_group.values())]
    rows = []
    for (backend, impl, mode), per in by_group.items():
        cells = []
        for d in dts:
            r = per.get(d)
            if not r:
                cells.append("")
                continue
            cell = f"{r['pass']} / {r['ran']}" + (f" (+{r['skipped']})" if r["skipped"] else "")
            widened = r.get("widened", 0)
            cell += f", {widened} widened" if widened else ""
            cells.append(cell if r["pass"] + widened == r["ran"] else f"**{cell}**")
        rows.append([esc(backend), esc(impl), esc(mode), *cells])
    lines += _table(["backend", "implementation", "mode", *dts], rows)

    bad = [r for r in records if r.verdict in BAD_VERDICTS]
    lines += ["## Findings", ""]
    if not bad:
        lines += ["None.", ""]
    else:
        groups = kinds.group(records)
        lines += [f"{len(bad)} results out of tolerance or broken, of {len(groups)} kinds (the same backend, "
                  "implementation and first reason, its numbers left out):", ""]
        lines += _table(["backend", "implementation", "finding", "results", "modes", "dtypes", "options", "cases"],
                        [[esc(g["backend"]), esc(g["impl"]), esc(g["kind"]), str(g["results"]), esc(", ".join(g["modes"])),
                          esc(", ".join(g["dtypes"])), esc(", ".join(g["options"])),
                          f"`{esc(g['cases'][0])}`" + (f" and {len(g['cases']) - 1} more" if len(g["cases"]) > 1 else "")]
                         for g in groups])
        lines += ["Each result" + (f" (the first {MAX_FINDINGS}; all are in results.jsonl)" if len(bad) > MAX_FINDINGS else "")
                  + ":", ""]
        rows = [[f"`{esc(r.case_id)}`", esc(r.backend), esc(r.impl or ""), esc(r.mode or ""),
                 esc(r.verdict) + (" (documented difference)" if r.documented else ""),
                 esc("; ".join(r.reasons or []) + (f" [documented: {r.documented}]" if r.documented else ""))]
                for r in bad[:MAX_FINDINGS]]
        lines += _table(["case", "backend", "implementation", "mode", "verdict", "explanation"], rows)

    widened = kinds.group(records, frozenset({"widened"}))
    if widened:
        lines += ["## Computed in a wider dtype", "",
                  f"{c.get('widened', 0)} results are within the requested dtype's tolerance but were computed (or "
                  "returned) in a wider dtype, float32 for float16, say: not failures, and apart from the narrowed "
                  "ones above, which are.", ""]
        lines += _table(["backend", "implementation", "what", "results", "modes", "dtypes", "cases"],
                        [[esc(g["backend"]), esc(g["impl"]), esc(g["kind"]), str(g["results"]), esc(", ".join(g["modes"])),
                          esc(", ".join(g["dtypes"])),
                          f"`{esc(g['cases'][0])}`" + (f" and {len(g['cases']) - 1} more" if len(g["cases"]) > 1 else "")]
                         for g in widened])

    counts = summary.get("property_counts") or {}
    if counts:
        from xentcheck.reports.summary import property_findings
        lines += ["## Properties", "",
                  "Checked on each backend's own outputs, beyond the reference: each has its own verdict.", ""]
        lines += _table(["property", "pass", "fail", "error", "skipped"],
                        [[esc(n), *(str(c.get(v, 0)) for v in ("pass", "fail", "error", "skipped"))] for n, c in counts.items()])
        found = property_findings(records)
        if found:
            more = f"; the first {MAX_FINDINGS}:" if len(found) > MAX_FINDINGS else ":"
            lines += [f"{len(found)} property findings" + more, ""]
            lines += _table(["case", "backend", "implementation", "mode", "property", "verdict", "explanation"],
                            [[f"`{esc(f['case_id'])}`", esc(f["backend"]), esc(f["impl"]), esc(f["mode"]), esc(f["property"]),
                              esc(f["verdict"]), esc(f["detail"])] for f in found[:MAX_FINDINGS]])

    specs = output_specs()  # every kind's declared outputs: the gradients first, then the loss
    for what, title in [(o.name, o.title) for o in (*specs[1:], specs[0]) if f"worst_{o.name}" in summary]:
        lines += [f"## Largest {title} errors per backend and dtype", "",
                  "The compared result with the greatest relative error (ULPs in the tested dtype).", ""]
        rows = [[esc(w["backend"]), esc(w["dtype"]), f"`{esc(w['case_id'])}`", esc(w["verdict"]),
                 _fmt(w["abs_err"]), _fmt(w["rel_err"]), _fmt(w["ulp_err"])] for w in summary[f"worst_{what}"]]
        lines += _table(["backend", "dtype", "case", "verdict", "abs err", "rel err", "ULP err"], rows)

    modified = summary.get("inputs_modified") or []
    if modified:
        lines += ["## Backends that modified their inputs", "",
                  "Each backend gets its own copy, so other results are unaffected; a fused kernel that writes "
                  "the gradient into the logits buffer shows up here.", ""]
        lines += [f"- {esc(b)}: `{esc(cid)}`" for b, cid in modified[:MAX_FINDINGS]] + [""]

    tol = summary.get("tolerances", {})
    rule = ("rtol * |reference| + atol * scale, scale being the output's natural scale: max(1, sum q) / "
            "denominator per gradient row, max(1, row loss) per loss row (summed for sum and mean)"
            if tol.get("scaled") else "rtol * |reference| + atol")
    lines += ["## Tolerances", "", f"Preset `{esc(tol.get('preset', ''))}`. An element passes when "
              f"|actual - reference| <= {rule}.", ""]
    lines += _table(["dtype", "loss rtol", "loss atol", "gradient rtol", "gradient atol", "origin"],
                    [[d, f"{t['loss']['rtol']:.3g}", f"{t['loss']['atol']:.3g}", f"{t['grad']['rtol']:.3g}",
                      f"{t['grad']['atol']:.3g}", esc(t["origin"])] for d, t in tol.get("dtypes", {}).items()])

    lines += ["## Reference", "",
              "Loss and gradient from the closed form via log-sum-exp (gradient p * sum(q) - q), in float64 for "
              "16- and 32-bit cases and in " + esc(summary.get("reference_float64", "")) + " for float64 cases"
              + (f"; computed by {esc(kern)}." if (kern := summary.get("environment", {}).get("reference_kernel")) else "."), ""]

    lines += ["## Backends", ""]
    rows = []
    for b in summary.get("backends", []):
        settings = ", ".join(f"{k}={v}" for k, v in (b.get("settings") or {}).items())
        rows.append([esc(b.get("name", "")), esc(b.get("status", "")), esc(b.get("version", "")),
                     esc(b.get("impl", "")), esc(b.get("reason", settings))])
    lines += _table(["backend", "status", "version", "implementation", "settings / reason"], rows)

    env = summary.get("environment", {})
    lines += ["## Environment", "",
              f"Python {esc(env.get('python'))} on {esc(env.get('platform'))}, CPU {esc(env.get('cpu'))} "
              f"({esc(env.get('cpu_count'))} cores). Each backend runs in its own worker process, one thread each.", ""]
    lines += [f"- {esc(k)} {esc(v)}" for k, v in env.get("packages", {}).items()]
    lines += [f"- `{esc(k)}={esc(v)}`" for k, v in env.get("numerics_env", {}).items()] + [""]
    return "\n".join(lines)
