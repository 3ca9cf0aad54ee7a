"""Carrying out a RunPlan: the backends' workers (Runner), results.jsonl, and every report.

Shared by `xentcheck run` (which prints the outcome and turns it into an exit status) and the
Python API (`xentcheck.verify`, which returns it), so both run the very same workers and write
the very same reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xentcheck.core.records import Result
from xentcheck.run.executor import LOCAL, Executor
from xentcheck.run.plan import RunPlan


@dataclass
class Execution:
    records: list[Result]  # every result, in the canonical order (known differences applied)
    summary: dict  # summary.json's content (xentcheck.reports.summary.build)
    finished: bool  # False when interrupted (Ctrl-C): the records cover what finished


def _ignore(message: str) -> None:
    pass


def start_folder(out_dir: Path, plan: RunPlan) -> None:
    """Make out_dir/logs, drop an earlier run's worker logs (a crash's stderr tail must be this
    run's) and store the plan as run.json, before any work starts. OSError when it cannot."""
    from xentcheck.run import plan as runplan

    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "logs").glob("worker-*.log"):
        old.unlink()
    runplan.save(plan, out_dir)


def execute(plan: RunPlan, out_dir: Path, prior: Sequence[Result] = (), progress: bool = True, repro: bool = True,
            reports: bool = True, warn: Callable[[str], None] = _ignore, executor: Executor = LOCAL) -> Execution:
    """Run `plan`'s cases through its backends' workers, appending to out_dir/results.jsonl (after
    `prior`, a resumed run's results) with the workers' logs in out_dir/logs, then write every
    report and repro/ into out_dir (with `reports`; else only the summary is computed). Problems
    that must not cost the run its outcome (repro/ failing, a stale known difference) go to `warn`.
    A malformed known-differences file is a ValueError. `executor` says where the workers run
    (xentcheck.run.executor: this machine, or a Ray cluster; ValueError when it cannot connect)."""
    from xentcheck import __version__
    from xentcheck.core.dtypes import working_precision
    from xentcheck.regress import known as known_mod
    from xentcheck.reports import summary as summary_report
    from xentcheck.reports.files import ResultsWriter
    from xentcheck.run import resume as resuming
    from xentcheck.run.environment import fingerprint
    from xentcheck.run.rundir import write_reports
    from xentcheck.run.runner import Runner, RunOptions

    tol = plan.tolerances
    known: dict[str, Any] | None = None
    if plan.known_file:  # read before any work: the runner judges results with it as they come
        known = {"file": plan.known_file, "entries": known_mod.load(plan.known_file)}
    workers = executor.workers(plan.device)
    writer = ResultsWriter(out_dir / "results.jsonl", append=bool(prior))
    runner = Runner(plan, writer, list(prior), RunOptions(log_dir=out_dir / "logs", progress=progress, workers=workers,
                                                          compile_cache=executor.kind == "local"))
    try:
        finished = runner.run()
    finally:
        writer.close()
    records = runner.records
    if finished and prior:  # prior and new results, in the canonical order of an uninterrupted run
        resuming.rewrite_results(out_dir, records)
    context = {
        "xentcheck_version": __version__,
        "config": {"backends": plan.backends, "dtypes": plan.dtypes, "seed": plan.seed, "n_cases": len(plan.cases),
                   "device": plan.device, "case_timeout": plan.case_timeout, "worker_memory": plan.worker_memory,
                   "suite": plan.suite,
                   "impls": plan.impls, "modes": plan.modes, "properties": plan.properties,
                   "case_order": plan.case_order or [c.id for c in plan.cases],
                   **({"shard": dict(zip(("index", "count"), plan.shard))} if plan.shard else {}),
                   **({"interpreters": plan.interpreters} if plan.interpreters else {})},
        "interrupted": not finished,
        "environment": {**fingerprint(), **executor.describe()},
        "backends": [i or {"spec": s, "status": "not started"} for i, s in zip(runner.infos, plan.backends)],
        "tolerances": tol.as_dict(),
        "reference_float64": working_precision("float64"),
    }

    if not reports:
        if known is not None:
            records, info = known_mod.apply(records, known["entries"])
            context["known_differences"] = {"file": known["file"], **info}
        return Execution(records, summary_report.build(records, context), finished)

    def repros(final: list[Result]) -> None:
        """repro/ for the bad results (known differences applied), while the reports are drawn."""
        from xentcheck.regress.repro import write_all as write_repros
        try:
            write_repros(out_dir, final, plan.seed, context)  # it reads the context's config and backends
        except Exception as exc:  # reproducers are an aid: never lose the run's exit status to them
            warn(f"writing repro/ failed: {type(exc).__name__}: {exc}")

    summary = write_reports(out_dir, records, context, known, alongside=repros if finished and repro else None)
    for stale in (summary.get("known_differences") or {}).get("stale", []):
        warn(f"known difference {stale!r} matched no result (stale)")
    if known is not None:  # write_reports applied them: the records as results.jsonl now holds them
        records = known_mod.apply(records, known["entries"])[0]
    return Execution(records, summary, finished)
