"""The `xentcheck` command line: run, backends, cases.

Exit status: 0 all within tolerance, 1 discrepancies found, 2 usage error (one line on stderr),
130 interrupted (reports still written for what finished).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness import __version__

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _split(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.UsageError(f"--{what} needs at least one name")
    return items


def _backend_specs(backends: str | None, files: tuple[str, ...], allow_empty: bool = False) -> list[str]:
    """Worker specs: named backends (default: all known unless only files are given), then files."""
    from backends.registry import known_names

    known = known_names()
    specs: list[str] = []
    if allow_empty and backends == "":
        pass
    elif backends is not None:
        for name in _split(backends, "backends"):
            if name not in known:
                raise click.UsageError(f"unknown backend {name!r} (known: {', '.join(known)})")
            if name not in specs:
                specs.append(name)
    elif not files:
        specs = known
    for f in files:
        if not Path(f).is_file():
            raise click.UsageError(f"backend file not found: {f}")
        specs.append("file:" + str(Path(f).resolve()))
    return specs


def _dtypes(value: str | None) -> list[str]:
    from harness.dtypes import DTYPE_NAMES

    if value is None:
        return list(DTYPE_NAMES)
    names = _split(value, "dtypes")
    for n in names:
        if n not in DTYPE_NAMES:
            raise click.UsageError(f"unknown dtype {n!r} (known: {', '.join(DTYPE_NAMES)})")
    return names


def _select_cases(dtype_names: list[str], n_cases: int | None, ids: tuple[str, ...]):
    from harness.cases import Case, default_suite

    if ids:
        try:
            cases = [Case.from_id(i) for i in ids]
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return [c for c in cases if c.dtype in dtype_names]
    cases = default_suite(dtype_names)
    return cases[:n_cases] if n_cases else cases


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xentcheck")
def cli() -> None:
    """Verify softmax cross-entropy loss and gradient across frameworks against a high-precision reference."""


@cli.command()
@click.option("--backends", "backends", metavar="LIST", help="Comma-separated backends (default: every built-in and installed plugin).")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH", help="A Python file defining a Backend (repeatable).")
@click.option("--dtypes", metavar="LIST", help="Comma-separated dtypes: float16,bfloat16,float32,float64 (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the case inputs.")
@click.option("--cases", "n_cases", type=click.IntRange(min=1), help="Run only the first N cases of the suite (they span every family).")
@click.option("--case", "case_ids", multiple=True, metavar="ID", help="Run this case id (repeatable) instead of the suite.")
@click.option("--out", type=click.Path(file_okay=False), default="xentcheck-out", show_default=True, help="Output folder.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Device to run backends on.")
@click.option("--tolerances", "preset", default="xentcheck", show_default=True, type=click.Choice(["xentcheck", "torch", "jax"]), help="Tolerance table: xentcheck (8 u, scale-aware), or the torch/jax published defaults.")
@click.option("--rtol", multiple=True, metavar="SPEC", help="Relative tolerance: VALUE for every dtype or DTYPE=VALUE,... (repeatable).")
@click.option("--atol", multiple=True, metavar="SPEC", help="Absolute tolerance, same forms as --rtol.")
@click.option("--case-timeout", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True, help="Seconds before a hung case is marked timeout.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on a terminal.")
@click.option("--shard", metavar="I/N", help="Run only shard I of N (1-based): cases at positions = I-1 mod N.")
@click.option("--known", "known_file", metavar="FILE", help="Known-differences TOML: matching bad results become 'known' and pass.")
@click.option("--python", "pythons", multiple=True, metavar="LABEL=PYTHON", help="Also run the backends in this interpreter (repeatable); results name them BACKEND@LABEL.")
@click.option("--repro/--no-repro", default=True, show_default=True, help="Write repro/<id>.npz and .py for every failing result.")
def run(backends, backend_files, dtypes, seed, n_cases, case_ids, out, device, preset, rtol, atol, case_timeout,
        progress, shard, known_file, pythons, repro) -> int:
    """Run the cases through each backend and write results.jsonl, summary.json, report.md and results.csv."""
    from harness.environment import fingerprint
    from harness.reference import working_precision
    from harness.runner import RunConfig, Runner
    from harness.tolerances import Tolerances
    from harness import shards
    from harness.rundir import write_reports
    from reports.files import ResultsWriter, read_results

    specs = _backend_specs(backends, backend_files)
    dtype_names = _dtypes(dtypes)
    tol = Tolerances(preset)
    try:
        for spec in rtol:
            tol.override("rtol", spec)
        for spec in atol:
            tol.override("atol", spec)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    cases = _select_cases(dtype_names, n_cases, case_ids)
    if not cases:
        raise click.UsageError("no case matches the given --case and --dtypes")
    regress = regress_options(shard, known_file, pythons, specs)
    case_order = [c.id for c in cases]
    if regress["shard"]:
        cases = shards.select(cases, *regress["shard"])
    specs = regress["specs"]
    out_dir = Path(out)
    try:
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot create output folder {out}: {exc.strerror}") from None

    writer = ResultsWriter(out_dir / "results.jsonl")
    config = RunConfig(backends=specs, cases=cases, seed=seed, device=device, tolerances=tol,
                       case_timeout=case_timeout, log_dir=out_dir / "logs", progress=progress,
                       interpreters=regress["interpreters"])
    runner = Runner(config, writer)
    try:
        finished = runner.run()
    finally:
        writer.close()
    context = {
        "xentcheck_version": __version__,
        "config": {"backends": specs, "dtypes": dtype_names, "seed": seed, "n_cases": len(cases),
                   "device": device, "case_timeout": case_timeout, "case_order": case_order,
                   **({"shard": dict(zip(("index", "count"), regress["shard"]))} if regress["shard"] else {}),
                   **({"interpreters": regress["interpreters"]} if regress["interpreters"] else {})},
        "interrupted": not finished,
        "environment": fingerprint(),
        "backends": [i or {"spec": s, "status": "not started"} for i, s in zip(runner.infos, specs)],
        "tolerances": tol.as_dict(),
        "reference_float64": working_precision("float64"),
    }
    summary = write_reports(out_dir, writer.records, context, regress["known"])
    records = read_results(out_dir / "results.jsonl")
    if repro:
        from harness.repro import write_all
        try:
            write_all(out_dir, records, seed, summary)
        except Exception as exc:  # reproducers are an aid: never lose the run's exit status to them
            click.echo(f"xentcheck: warning: writing repro/ failed: {type(exc).__name__}: {exc}", err=True)
    for stale in (summary.get("known_differences") or {}).get("stale", []):
        click.echo(f"xentcheck: warning: known difference {stale!r} matched no result (stale)", err=True)
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    click.echo(f"{len(records)} results ({counts}); reports in {out_dir}/")
    if not finished:
        click.echo("interrupted: reports cover the results finished so far", err=True)
        return EXIT_INTERRUPTED
    if summary["exit_status"]:
        click.echo(f"discrepancies found: see {out_dir / 'report.md'}")
    return summary["exit_status"]


@cli.command("backends")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH", help="Also describe this plugin file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def backends_cmd(backend_files, as_json) -> int:
    """List backends with availability, versions, dtypes, devices, or why they are unavailable."""
    from harness.runner import describe_backends

    infos = describe_backends(_backend_specs(None, ()) + _backend_specs("", backend_files, allow_empty=True))
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return EXIT_OK
    for i in infos:
        if i.get("status") == "ok":
            click.echo(f"{i['name']:<12} available  {i.get('version', ''):<10} {i.get('impl', '')}; "
                       f"dtypes {','.join(i.get('dtypes', []))}; devices {','.join(i.get('devices', []))}")
        else:
            click.echo(f"{i.get('name', i['spec']):<12} {i.get('status', ''):<10} {i.get('reason', '')}")
    return EXIT_OK


@cli.command("cases")
@click.option("--dtypes", metavar="LIST", help="Comma-separated dtypes (default: all).")
@click.option("--cases", "n_cases", type=click.IntRange(min=1), help="Only the first N cases.")
def cases_cmd(dtypes, n_cases) -> int:
    """List the ids of the default suite's cases."""
    for c in _select_cases(_dtypes(dtypes), n_cases, ()):
        click.echo(c.id)
    return EXIT_OK


from harness.regress_cli import register as _register_regress, regress_options  # noqa: E402

_register_regress(cli)


def main(argv: list[str] | None = None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="xentcheck", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        click.echo(f"xentcheck: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
