"""Every report of a results folder from its records and the run's context, for `run` and `report`."""

from __future__ import annotations

import json
from pathlib import Path

from xentcheck.core.records import Result
from xentcheck.reports import blame, html, junit, known_md, markdown, parquet, plots, timing_report, tolerance_report
from xentcheck.reports import csv as csv_report
from xentcheck.reports import summary as summary_report
from xentcheck.reports.files import write_atomic
from xentcheck.run import forked

# keys of summary.json that summary.build derives from the records; the rest is the run's context
FILES = ("summary.json", "report.md", "results.csv", "report.html", "junit.xml", "tolerance.md", "tolerance.json",
         "discrepancy.json", "results.parquet")


def context_of(summary: dict) -> dict:
    """The run's context (config, environment, backends, tolerances...) from a summary.json."""
    return {k: v for k, v in summary.items() if k not in summary_report.DERIVED_KEYS}


def write_all(out_dir: Path, records: list[Result], context: dict, background_figures: bool = False) -> dict:
    """Write every report into `out_dir`; returns the summary. With `background_figures`, the
    HTML report's figures are drawn in a forked child (xentcheck.run.forked) while the other files are
    written (the caller must have no other thread running)."""
    out_dir = Path(out_dir)
    matrix = blame.build(records)
    figures = forked.start(plots.figures, records, matrix) if background_figures else None
    summary = summary_report.build(records, context)
    tol_report = tolerance_report.build(records)
    write_atomic(out_dir / "summary.json", summary_report.render(summary))
    extra = known_md.render(summary, records)  # known differences, other interpreters, shards
    write_atomic(out_dir / "report.md", markdown.render(summary, records) + ("\n" + extra if extra else ""))
    write_atomic(out_dir / "results.csv", csv_report.render(records))
    write_atomic(out_dir / "junit.xml", junit.render(records, summary))
    write_atomic(out_dir / "tolerance.json", tolerance_report.render_json(tol_report))
    write_atomic(out_dir / "discrepancy.json", json.dumps(matrix, indent=2) + "\n")
    write_atomic(out_dir / "tolerance.md", tolerance_report.render_md(tol_report))
    write_atomic(out_dir / "report.html", html.render(summary, records, tol_report, matrix, timing_report.load(out_dir),
                                                      figures=figures() if figures else None))
    if records:
        parquet.write(records, out_dir / "results.parquet")
    return summary
