"""Writing a results folder's reports from its records and context: shared by `run`, `merge`
and anything else that produces a results folder, so they all write identical reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from xentcheck.core.records import Result, result_line
from xentcheck.regress import known as known_mod
from xentcheck.run import forked
from xentcheck.run.environment import with_backends


def write_reports(out_dir: Path, records: list[Result], context: dict, known: dict | None = None,
                  alongside: Callable[[list[Result]], None] | None = None) -> dict:
    """Apply known differences (when `known` = {"file", "entries"}), rewriting results.jsonl only
    when verdicts changed, then write every report (xentcheck.reports.write_all) and environment.json.
    `alongside` (it must not raise; its return value is dropped) gets the final records in a forked
    child process (xentcheck.run.forked) while the reports are written.
    Returns the summary."""
    from xentcheck.reports.files import write_atomic
    from xentcheck.reports.write_all import write_all

    out_dir = Path(out_dir)
    context = dict(context)
    if known is not None:
        before = records
        records, info = known_mod.apply(records, known["entries"])
        context["known_differences"] = {"file": known["file"], **info}
        if records != before:
            write_atomic(out_dir / "results.jsonl", "".join(result_line(r) for r in records))
    helper = forked.start(alongside, records) if alongside is not None else None
    try:
        summary = write_all(out_dir, records, context, background_figures=True)
    finally:
        if helper is not None:
            helper()
    env = with_backends(context.get("environment", {}), context.get("backends", []))
    write_atomic(out_dir / "environment.json", json.dumps(env, indent=2, default=str) + "\n")
    return summary
