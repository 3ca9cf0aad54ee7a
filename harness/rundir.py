"""Writing a results folder's reports from its records and context: shared by `run`, `merge`
and anything else that produces a results folder, so they all write identical reports."""

from __future__ import annotations

import json
from pathlib import Path

from harness import known as known_mod
from harness.environment import with_backends


def write_reports(out_dir: Path, records: list[dict], context: dict, known: dict | None = None) -> dict:
    """Apply known differences (when `known` = {"file", "entries"}), then write results.jsonl
    (rewritten only when verdicts changed), summary.json, report.md, results.csv and
    environment.json. Returns the summary."""
    from reports import csv as csv_report, known_md, markdown, summary as summary_report
    from reports.files import write_atomic

    out_dir = Path(out_dir)
    context = dict(context)
    if known is not None:
        before = records
        records, info = known_mod.apply(records, known["entries"])
        context["known_differences"] = {"file": known["file"], **info}
        if records != before:
            write_atomic(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    summary = summary_report.build(records, context)
    write_atomic(out_dir / "summary.json", summary_report.render(summary))
    write_atomic(out_dir / "report.md", markdown.render(summary, records) + "\n" + known_md.render(summary, records))
    write_atomic(out_dir / "results.csv", csv_report.render(records))
    env = with_backends(context.get("environment", {}), context.get("backends", []))
    write_atomic(out_dir / "environment.json", json.dumps(env, indent=2, default=str) + "\n")
    return summary
