"""Options of the commands that start backend workers: --executor and --ray-address (`run`, `fuzz`:
the workers may run on a Ray cluster) with the connected Executor they describe, and
--worker-memory (`run`, `fuzz`, `bench`)."""

from __future__ import annotations

import click


def executor_options(command):
    """--executor and --ray-address: where a command's backend workers run (xentcheck.run.executor).
    The command gets `executor` and `ray_address`; connect_executor turns them into an Executor."""
    command = click.option("--ray-address", metavar="HOST:PORT",
                           help="With --executor ray: the running Ray cluster to use (default: $RAY_ADDRESS, "
                                "else a local Ray instance).")(command)
    return click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Run the backend workers on this machine, or as Ray actors across a Ray cluster "
                             "(needs the `ray` extra).")(command)


def connect_executor(kind: str, address: str | None, device: str):
    """The Executor, connected (a usage error, one line, when Ray is missing or unreachable)."""
    from xentcheck.run.executor import Executor

    executor = Executor(kind, address)
    try:
        executor.connect(device)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return executor


def worker_memory_option(command):
    """--worker-memory: the ceiling on each backend worker's resident memory (xentcheck.run.memory),
    as given; memory.parse turns it into bytes (a usage error when it is not a size)."""
    return click.option("--worker-memory", metavar="SIZE", default="auto", show_default=True,
                        help="Resident memory a backend worker (with its child processes) may hold: past it the "
                             "worker is killed and its case recorded `crashed`. 2G, 512M, 1.5GiB (binary units), "
                             "auto (half this machine's memory) or none.")(command)
