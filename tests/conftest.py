import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m xentcheck ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "xentcheck", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


def run_here(*args: str, env: dict | None = None, figures: bool = False) -> subprocess.CompletedProcess:
    """`xentcheck ARGS` in this process (xentcheck.cli.main, stdout and stderr captured): what run_cli
    returns, without the second of a new interpreter importing xentcheck, pandas and matplotlib.
    The backends' workers are processes as ever. For tests of what a command writes; what only a
    process shows (its exit status as such, signals, a traceback, what a fresh interpreter imports)
    stays with run_cli. `env` is set for the command (and so its workers), then restored. Python
    warnings end up on stderr, as a new interpreter's default filters show them. What a run hands
    to a forked child (figures, repro/) is done in this process, as xentcheck.run.forked does
    where it cannot fork: a fork of a process holding frameworks costs a tenth of a second, and
    JAX's threads make it warn. The HTML report's figures (matplotlib: most of a small run's
    time) are left out unless `figures`."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from xentcheck.cli import main
    from xentcheck.reports import plots
    from xentcheck.run import forked

    out, err = StringIO(), StringIO()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)  # what `python -m` ignores, as run_cli's process would
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        mp.setattr(forked, "start", lambda fn, *args: lambda: fn(*args))
        if not figures:
            mp.setattr(plots, "figures", lambda records, matrix: [])
        mp.chdir(ROOT)
        with redirect_stdout(out), redirect_stderr(err):
            status = main(list(args))
    err.writelines(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return subprocess.CompletedProcess(["xentcheck", *args], status, out.getvalue(), err.getvalue())


def require(module: str) -> None:
    """Skip the test unless `module` is installed. Unlike pytest.importorskip it does not import it: a test
    whose framework runs in a subprocess should not pay the seconds of importing it here as well."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # find_spec("a.b") imports "a", and raises when "a" is missing
        found = False
    if not found:
        pytest.skip(f"{module} is not installed")


def mode_tiers(modes: dict[str, set[str]], quick: dict[str, set[str]]) -> list:
    """(framework, modes) parameters for a test that runs an adapter in each mode: the default
    tier runs `quick`'s modes where given (each compiled mode compiles per variant and case),
    every framework's whole `modes` set under -m slow ("<framework>-every-mode")."""
    return [pytest.param(n, quick.get(n, m), id=n) for n, m in modes.items()] + \
        [pytest.param(n, modes[n], id=f"{n}-every-mode", marks=pytest.mark.slow) for n in quick]


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(params=["c", "numpy"])
def reference_kernel(request, monkeypatch):
    """Runs a test once with the reference's C kernel (where it is built) and once in NumPy."""
    from xentcheck.core import kernel
    if request.param == "numpy":
        monkeypatch.setenv(kernel.ENV, "numpy")
    elif kernel.library() is None:
        pytest.skip("the C kernel is not built here")
    return request.param


# The modules that take longest, longest first: frameworks imported in subprocesses, Ray, real
# runs. pytest-xdist hands a worker whole files (--dist loadfile) in collection order
# (--no-loadscope-reorder; by default it hands out the files with the most tests first, which left
# these few-test ones to the end, one worker busy with them while the other had nothing left).
# Measured on 2 cores (--durations=0, 2026-12-06); a module missing from the list only runs later
# than it could.
LONGEST_FIRST = ("run/test_ray_executor.py", "bisect/test_bisect_modes.py", "backends/test_linear_adapters.py",
                 "backends/test_keras_backend.py", "regress/test_repro.py", "test_cli.py", "bisect/test_bisect_offline.py",
                 "backends/test_distill_adapters.py", "backends/test_sharded_frameworks.py",
                 "backends/test_grpo_adapters.py", "run/test_outdir.py", "regress/test_linear_repro.py",
                 "run/test_reliability.py", "backends/test_backends.py", "core/test_parsing_properties.py",
                 "backends/test_keras_distill.py", "fuzz/test_campaign.py", "backends/test_liger_distill.py",
                 "test_api.py", "run/test_memory_ceiling.py", "regress/test_compare.py", "backends/test_rl_adapters.py",
                 "regress/test_kind_repro.py", "test_inputs_cli.py", "timing/test_timing.py", "run/test_release.py",
                 "backends/test_lindistill.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    tests = ROOT / "tests"
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests)
                                         else "", len(rank)))  # stable: the rest keep their order
