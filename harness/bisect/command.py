"""`xentcheck bisect`: the first release of a package where cases go bad (xentcheck.bisect.hunt).

Exit status: 0 the first bad version was found; 1 an endpoint has the wrong verdict (--good is
bad, or --bad good); 2 a usage error, or an endpoint that cannot be tested; 130 interrupted. The
report (bisect.md, bisect.json, bisect.png) is written in every case once a version was tested.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from xentcheck.bisect.install import INSTALLERS
from xentcheck.cli_outdir import overwrite_option, replace_output
from xentcheck.cli_usage import refuse_given
from xentcheck.cli_usage import usage as _usage

EXIT_USAGE = 2
# options that --finding takes from the run it names
SUBJECT_OPTIONS = ("case_ids", "backends", "backend_files", "impls", "modes", "seed", "preset", "rtol", "atol")




def _subject(ctx, case_ids, finding, backends, backend_files, impls, modes, seed, preset, rtol, atol, case_timeout,
             package):
    """(template RunPlan, bad verdicts, the subject for the report) from --case or --finding."""
    from xentcheck.bisect import finding as findings
    from xentcheck.bisect import pins
    from xentcheck.bisect.versions import canonical
    from xentcheck.run import plan as runplan

    verdicts = ["fail", "nonfinite"]
    what = None
    if finding is not None:
        refuse_given(ctx, SUBJECT_OPTIONS, "--finding takes the case, backend and settings from its run")
        f = _usage(findings.parse, finding)
        case_ids, seed, preset, rtol, atol = (f.case_id,), f.seed, f.preset, tuple(f.rtol), tuple(f.atol)
        if f.backend.startswith("file:"):
            backends, backend_files = None, (f.backend[len("file:"):],)
        else:
            backends, backend_files = f.backend, ()
        impls, modes = f.impl or None, ",".join(f.modes) or None
        verdicts += [v for v in f.verdicts if v not in verdicts]
        what = f.what
    elif not case_ids:
        raise click.UsageError("give the cases to bisect: --case ID (repeatable) or --finding RUN_DIR:KIND")
    if backends is None and not backend_files:
        backends = pins.DEFAULT_BACKEND.get(canonical(package))
        if backends is None:
            raise click.UsageError(f"give --backends (or --backend-file): which backend runs the cases with {package}")
    plan = _usage(runplan.plan_from_options, backends, tuple(backend_files), None, seed, None, tuple(case_ids), "cpu",
                  preset, tuple(rtol), tuple(atol), case_timeout, "default", impls, modes, False)
    if not plan.cases:
        raise click.UsageError("no case to run")
    subject = {"cases": [c.id for c in plan.cases], "backends": plan.backends, "impls": plan.impls,
               "modes": plan.modes, "seed": plan.seed, "tolerances": plan.preset,
               **({"finding": f"{finding}: {what}"} if what else {})}
    return plan, tuple(verdicts), subject


def _check_out(out: str, overwrite: bool):
    """The report folder, refused when it holds any xentcheck output (xentcheck.run.outdir's rule)."""
    from xentcheck.run import outdir

    if Path(out).exists() and not Path(out).is_dir():
        raise click.UsageError(f"--out {out} is not a folder: give a new one")
    return _usage(outdir.check, Path(out), "bisect", overwrite)


@click.command("bisect")
@click.option("--case", "case_ids", multiple=True, metavar="ID", help="A case to run at each version (repeatable).")
@click.option("--finding", metavar="RUN_DIR:KIND",
              help="Bisect a finding of an earlier run: KIND is its row in RUN_DIR/report.md's Findings table (1, 2, ...) "
                   "or a result id as `xentcheck repro` takes it; its case, backend, implementation, seed and tolerances.")
@click.option("--package", required=True, metavar="NAME", help="The package whose releases are searched (jax, optax, torch...).")
@click.option("--good", metavar="VERSION", help="A version known good (default: the oldest that installs here).")
@click.option("--bad", metavar="VERSION", help="A version known bad (default: the one installed here, else the newest).")
@click.option("--with", "with_pins", multiple=True, metavar="PKG==V",
              help="Also install this requirement in every environment, never moved (repeatable), e.g. jax==0.4.38.")
@click.option("--sweep", is_flag=True, help="Test every version in the range, not log2 N of them: shows every transition.")
@click.option("--python", "python", metavar="X.Y", help="The Python of the environments: a version, or an interpreter's "
              "path (default: this one's).")
@click.option("--index-url", metavar="URL", help="Take releases from this simple index alone (default: your uv/pip settings, "
              "else PyPI).")
@click.option("--find-links", metavar="DIR", help="Take every package from this folder of wheels alone (offline).")
@click.option("--out", type=click.Path(file_okay=False), default="xentcheck-bisect", show_default=True,
              help="Report folder (new or empty): bisect.md, bisect.json, bisect.png, versions/<V>/.")
@click.option("--backends", metavar="LIST", help="Backends to run the cases on (default: the one that runs the package: "
              "jax for jax, jaxlib and optax, torch, tensorflow).")
@click.option("--backend-file", "backend_files", multiple=True, metavar="PATH", help="A plugin file's Backend (repeatable).")
@click.option("--impls", metavar="LIST", help="Only these implementations, e.g. optax_sce_int.")
@click.option("--modes", metavar="LIST", help="Only these modes, e.g. eager,jit.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the cases' inputs.")
@click.option("--tolerances", "--tolerance", "preset", default="xentcheck", show_default=True,
              type=click.Choice(["xentcheck", "model", "torch", "jax", "tensorflow"]), help="Tolerance preset.")
@click.option("--rtol", multiple=True, metavar="SPEC", help="Relative tolerance override, as for `run`.")
@click.option("--atol", multiple=True, metavar="SPEC", help="Absolute tolerance override, as for `run`.")
@click.option("--metric", type=click.Choice(["ulp_err", "rel_err", "abs_err"]),
              help="Judge by the error's size instead of the verdict: bad when the loss's or gradient's error grew more "
                   "than --factor over the good version's while above --floor (the rule of `xentcheck compare`).")
@click.option("--factor", type=click.FloatRange(min=1, min_open=True), default=2.0, show_default=True,
              help="With --metric: the growth that makes a version bad.")
@click.option("--floor", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="With --metric: errors at most this are noise.")
@click.option("--pre", is_flag=True, help="Also try pre-releases.")
@click.option("--yanked", is_flag=True, help="Also try yanked releases.")
@click.option("--installer", type=click.Choice(INSTALLERS), default="auto", show_default=True,
              help="What builds the environments: uv (pip install 'xentcheck[bisect]'), else pip.")
@click.option("--rebuild", is_flag=True, help="Build every environment again, also the cached and the failed ones.")
@click.option("--case-timeout", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="Seconds before a hung case is marked timeout.")
@overwrite_option
def bisect_cmd(case_ids, finding, package, good, bad, with_pins, sweep, python, index_url, find_links, out, backends,
               backend_files, impls, modes, seed, preset, rtol, atol, metric, factor, floor, pre, yanked, installer,
               rebuild, case_timeout, overwrite) -> int:
    """Find the first release of --package where the cases go bad: one cached environment per version (uv, else
    pip), the cases run there through the --python worker path, both endpoints checked first, then bisection
    (or --sweep). Writes bisect.md, bisect.json and bisect.png in --out."""
    from xentcheck.bisect import envs, hunt, pins
    from xentcheck.bisect.indexes import from_options
    from xentcheck.bisect.install import find_installer, find_python
    from xentcheck.bisect.subject import MetricRule
    from xentcheck.bisect.versions import canonical

    ctx = click.get_current_context()
    for name in ("factor", "floor"):
        if metric is None and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{name} needs --metric")
    template, verdicts, subject = _subject(ctx, case_ids, finding, backends, backend_files, impls, modes, seed, preset,
                                           rtol, atol, case_timeout, package)
    package = canonical(package)  # Optax, optax: one package, one cache entry
    pinned = _usage(pins.parse_with, with_pins, package)
    held = _check_out(out, overwrite)
    out_dir = Path(out)
    index = _usage(from_options, index_url, find_links)
    tool = _usage(find_installer, installer)
    interpreter = _usage(find_python, python, tool)
    config = hunt.HuntConfig(package=package, good=good, bad=bad, with_pins=pinned, template=template,
                             bad_verdicts=verdicts, index=index, installer=tool, python=interpreter,
                             cache=envs.cache_root(), out=out_dir, sweep=sweep, pre=pre, yanked=yanked,
                             rule=MetricRule(metric, factor, floor) if metric else None, rebuild=rebuild,
                             command=shlex.join(["xentcheck", *sys.argv[1:]]), subject=subject)
    h = hunt.Hunt(config, say=lambda message: click.echo(f"bisect: {message}", err=True))
    _usage(h.plan_range)
    click.echo(f"bisect: {len(h.versions)} versions of {package} from {h.versions[0]} to {h.versions[-1]} "
               f"(at most {h.bound} environments without skips; {tool.kind}, Python {interpreter.short}, cache "
               f"{config.cache})", err=True)
    try:
        replace_output(held)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    try:
        status = h.run()
    except OSError as exc:  # the versions judged so far are in the report already
        raise click.UsageError(f"cannot write {exc.filename or 'a file'}: {exc.strerror or exc}") from None
    where = f"report in {out_dir / 'bisect.md'}"
    if status == hunt.EXIT_UNTESTABLE:
        click.echo(f"xentcheck: error: {h.message}; {where}", err=True)
    elif status == hunt.EXIT_INTERRUPTED:
        click.echo(f"{h.message}; {where}", err=True)
    else:
        click.echo(f"{h.message}; {where}")
    return status
