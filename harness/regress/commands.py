"""Regression-hunting commands (compare, merge, repro) and the `run` options behind them
(--shard, --known, --python); registered on the main click group by xentcheck.cli."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from xentcheck.cli_outdir import overwrite_option, replace_output


def regress_options(shard: str | None, known_file: str | None, pythons: tuple[str, ...],
                    specs: list[str]) -> dict:
    """Validate run's --shard, --known and --python (usage errors exit 2) and expand the specs."""
    from xentcheck.regress import known, shards
    from xentcheck.run import interpreters

    out: dict = {"shard": None, "known": None, "interpreters": {}, "specs": specs}
    try:
        if shard is not None:
            out["shard"] = shards.parse(shard)
        if known_file is not None:
            out["known"] = {"file": str(known_file), "entries": known.load(known_file)}
        out["interpreters"] = interpreters.parse(pythons)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    out["specs"] = interpreters.expand(specs, out["interpreters"])
    return out


def _results_dir(path: str) -> Path:
    p = Path(path)
    if not (p / "results.jsonl").is_file() or not (p / "summary.json").is_file():
        raise click.UsageError(f"{path} is not a results folder (no results.jsonl and summary.json)")
    return p


@click.command("compare")
@click.argument("base")
@click.argument("new")
@click.option("--factor", type=click.FloatRange(min=1, min_open=True), default=2.0, show_default=True,
              help="Error growth (new / base) above which a result passing on both sides is a regression.")
@click.option("--metric", type=click.Choice(["ulp_err", "rel_err", "abs_err"]), default="ulp_err", show_default=True,
              help="Error measure for --factor (loss and gradient separately).")
@click.option("--floor", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Ignore growth while the larger error is at most this (in the metric's unit).")
@click.option("--json", "json_out", metavar="FILE", help="Also write the comparison as JSON.")
@click.option("--markdown", "md_out", metavar="FILE", help="Write the Markdown report here instead of stdout.")
def compare_cmd(base, new, factor, metric, floor, json_out, md_out) -> int:
    """Compare two results folders: regressions, improvements, new/missing results, environments.

    Exit status 1 when there is any regression."""
    from xentcheck.reports.compare_runs import build, render_markdown
    from xentcheck.reports.files import write_atomic

    try:
        result = build(_results_dir(base), _results_dir(new), factor, metric, floor)
    except ValueError as exc:  # a broken results.jsonl or summary.json: one line, exit 2
        raise click.UsageError(str(exc)) from None
    for warning in result["warnings"]:
        click.echo(f"xentcheck: warning: {warning}", err=True)
    md = render_markdown(result)
    if json_out:
        write_atomic(Path(json_out), json.dumps(result, indent=2, default=str) + "\n")
    if md_out:
        write_atomic(Path(md_out), md + "\n")
        click.echo(f"{len(result['regressions'])} regressions, {len(result['improvements'])} improvements, "
                   f"{len(result['new'])} new, {len(result['missing'])} missing; report in {md_out}")
    else:
        click.echo(md)
    return result["exit_status"]


@click.command("merge")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("folders", nargs=-1, required=True)
@overwrite_option
def merge_cmd(out, folders, overwrite) -> int:
    """Merge shard folders (from `run --shard I/N`) into OUT, with the reports of an unsharded run."""
    from xentcheck.regress.shards import MergeError, merge
    from xentcheck.run import outdir
    from xentcheck.run.rundir import write_reports

    dirs = [_results_dir(f) for f in folders]
    try:
        records, context, known = merge(dirs)
    except MergeError as exc:
        raise click.UsageError(str(exc)) from None
    out_dir = Path(out)
    if out_dir.resolve() in [d.resolve() for d in dirs]:
        raise click.UsageError("OUT must be a new folder, not one of the shards")
    try:
        held = outdir.check(out_dir, "merge", overwrite, "OUT")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        replace_output(held)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
    from xentcheck.core.records import result_line
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as f:
        f.writelines(result_line(r) for r in records)
    summary = write_reports(out_dir, records, context, known)
    for stale in (summary.get("known_differences") or {}).get("stale", []):
        click.echo(f"xentcheck: warning: known difference {stale!r} matched no result (stale)", err=True)
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    click.echo(f"merged {len(dirs)} folders: {len(records)} results ({counts}); reports in {out_dir}/")
    return summary["exit_status"]


@click.command("repro")
@click.argument("result_id")
@click.option("--from", "from_dir", required=True, metavar="DIR", help="The results folder the result comes from.")
@click.option("--shrink", is_flag=True, help="Reduce N, K and the spread of values while the discrepancy persists.")
@click.option("--max-steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Most candidate cases --shrink tries.")
def repro_cmd(result_id, from_dir, shrink, max_steps) -> int:
    """Re-run one result (RESULT_ID: BACKEND__CASE_ID as in repro/, or a case id when one backend
    ran it) in this process, write repro/<id>.npz and .py, and with --shrink the smallest case
    that still shows the discrepancy. Exit 1 when the discrepancy reproduces."""
    from xentcheck.regress import repro
    from xentcheck.reports.files import read_results, read_summary

    folder = _results_dir(from_dir)
    try:
        records = read_results(folder / "results.jsonl")
        summary = read_summary(folder / "summary.json")
        record = repro.find(records, result_id)
    except (ValueError, LookupError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        spec = repro.spec_for(record, summary)
    except LookupError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        outcome = repro.rerun(record, spec, summary)
    except repro.ReproError as exc:
        raise click.ClickException(str(exc)) from None
    # both judged by xentcheck.core.evaluate, with the run's tolerances and known differences
    click.echo(f"{repro.result_id(record)}: {outcome['verdict']} (recorded: {record.verdict})")
    for line in outcome["reasons"]:
        click.echo(f"  {line}")
    if outcome.get("known"):
        click.echo(f"  known difference {outcome['known']['id']} ({outcome['original_verdict']}): {outcome['known']['link']}")
    numerics = repro.numerics_of(summary, record)
    paths = repro.write(folder / "repro", record, outcome["inputs"], outcome["case"], outcome["ref"], spec=spec,
                        numerics=numerics)
    click.echo(f"wrote {paths[0]} and {paths[1]}")
    if shrink and outcome["verdict"] in repro.BAD:
        small = repro.shrink(outcome, spec, summary, max_steps=max_steps,
                             log=lambda msg: click.echo(f"  shrink: {msg}", err=True))
        paths = repro.write(folder / "repro", record, small["inputs"], small["case"], small["ref"],
                            suffix="-shrunk", spec=spec, numerics=numerics)
        note = f", {small['note']}" if small["note"] else ""
        click.echo(f"smallest: {repro.dims(small['case'])}, verdict {small['verdict']}{note}; "
                   f"wrote {paths[0]} and {paths[1]}")
        for line in small["reasons"]:
            click.echo(f"  {line}")
    return 1 if outcome["verdict"] in repro.BAD else 0


def register(group: click.Group) -> None:
    for cmd in (compare_cmd, merge_cmd, repro_cmd):
        group.add_command(cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use python -m xentcheck")
