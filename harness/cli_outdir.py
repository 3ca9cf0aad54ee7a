"""--overwrite, shared by the commands that write an output folder (`run`, `fuzz`, `bench`, `merge`, `bisect`):
the option, and the removal of the output xentcheck.run.outdir found, said on stderr."""

from __future__ import annotations

import click


def overwrite_option(command):
    """--overwrite: without it a folder holding xentcheck output is refused (xentcheck.run.outdir)."""
    return click.option("--overwrite", is_flag=True,
                        help="Replace the xentcheck output (a run, a fuzz campaign, timings, a bisect report) already "
                             "in the output folder; other files in it are kept. Without it such a folder is refused.")(command)


def replace_output(held) -> None:
    """Remove the output outdir.check found in the folder (with --overwrite), saying so on stderr.
    OSError when it cannot."""
    from xentcheck.run import outdir

    note = outdir.clear(held)
    if note:
        click.echo(f"xentcheck: {note}", err=True)
