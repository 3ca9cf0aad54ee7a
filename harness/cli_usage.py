"""Usage rules shared by the commands (`run`, `fuzz`, `bisect`): a validating function's ValueError
as a usage error (one line, exit 2), and the options that cannot stand beside one that brings its
own configuration (`--resume`, `--finding`)."""

from __future__ import annotations

import click


def usage(fn, *args):
    """Call a validating function; its ValueError becomes a usage error (one line, exit 2)."""
    try:
        return fn(*args)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def refuse_given(ctx: click.Context, names, what: str) -> None:
    """A usage error naming each of the options `names` given on the command line: `what` (e.g.
    "--resume reuses the configuration stored in DIR") says why they cannot be combined with it."""
    given = [p for p in ctx.command.params if p.name in names
             and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{what}; {', '.join(p.opts[0] for p in given)} cannot be combined with it")
