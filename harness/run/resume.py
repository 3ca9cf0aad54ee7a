"""Picking up an interrupted run: the results it already has, and a clean file to append to.

A run killed hard (SIGKILL, power loss) may leave a torn last line in results.jsonl; it is
dropped, and the file is rewritten without it so that new results append cleanly.
"""

from __future__ import annotations

from pathlib import Path

from xentcheck.core.records import Result, result_line
from xentcheck.reports.files import read_results, write_atomic
from xentcheck.run.plan import RunPlan

RESULTS_FILE = "results.jsonl"


def prior_results(folder: Path, plan: RunPlan) -> list[Result]:
    """The results already in `folder`; ValueError when the file is unreadable or does not
    belong to `plan` (a result for a case the plan does not have)."""
    path = Path(folder) / RESULTS_FILE
    if not path.exists():
        return []  # killed before the first result
    records = read_results(path)  # ResultsFileError (a ValueError) names the line that is wrong
    case_ids = {c.id for c in plan.cases}
    for n, r in enumerate(records, 1):
        if not isinstance(r.case_id, str) or r.case_id not in case_ids:
            raise ValueError(f"{path}: result {n} is for case {r.case_id!r}, which this run does not have")
    return records


def render_results(records: list[Result]) -> str:
    """results.jsonl text: one JSON object a line, exactly as ResultsWriter writes them."""
    return "".join(result_line(r) for r in records)


def rewrite_results(folder: Path, records: list[Result]) -> None:
    write_atomic(Path(folder) / RESULTS_FILE, render_results(records))
