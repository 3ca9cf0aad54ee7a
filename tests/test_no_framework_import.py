"""Importing the core, or asking for --help, loads no framework."""

import subprocess
import sys

from tests.conftest import ROOT, run_cli

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "optax", "keras", "ray")


def test_importing_the_core_loads_no_framework():
    code = ("import sys, xentcheck, xentcheck.api, xentcheck.testing, xentcheck.cli, xentcheck.run.runner, "
            "xentcheck.problems.ce.reference, xentcheck.core.metrics, xentcheck.core.cases, xentcheck.run.worker, "
            "xentcheck.backends.registry, xentcheck.backends.base, xentcheck.reports.summary, xentcheck.run.ray_workers, "
            "xentcheck.reports.markdown, xentcheck.reports.csv; "
            "from xentcheck.backends.registry import known_names; known_names(); "
            f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_help_loads_no_framework_and_works():
    res = run_cli("--help")
    assert res.returncode == 0 and "run" in res.stdout and "backends" in res.stdout
    code = ("import sys; from xentcheck.cli import main; rc = main(['run', '--help']); "
            f"print(rc, sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"
