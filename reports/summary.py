"""summary.json: counts, pass rates per backend x dtype, the worst errors, and the run's context."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from xentcheck.core.metrics import BAD_VERDICTS, VERDICTS
from xentcheck.core.records import Metrics, Result
from xentcheck.problems import OUTPUT_NAMES


def group_key(r: Result) -> tuple[str, str, str, str]:
    return (str(r.backend), r.impl or "", r.mode or "", str(r.dtype))


def pass_rates(records: list[Result]) -> list[dict]:
    groups: dict[tuple, Counter] = defaultdict(Counter)
    for r in records:
        groups[group_key(r)][r.verdict] += 1
    rows = []
    for (backend, impl, mode, dtype), counts in sorted(groups.items()):
        ran = sum(counts.values()) - counts["skipped"]
        rows.append({"backend": backend, "impl": impl, "mode": mode, "dtype": dtype,
                     "total": sum(counts.values()), "ran": ran,
                     **{v: counts[v] for v in VERDICTS},
                     "pass_rate": counts["pass"] / ran if ran else None})
    return rows


def worst(records: list[Result], what: str, metric: str = "rel_err") -> list[dict]:
    """For each backend x impl x mode x dtype, the compared result with the largest error in output `what`."""
    best: dict[tuple, Metrics] = {}
    rec: dict[tuple, Result] = {}
    for r in records:
        m = r.metrics.get(what)
        if not m:
            continue
        key = group_key(r)
        if key not in best or getattr(m, metric) > getattr(best[key], metric):
            best[key], rec[key] = m, r
    return [{"backend": k[0], "impl": k[1], "mode": k[2], "dtype": k[3], "case_id": rec[k].case_id,
             "verdict": rec[k].verdict, "abs_err": m.abs_err, "rel_err": m.rel_err,
             "ulp_err": m.ulp_err, "worst_index": m.worst_index}
            for k, m in sorted(best.items())]


BAD_PROPERTY = frozenset({"fail", "error"})


def property_findings(records: list[Result]) -> list[dict]:
    return [{"case_id": r.case_id, "backend": r.backend, "impl": r.impl or "", "mode": r.mode or "",
             "dtype": r.dtype, "property": name, "verdict": p["verdict"], "detail": p.get("detail", "")}
            for r in records for name, p in (r.properties or {}).items() if p["verdict"] in BAD_PROPERTY]


def property_counts(records: list[Result]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        for name, p in (r.properties or {}).items():
            counts[name][p["verdict"]] += 1
    return {name: dict(c) for name, c in sorted(counts.items())}


def exit_status(records: list[Result]) -> int:
    bad = any(r.verdict in BAD_VERDICTS for r in records) or bool(property_findings(records))
    return 1 if bad else 0


# what build() computes from the records; everything else in a summary is the run's context
DERIVED_KEYS = frozenset({"results", "counts", "exit_status", "pass_rates", "property_counts", "property_findings",
                          "inputs_modified", *(f"worst_{w}" for w in OUTPUT_NAMES)})
ALWAYS = OUTPUT_NAMES[:2]  # worst_loss and worst_grad are in every summary; another output's where a record has it


def build(records: list[Result], context: dict) -> dict:
    counts = Counter(r.verdict for r in records)
    return {
        **context,
        "results": len(records),
        "counts": {v: counts[v] for v in VERDICTS},
        "exit_status": exit_status(records),
        "pass_rates": pass_rates(records),
        **{f"worst_{w}": worst(records, w) for w in ALWAYS},
        "property_counts": property_counts(records),
        "property_findings": len(property_findings(records)),
        "inputs_modified": sorted({(str(r.backend), str(r.case_id)) for r in records if r.inputs_modified}),
        **{f"worst_{w}": worst(records, w) for w in OUTPUT_NAMES[len(ALWAYS):] if any(r.metrics.get(w) for r in records)},
    }


def render(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str) + "\n"
