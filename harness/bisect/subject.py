"""What bisect runs in each environment, how, and the version's verdict.

The cases run as `xentcheck run --python bisect=ENV/bin/python` runs them: the backend's worker
starts in the environment's interpreter on this xentcheck's code (run/launch.py), the parent
computes the reference and judges each result with the run's own evaluation
(xentcheck.core.evaluate). Each version's folder holds results.jsonl, summary.json and logs/, so
`xentcheck compare` works between any two of them (the backend is named BACKEND@bisect in all).

A version is bad when a result has a bad verdict (fail or nonfinite; also the verdicts of the
finding being bisected), good when every result passes (or is widened), and a skip otherwise
(the backend does not load there, a result is an error...), with the reason. With a metric rule
(--metric), the error's size decides instead, by `xentcheck compare`'s rule against the good
version: bad when the loss's or the gradient's error grew more than `factor` while above `floor`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xentcheck.core.records import Result
    from xentcheck.run.plan import RunPlan

LABEL = "bisect"  # the --python label: results are named BACKEND@bisect in every version's folder
OK_VERDICTS = ("pass", "widened")


@dataclass(frozen=True)
class MetricRule:
    metric: str = "ulp_err"  # ulp_err, rel_err or abs_err, as `xentcheck compare`
    factor: float = 2.0
    floor: float = 1.0


@dataclass
class Outcome:
    verdict: str  # "good", "bad" or "skip"
    reason: str = ""
    # each declared output of the cases' kinds (problems.outputs_of): the worst error in the metric
    errors: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # results per verdict


def version_plan(template: RunPlan, python: str) -> RunPlan:
    """The template's cases and backends, the backends running in `python`."""
    return dataclasses.replace(template, backends=[f"{b}@{LABEL}" for b in template.backends],
                               interpreters={LABEL: python}, case_order=[c.id for c in template.cases])


def run_version(template: RunPlan, python: str, folder: Path) -> tuple[list[Result], bool]:
    """Run the plan's cases in `python`, writing folder/results.jsonl, summary.json and logs/;
    (the results, whether the run finished: False after Ctrl-C)."""
    from xentcheck.reports.files import write_atomic
    from xentcheck.run.execute import execute, start_folder

    plan = version_plan(template, python)
    start_folder(folder, plan)
    done = execute(plan, folder, progress=False, reports=False)
    write_atomic(folder / "summary.json", json.dumps(done.summary, indent=1, default=str) + "\n")
    return done.records, done.finished


def errors(records: list[Result], metric: str, outputs: Sequence[str]) -> dict[str, float | None]:
    """The worst `metric` of each output (by name) over the results (inf where a result is
    nonfinite without a finite measure; None where no result has one)."""
    out: dict[str, float | None] = {}
    for what in outputs:
        values = []
        for r in records:
            m = r.metrics.get(what)
            value = None if m is None else getattr(m, metric)
            if value is None and r.verdict == "nonfinite":
                value = math.inf
            if value is not None:
                values.append(float(value))
        out[what] = max(values) if values else None
    return out


def _first_reason(records: list[Result], verdicts: tuple[str, ...] | None = None) -> str:
    for r in records:
        if verdicts is None or r.verdict in verdicts:
            reasons = r.reasons or []
            return f"{r.verdict}: {reasons[0]}" if reasons else str(r.verdict)
    return ""


def judge(records: list[Result], bad_verdicts: tuple[str, ...], outputs: Sequence[str], rule: MetricRule | None = None,
          good_errors: dict[str, float | None] | None = None) -> Outcome:
    """A version's verdict from its results, their `outputs` (names: problems.outputs_of the
    cases) measured. `good_errors` is the good version's (for `rule`; None while the good version
    itself is judged)."""
    metric = rule.metric if rule else "ulp_err"
    outcome = Outcome("skip", errors=errors(records, metric, outputs),
                      counts=dict(Counter(str(r.verdict) for r in records)))
    if not records:
        outcome.reason = "no result: no selected implementation ran the cases"
        return outcome
    if rule is None:
        if any(r.verdict in bad_verdicts for r in records):
            outcome.verdict, outcome.reason = "bad", _first_reason(records, bad_verdicts)
        elif all(r.verdict in OK_VERDICTS for r in records):
            outcome.verdict = "good"
        else:
            outcome.reason = _first_reason([r for r in records if r.verdict not in OK_VERDICTS])
        return outcome
    measured = {w: e for w, e in outcome.errors.items() if e is not None}
    if not measured or any(r.verdict not in (*OK_VERDICTS, "fail", "nonfinite") for r in records):
        outcome.reason = _first_reason([r for r in records if r.verdict not in (*OK_VERDICTS, "fail", "nonfinite")]) \
            or f"no {rule.metric} measured"
        return outcome
    if good_errors is None:
        outcome.verdict = "good"
        return outcome
    grown = []
    for what, e in measured.items():
        base = good_errors.get(what)
        if base is None:
            continue
        ratio = e / base if base > 0 else (math.inf if e > 0 else 1.0)
        if ratio > rule.factor and e > rule.floor:
            grown.append(f"{what} {rule.metric} {e:.4g} is {ratio:.3g} x the good version's {base:.4g}")
    outcome.verdict = "bad" if grown else "good"
    outcome.reason = "; ".join(grown)
    return outcome
