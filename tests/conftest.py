import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m xentcheck ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "xentcheck", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


def require(module: str) -> None:
    """Skip the test unless `module` is installed. Unlike pytest.importorskip it does not import it: a test
    whose framework runs in a subprocess should not pay the seconds of importing it here as well."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


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
