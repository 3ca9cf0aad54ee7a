"""`xentcheck fuzz`: the command line of a fuzz campaign (xentcheck.fuzz.campaign).

Exit status as for `run`: 0 no finding (or only known differences), 1 findings, 2 a usage
error, 130 interrupted (Ctrl-C; the report covers what finished, --resume continues).
"""

from __future__ import annotations

from pathlib import Path

import click

from xentcheck.cli_executor import connect_executor, executor_options, worker_memory_option
from xentcheck.cli_outdir import overwrite_option
from xentcheck.cli_outdir import replace_output as _replace
from xentcheck.cli_usage import refuse_given
from xentcheck.cli_usage import usage as _usage

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# options that define the campaign: --resume takes them from campaign.json
CAMPAIGN_OPTIONS = ("backends", "backend_files", "dtypes", "seed", "out", "device", "preset", "impls", "modes",
                    "known_file", "batch", "case_timeout", "overwrite", "worker_memory")




def build_plan(backends, backend_files, dtypes, seed, device, preset, impls, modes, known_file, case_timeout,
               worker_memory="auto"):
    """The campaign's template RunPlan (as `run` builds one): every implementation and mode of the
    full suite, without the property checks; its cases are replaced batch by batch."""
    from xentcheck.fuzz.draw import draw_case
    from xentcheck.regress import known
    from xentcheck.run import plan as runplan

    dtype_names = _usage(runplan.parse_dtypes, dtypes)
    first = draw_case(seed, 0, dtype_names).id
    plan = _usage(runplan.plan_from_options, backends, backend_files, dtypes, seed, None, (first,), device, preset,
                  (), (), case_timeout, "full", impls, modes, False, (), worker_memory)
    if known_file is not None:
        _usage(known.load, known_file)  # a KnownFileError is a ValueError: one line, exit 2
        plan.known_file = str(Path(known_file).resolve())
    return plan


@click.command("fuzz")
@click.option("--budget", metavar="DURATION", help="Stop after this long: 10m, 90s, 1h30m (a batch is stopped "
              "between two results). With --resume: this much more (default: what is left of the stored budget, "
              "or no limit with --cases).")
@click.option("--cases", "n_cases", type=click.IntRange(min=1),
              help="Stop after drawing this many cases (with --resume: in all). The same --seed and --cases give "
                   "the same cases.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the drawing and of the cases' inputs.")
@click.option("--backends", "backends", metavar="LIST",
              help="Comma-separated backends (default: every built-in and installed plugin).")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH",
              help="A Python file defining a Backend; PATH::NAME picks one (repeatable).")
@click.option("--dtypes", metavar="LIST", help="Comma-separated dtypes: float16,bfloat16,float32,float64 (default: all).")
@click.option("--impls", metavar="LIST", help="Only these implementations (default: every one).")
@click.option("--modes", metavar="LIST", help="Only these modes (default: every one but the opt-in compile).")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option("--tolerances", "--tolerance", "preset", default="xentcheck", show_default=True,
              type=click.Choice(["xentcheck", "model", "torch", "jax", "tensorflow"]), help="Tolerance preset.")
@click.option("--known", "known_file", metavar="FILE",
              help="Known-differences TOML: matching results are not findings.")
@click.option("--out", type=click.Path(file_okay=False), default="xentcheck-fuzz", show_default=True,
              help="Campaign folder: campaign.json, report.md, report.json, batches/.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="Cases per batch (the workers start once per batch).")
@click.option("--case-timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              help="Seconds before a hung case is marked timeout.")
@click.option("--resume", metavar="DIR", help="Continue the campaign in DIR with its stored configuration.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on a terminal.")
@overwrite_option
@worker_memory_option
@executor_options
def fuzz_cmd(budget, n_cases, seed, backends, backend_files, dtypes, impls, modes, device, preset, known_file, out,
             batch, case_timeout, resume, progress, overwrite, worker_memory="auto", executor="local", ray_address=None) -> int:
    """Draw random cases (shapes up to K = 256k, every family, label form, option and reduction, extreme values),
    run them through every backend x implementation x mode, and keep each new kind of finding with its case,
    its repro script and a shrunk one. Writes report.md and report.json in --out."""
    from xentcheck.fuzz.campaign import Campaign, State, parse_duration
    from xentcheck.fuzz.draw import DRAW_VERSION
    from xentcheck.run import outdir

    budget_s = _usage(parse_duration, budget) if budget is not None else None
    held = None  # what --out holds (xentcheck.run.outdir), for a new campaign
    ctx = click.get_current_context()
    if resume is not None:
        refuse_given(ctx, CAMPAIGN_OPTIONS, f"--resume reuses the configuration stored in {resume}")
        out_dir = Path(resume)
        state = _usage(State.load, out_dir)
        if state.draw_version != DRAW_VERSION:  # its next cases would come from another draw than its first
            raise click.UsageError(f"the campaign in {resume} was drawn with draw version {state.draw_version}, this "
                                   f"xentcheck draws version {DRAW_VERSION}: start a new campaign")
        if n_cases is not None:
            if n_cases < state.next_index:
                raise click.UsageError(f"--cases {n_cases}: the campaign has drawn {state.next_index} already")
            state.cases = n_cases
        if budget_s is None and n_cases is not None:
            state.budget_s = None  # until the cases asked for have run
        elif budget_s is None and state.budget_s is not None:
            budget_s = state.budget_s - state.elapsed_s
            if budget_s <= 0:
                raise click.UsageError(f"the campaign in {resume} has spent its budget: give --budget to continue")
        elif budget_s is not None:
            state.budget_s = state.elapsed_s + budget_s
        if budget_s is None and state.cases is None:
            raise click.UsageError("give --budget or --cases to continue this campaign")
        state.stopped = None
    else:
        if budget_s is None and n_cases is None:
            raise click.UsageError("give --budget DURATION, --cases N, or both")
        plan = build_plan(backends, backend_files, dtypes, seed, device, preset, impls, modes, known_file,
                          case_timeout, worker_memory)
        out_dir = Path(out)
        held = _usage(outdir.check, out_dir, "fuzz", overwrite)
        state = State(seed=seed, plan=plan.to_json(), budget_s=budget_s, cases=n_cases, batch=batch)
    try:
        if held is not None:
            _replace(held)
        out_dir.mkdir(parents=True, exist_ok=True)
        state.save(out_dir)
    except OSError as exc:
        raise click.UsageError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
    where = connect_executor(executor, ray_address, state.template().device)
    campaign = Campaign(out_dir, state, progress,
                        warn=lambda message: click.echo(f"xentcheck: warning: {message}", err=True), executor=where)
    state = campaign.run(budget_s)
    from xentcheck.fuzz.report import build
    report = build(state)
    click.echo(f"{report['cases_run']} cases, {len(report['kinds'])} kinds of findings; report in {out_dir / 'report.md'}")
    for k in report["kinds"]:
        click.echo(f"  {k['n_cases']:>4} cases  {k['backend']} {k['impl']} {k['mode']} {k['verdict']}: "
                   f"{k['smallest']['case_id']}")
    if state.stopped == "interrupted":
        click.echo(f"interrupted: the report covers what finished; continue with xentcheck fuzz --resume {out_dir}",
                   err=True)
        return EXIT_INTERRUPTED
    return EXIT_FOUND if report["kinds"] else EXIT_OK
