"""report.md sections for known differences (results accepted by the known-differences file,
and stale entries) and for shards; appended after the main report."""

from __future__ import annotations

from dataclasses import replace

from xentcheck.core.records import Result
from xentcheck.reports.markdown import MAX_FINDINGS, _table, esc


def render(summary: dict, records: list[Result]) -> str:
    lines: list[str] = []
    kd = summary.get("known_differences")
    if kd:
        known = [r for r in records if r.verdict == "known"]
        lines += ["## Known differences", "",
                  f"{len(known)} results match an entry of `{esc(kd.get('file', ''))}` "
                  f"({len(kd['entries'])} entries): accepted, documented behaviour; they do not fail the run.", ""]
        if known:
            rows = [[f"`{esc(r.case_id)}`", esc(r.backend), esc(r.original_verdict), esc((r.known or {})["id"]),
                     esc((r.known or {})["link"])] for r in known[:MAX_FINDINGS]]
            lines += _table(["case", "backend", "verdict", "entry", "upstream"], rows)
        if kd["stale"]:
            lines += ["### Stale entries", "",
                      "These entries matched no result of this run: the behaviour changed (fixed upstream?) or "
                      "the entry's fields are wrong. Review them.", ""]
            by_id = {e["id"]: e for e in kd["entries"]}
            lines += [f"- `{esc(i)}`: {esc(by_id[i]['reason'])}" for i in kd["stale"]] + [""]
    lines += _interpreters(summary, records)
    shard = summary.get("config", {}).get("shard")
    if shard:
        lines += ["## Shard", "", f"Shard {shard['index']} of {shard['count']}: a part of the suite; "
                  "combine the shards' folders with `xentcheck merge`.", ""]
    merged = summary.get("merged_from")
    if merged:
        lines += ["## Merged", "", f"Merged from {len(merged)} shard folders: "
                  + ", ".join(f"`{esc(m)}`" for m in merged) + ".", ""]
    return "\n".join(lines)


def _interpreters(summary: dict, records: list[Result]) -> list[str]:
    """With --python: each other interpreter's results against this one's, result by result."""
    from xentcheck.reports.compare_runs import compare_runs

    labels = summary.get("config", {}).get("interpreters") or {}
    lines: list[str] = []
    base = [r for r in records if "@" not in str(r.backend)]
    for label, python in labels.items():
        suffix = f"@{label}"
        other = [replace(r, backend=str(r.backend)[:-len(suffix)]) for r in records if str(r.backend).endswith(suffix)]
        c = compare_runs(base, other)
        versions = sorted({f"{r.backend} {r.backend_version}" for r in records
                           if str(r.backend).endswith(suffix) and r.backend_version})
        lines += [f"## Interpreter {esc(label)} against this one", "",
                  f"`{esc(python)}` ({esc(', '.join(versions) or 'no version reported')}): {c['matched']} results "
                  f"matched; {len(c['regressions'])} worse there, {len(c['improvements'])} better there, "
                  f"{len(c['changed'])} failing differently (`xentcheck compare` rules, factor {c['factor']:g}).", ""]
        rows = [[f"`{esc(it['key'][0])}`", esc(it["key"][1]), title, esc(
                    f"{it['output']} {it['metric']} {it['base']:.3g} -> {it['new']:.3g}" if it["kind"] == "error"
                    else f"{it['base_verdict']} -> {it['new_verdict']}")]
                for title, items in (("worse", c["regressions"]), ("better", c["improvements"]),
                                     ("different", c["changed"])) for it in items]
        if rows:
            lines += _table(["case", "backend", f"{esc(label)} is", "here -> there"], rows[:MAX_FINDINGS])
    return lines
