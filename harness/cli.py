"""The `xentcheck` command line: run, report, bench, backends, cases.

Exit status: 0 all within tolerance, 1 discrepancies found, 2 usage error (one line on stderr),
130 interrupted (reports still written for what finished).

`run` stores its configuration as run.json in the output folder before any work starts and
appends each result to results.jsonl as it completes; `run --resume DIR` finishes an interrupted
run (Ctrl-C, SIGKILL, power loss) with that configuration, running only what is missing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xentcheck import __version__
from xentcheck.cli_executor import connect_executor, executor_options, worker_memory_option
from xentcheck.cli_outdir import overwrite_option
from xentcheck.cli_outdir import replace_output as _replace
from xentcheck.cli_usage import refuse_given
from xentcheck.cli_usage import usage as _usage

if TYPE_CHECKING:
    from xentcheck.core.records import Result

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130




# options that define what a run computes (--resume takes them all from the folder's run.json) or where
# it starts afresh: none of them goes with --resume
PLAN_OPTIONS = ("backends", "backend_files", "dtypes", "seed", "n_cases", "case_ids", "out", "device", "preset",
                "rtol", "atol", "suite", "impls", "modes", "properties", "shard", "known_file", "pythons",
                "input_files", "overwrite")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xentcheck")
def cli() -> None:
    """Verify softmax cross-entropy loss and gradient across frameworks against a high-precision reference."""


@cli.command()
@click.option("--backends", "backends", metavar="LIST",
              help="Comma-separated backends (default: every built-in and installed plugin).")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH",
              help="A Python file defining a Backend; PATH::NAME picks the file's Backend NAME (repeatable).")
@click.option("--dtypes", metavar="LIST", help="Comma-separated dtypes: float16,bfloat16,float32,float64 (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the case inputs.")
@click.option("--cases", "n_cases", type=click.IntRange(min=1),
              help="Run only the first N cases of the suite (they span every family).")
@click.option("--case", "case_ids", multiple=True, metavar="ID", help="Run this case id (repeatable) instead of the suite.")
@click.option("--inputs", "input_files", multiple=True, metavar="FILE",
              help="Verify your own logits and labels (.npz, .safetensors or torch .pt; repeatable): alone, only "
                   "these; with --cases/--case, after those (README: Your own batch).")
@click.option("--out", type=click.Path(file_okay=False), default="xentcheck-out", show_default=True, help="Output folder.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Device to run backends on.")
@click.option("--tolerances", "--tolerance", "preset", default="xentcheck", show_default=True,
              type=click.Choice(["xentcheck", "model", "torch", "jax", "tensorflow"]),
              help="Tolerance: xentcheck (8 u, scale-aware), model (error-model bound, docs/tolerance-model.md), or the "
                   "torch/jax/tensorflow published defaults.")
@click.option("--rtol", multiple=True, metavar="SPEC",
              help="Relative tolerance: VALUE for every dtype or DTYPE=VALUE,... (repeatable).")
@click.option("--atol", multiple=True, metavar="SPEC", help="Absolute tolerance, same forms as --rtol.")
@click.option("--case-timeout", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="Seconds before a hung case is marked timeout.")
@click.option("--suite", type=click.Choice(["default", "full"]), default="default", show_default=True,
              help="default: each backend's main APIs, eagerly; full: every implementation and mode, with the property checks.")
@click.option("--impls", metavar="LIST",
              help="Only these implementations (`xentcheck backends --json` lists them), e.g. softmax_ce,keras_cce.")
@click.option("--modes", metavar="LIST", help="Only these modes: eager, function, xla, jit, compile (compile is opt-in).")
@click.option("--properties/--no-properties", default=None,
              help="Check the properties beyond the reference (default: on for --suite full).")
@click.option("--resume", metavar="DIR", help="Finish the interrupted run in DIR with its stored configuration (run.json), "
              "skipping the results it already has. Only --case-timeout, --worker-memory, --progress and "
              "--executor/--ray-address may be given with it.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on a terminal.")
@click.option("--shard", metavar="I/N", help="Run only shard I of N (1-based): cases at positions = I-1 mod N.")
@click.option("--known", "known_file", metavar="FILE",
              help="Known-differences TOML: matching bad results become 'known' and pass.")
@click.option("--python", "pythons", multiple=True, metavar="LABEL=PYTHON",
              help="Also run the backends in this interpreter (repeatable); results name them BACKEND@LABEL.")
@click.option("--repro/--no-repro", default=True, show_default=True,
              help="Write repro/<id>.npz and .py for every failing result.")
@click.option("--timing", is_flag=True, help="After the run, time the run's own shapes and dtypes as `xentcheck bench` does: "
              "plain and linear CE cases, each kind at its own shapes (one backend at a time, 1 thread; several "
              "seconds per shape, dtype and implementation).")
@overwrite_option
@worker_memory_option
@executor_options
def run(backends, backend_files, dtypes, seed, n_cases, case_ids, input_files, out, device, preset, rtol, atol,
        case_timeout, suite, impls, modes, properties, resume, progress, shard, known_file, pythons, repro, timing,
        overwrite, worker_memory="auto", executor="local", ray_address=None) -> int:
    """Run the cases through each backend and write results.jsonl and every report (report.html, report.md,
    junit.xml, tolerance.md/.json, summary.json, results.csv, results.parquet)."""
    from xentcheck.run import memory, outdir
    from xentcheck.run import plan as runplan
    from xentcheck.run import resume as resuming
    from xentcheck.run.execute import start_folder

    ctx = click.get_current_context()
    if resume is not None:
        if not resume.strip():
            raise click.UsageError("--resume needs the folder of the run to finish")
        refuse_given(ctx, PLAN_OPTIONS, f"--resume reuses the configuration stored in {resume}")
        plan = _usage(runplan.load, Path(resume))
        if ctx.get_parameter_source("case_timeout") == click.core.ParameterSource.COMMANDLINE:
            plan.case_timeout = _usage(runplan.check_timeout, case_timeout)
        if ctx.get_parameter_source("worker_memory") == click.core.ParameterSource.COMMANDLINE:
            plan.worker_memory = _usage(memory.parse, worker_memory)
        out_dir = Path(resume)
        prior = _usage(resuming.prior_results, out_dir, plan)
    else:
        plan = _usage(runplan.plan_from_options, backends, backend_files, dtypes, seed, n_cases, case_ids, device,
                      preset, rtol, atol, case_timeout, suite, impls, modes, properties, input_files, worker_memory)
        regress = regress_options(shard, known_file, pythons, plan.backends)
        plan.case_order = [c.id for c in plan.cases]
        if regress["shard"]:
            from xentcheck.regress import shards
            plan.shard = list(regress["shard"])
            plan.cases = shards.select(plan.cases, *regress["shard"])
        plan.backends, plan.interpreters = regress["specs"], regress["interpreters"]
        plan.known_file = known_file
        out_dir = Path(out)
        prior = None
        held = _usage(outdir.check, out_dir, "run", overwrite)
    where = connect_executor(executor, ray_address, plan.device)  # before the folder is touched
    try:
        if prior is None:
            _replace(held)
            start_folder(out_dir, plan)
        else:
            (out_dir / "logs").mkdir(parents=True, exist_ok=True)
            resuming.rewrite_results(out_dir, prior)  # without a torn last line, appended to below
    except OSError as exc:
        raise click.UsageError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
    status = _execute(plan, out_dir, prior or [], progress, repro, where)
    if timing and status != EXIT_INTERRUPTED:
        _time_run_shapes(plan, out_dir, progress)
    return status


def _time_run_shapes(plan, out_dir: Path, progress: bool) -> None:
    """`run --timing`: bench each timed kind (a record with `timing`) at the run's own shapes and
    dtypes; cases of other kinds are not timed, and the message says so."""
    from xentcheck.problems import PROBLEMS, problem_of
    from xentcheck.timing import bench
    shapes: dict[str, set[tuple[int, ...]]] = {}
    untimed: set[str] = set()
    for c in plan.cases:
        problem = problem_of(c)
        shape = problem.timing.shape_of(c) if problem.timing else None
        if shape:
            shapes.setdefault(problem.kind, set()).add(shape)
        elif problem.timing is None:
            untimed.add(problem.title)
    if untimed:
        click.echo(f"--timing: {', '.join(sorted(untimed))} cases are not timed (bench times "
                   f"{', '.join(p.title for p in PROBLEMS.values() if p.timing)})")
    if not shapes:
        click.echo("--timing: no case of the run has a shape to time")
        return
    config = bench.BenchConfig(backends=plan.backends, dtypes=sorted({c.dtype for c in plan.cases}),
                               shapes={kind: sorted(s, key=math.prod) for kind, s in shapes.items()},
                               impls=plan.impls, modes=plan.modes, device=plan.device, log_dir=out_dir / "logs",
                               progress=progress, worker_memory=plan.worker_memory)
    _write_timing(out_dir, bench.run_bench(config))
    click.echo(f"timings in {out_dir / 'timing.md'}")


def _execute(plan, out_dir: Path, prior: list[Result], progress: bool, repro: bool = True, executor=None) -> int:
    from xentcheck.regress.known import KnownFileError
    from xentcheck.run.execute import execute
    from xentcheck.run.executor import LOCAL

    try:
        done = execute(plan, out_dir, prior, progress, repro,
                       warn=lambda message: click.echo(f"xentcheck: warning: {message}", err=True),
                       executor=executor or LOCAL)
    except KnownFileError as exc:
        raise click.UsageError(str(exc)) from None
    counts = ", ".join(f"{v} {k}" for k, v in done.summary["counts"].items() if v)
    click.echo(f"{len(done.records)} results ({counts}); reports in {out_dir}/")
    if not done.finished:
        click.echo("interrupted: reports cover the results finished so far", err=True)
        return EXIT_INTERRUPTED
    if done.summary["exit_status"]:
        click.echo(f"discrepancies found: see {out_dir / 'report.md'}")
    return done.summary["exit_status"]


@cli.command("report")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(results_dir) -> int:
    """Re-render every report of RESULTS_DIR from its results.jsonl (and the run's context in summary.json)
    without running anything. Exit status as for `run`: 1 when the results hold discrepancies."""
    from xentcheck.reports.files import read_results
    from xentcheck.reports.write_all import context_of, write_all

    out_dir = Path(results_dir)
    results = out_dir / "results.jsonl"
    if not results.is_file():
        raise click.UsageError(f"no results.jsonl in {results_dir}")
    try:
        records = read_results(results)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    context: dict = {}
    if (out_dir / "summary.json").is_file():
        try:
            context = context_of(json.loads((out_dir / "summary.json").read_text(encoding="utf-8")))
        except ValueError:
            click.echo(f"{out_dir / 'summary.json'} is not valid JSON: rendering without the run's context", err=True)
    else:
        click.echo("no summary.json: rendering without the run's context (config, environment)", err=True)
    summary = write_all(out_dir, records, context)
    click.echo(f"{len(records)} results; reports rewritten in {out_dir}/")
    return summary["exit_status"]


@cli.command("bench")
@click.option("--backends", "backends", metavar="LIST",
              help="Comma-separated backends (default: every built-in and installed plugin; torch for --linear-shapes "
                   "alone).")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH",
              help="A Python file defining a Backend (repeatable).")
@click.option("--dtypes", default="float32", show_default=True, metavar="LIST", help="Comma-separated dtypes.")
@click.option("--shapes", metavar="NxK,...", help="Shapes to time (default: 256x1000,1024x8192,1024x32000,512x128256).")
@click.option("--impls", metavar="LIST", help="Only these implementations (default: each backend's default ones).")
@click.option("--modes", metavar="LIST", help="Only these modes, e.g. eager,jit,function,xla,compile.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads for every framework.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Device to time on.")
@click.option("--allocator", type=click.Choice(["steady", "as-is"]), default="steady", show_default=True,
              help="steady: glibc's trim and mmap thresholds fixed in the timing workers, so that a call's time does not "
                   "depend on whether malloc gave the last call's buffers back to the OS; as-is: malloc as you have it.")
@click.option("--min-block", type=click.FloatRange(min=0, min_open=True), default=0.2, show_default=True,
              help="Seconds per timed block.")
@click.option("--blocks", type=click.IntRange(min=3), default=7, show_default=True, help="Timed blocks per phase.")
@click.option("--out", type=click.Path(file_okay=False), default="xentcheck-bench", show_default=True,
              help="Output folder, new or empty (a run's own shapes are timed into its folder by `run --timing`).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on a terminal.")
@click.option("--linear-shapes", metavar="NxDxV,...",
              help="Linear-CE shapes, CE(h W^T, y) with h N x D and W V x D: time its implementations (default: torch's "
                   "linear_then_cross_entropy, linear_cross_entropy and linear_cross_entropy_accurate_c16) as plain CE's; "
                   "without --shapes, linear-CE only.")
@click.option("--case-timeout", type=click.FloatRange(min=0, min_open=True), default=900.0, show_default=True,
              help="Seconds a worker may take per implementation of one dtype x shape before it is killed.")
@overwrite_option
@worker_memory_option
def bench_cmd(backends, backend_files, dtypes, shapes, impls, modes, threads, device, allocator, min_block, blocks, out,
              progress, linear_shapes, case_timeout, overwrite, worker_memory="auto") -> int:
    """Time forward, backward and forward+backward per backend x implementation x mode x dtype x shape, one backend
    at a time, against the memory-bandwidth floor measured in the same run; writes timing.json, timing.md, timing.png
    and the timing section of report.html."""
    from xentcheck.problems import DEFAULT_KIND
    from xentcheck.problems.linear import LINEAR
    from xentcheck.run import memory, outdir
    from xentcheck.run import plan as runplan
    from xentcheck.timing import bench

    kinds: dict[str, list[tuple[int, ...]]] = {}
    if shapes or not linear_shapes:  # --shapes, or plain CE's defaults when no kind's shapes are given
        kinds[DEFAULT_KIND] = _usage(bench.parse_shapes, shapes, DEFAULT_KIND)
    if linear_shapes:
        kinds[LINEAR.kind] = _usage(bench.parse_shapes, linear_shapes, LINEAR.kind)
    if backends is None and not backend_files and bench.default_backends(kinds):
        backends = ",".join(bench.default_backends(kinds) or [])
    specs = _usage(runplan.backend_specs, backends, backend_files)
    impl_list, mode_list = _usage(runplan.variant_filters, impls, modes, specs)
    config = bench.BenchConfig(backends=specs, dtypes=_usage(runplan.parse_dtypes, dtypes), shapes=kinds,
                               impls=impl_list, modes=mode_list, threads=threads, allocator=allocator, device=device,
                               min_block=min_block, blocks=blocks, case_timeout=case_timeout, progress=progress,
                               worker_memory=_usage(memory.parse, worker_memory))
    out_dir = Path(out)
    held = _usage(outdir.check, out_dir, "bench", overwrite)
    try:
        _replace(held)
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
    config.log_dir = out_dir / "logs"
    data = bench.run_bench(config)
    _write_timing(out_dir, data)
    ok = sum(r.get("status") == "ok" for r in data["rows"])
    click.echo(f"{ok} of {len(data['rows'])} timings measured; {out_dir / 'timing.md'}")
    return EXIT_OK


def _write_timing(out_dir: Path, data: dict) -> None:
    """timing.json/.md/.png, and report.html with the timing section (all reports re-rendered in a run's folder)."""
    from xentcheck.reports import html
    from xentcheck.reports import timing_report as timing
    from xentcheck.reports.files import read_results, read_summary, write_atomic
    from xentcheck.reports.write_all import context_of, write_all

    timing.write(out_dir, data)
    if (out_dir / "results.jsonl").is_file() and (out_dir / "summary.json").is_file():
        try:
            records, summary = read_results(out_dir / "results.jsonl"), read_summary(out_dir / "summary.json")
        except ValueError as exc:  # the timings are written; keep the run's report.html as it is
            click.echo(f"xentcheck: warning: report.html not re-rendered with the timings: {exc}", err=True)
            return
        write_all(out_dir, records, context_of(summary))
    else:
        write_atomic(out_dir / "report.html", html.render({"environment": data.get("environment", {})}, [], timing=data))


@cli.command("backends")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH", help="Also describe this plugin file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def backends_cmd(backend_files, as_json) -> int:
    """List backends with availability, versions, dtypes, devices, or why they are unavailable."""
    from xentcheck.run.plan import backend_specs
    from xentcheck.run.processes import describe_backends

    specs = _usage(backend_specs, None, ()) + _usage(backend_specs, "", backend_files, True)
    infos = describe_backends(list(dict.fromkeys(specs)))
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
@click.option("--suite", type=click.Choice(["default", "full"]), default="default", show_default=True,
              help="Which suite's cases: the ones `run --suite` of that name runs.")
def cases_cmd(dtypes, n_cases, suite) -> int:
    """List the ids of a suite's cases."""
    from xentcheck.run.plan import parse_dtypes, select_cases

    for c in select_cases(_usage(parse_dtypes, dtypes), n_cases, (), suite):
        click.echo(c.id)
    return EXIT_OK


from xentcheck.regress.commands import register as _register_regress  # noqa: E402
from xentcheck.regress.commands import regress_options  # noqa: E402

_register_regress(cli)

from xentcheck.fuzz.command import fuzz_cmd  # noqa: E402

cli.add_command(fuzz_cmd)

from xentcheck.bisect.command import bisect_cmd  # noqa: E402

cli.add_command(bisect_cmd)


def main(argv: list[str] | None = None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="xentcheck", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return EXIT_INTERRUPTED
    except click.exceptions.NoArgsIsHelpError:
        click.echo("xentcheck: error: missing command (see xentcheck --help)", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())  # one line, whatever click wrapped
        click.echo(f"xentcheck: error: {message}", err=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
