"""`--finding RUN_DIR:KIND`: what to bisect, taken from a finding of an earlier run.

KIND is the row number of the Findings table in RUN_DIR/report.md (1 for the first kind), or a
result id as `xentcheck repro` takes it (BACKEND.IMPL.MODE__CASE_ID, BACKEND__CASE_ID, or a case
id that one backend ran). The bisection then runs that finding's first case on its backend and
implementation, in its modes, with the run's seed and tolerances, and a version is bad when the
result has one of the finding's verdicts (or fail, nonfinite).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finding:
    case_id: str
    backend: str  # the worker spec: a built-in name or file:PATH
    impl: str
    modes: list[str]
    verdicts: list[str]
    seed: int
    preset: str
    rtol: list[str]
    atol: list[str]
    case_timeout: float
    what: str  # the finding in words, for the report


def parse(value: str) -> Finding:
    """ValueError (one line) when the folder, the run or the finding cannot be used."""
    from xentcheck.core.metrics import BAD_VERDICTS
    from xentcheck.regress import repro
    from xentcheck.reports import kinds
    from xentcheck.reports.files import read_results, read_summary
    from xentcheck.run import plan as runplan

    folder_text, sep, kind = value.rpartition(":")
    if not sep or not folder_text or not kind:
        raise ValueError(f"--finding {value!r}: give RUN_DIR:KIND (KIND: a row of report.md's Findings table, or a result id)")
    folder = Path(folder_text)
    if not (folder / "results.jsonl").is_file() or not (folder / "summary.json").is_file():
        raise ValueError(f"--finding: {folder} is not a results folder (no results.jsonl and summary.json)")
    records, summary = read_results(folder / "results.jsonl"), read_summary(folder / "summary.json")
    run = runplan.load(folder)
    if kind.isdigit():
        groups = kinds.group(records)
        if not 1 <= int(kind) <= len(groups):
            raise ValueError(f"--finding {value}: the run has {len(groups)} kinds of findings (1 to {len(groups)})")
        g = groups[int(kind) - 1]
        backend, impl, case_id, modes, verdicts = g["backend"], g["impl"], g["cases"][0], g["modes"], g["verdicts"]
        what = f"{g['backend']} {g['impl']}: {g['kind']} ({g['results']} results)"
    else:
        try:
            r = repro.find(records, kind)
        except LookupError as exc:
            raise ValueError(f"--finding {value}: {exc}") from None
        if r.verdict not in BAD_VERDICTS:
            raise ValueError(f"--finding {value}: that result is {r.verdict}, not a finding")
        backend, impl, case_id = str(r.backend), r.impl or "", str(r.case_id)
        modes, verdicts = [r.mode or ""], [str(r.verdict)]
        what = f"{repro.result_id(r)}: {r.verdict}"
    spec = repro.specs_by_name(summary).get(backend, backend)
    base, at, label = spec.rpartition("@")
    if at and label in (summary.get("config", {}).get("interpreters") or {}):
        spec = base  # ran in another interpreter: bisect runs it in its own environments
    return Finding(case_id=case_id, backend=spec, impl=impl, modes=[m for m in modes if m], verdicts=list(verdicts),
                   seed=run.seed, preset=run.preset, rtol=run.rtol, atol=run.atol, case_timeout=run.case_timeout,
                   what=what)
