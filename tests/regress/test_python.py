"""--python LABEL=PATH: the backends of a second, real Python environment in the same run."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_here

CASES = ("scale1e+0_float32_16x10_index_mean", "offset1e+8_float64_16x10_soft_sum")


def _numpy_only_venv(root: Path) -> Path:
    """A venv of the same base interpreter that sees numpy (with ml_dtypes and mpmath, which the
    harness needs) and no framework: the packages are linked in from this environment."""
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot create a venv with {base}: {exc}")
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    linked = 0
    for entry in ours.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("numpy", "ml_dtypes", "mpmath"):
            (site / entry.name).symlink_to(entry)
            linked += 1
    if not linked:
        pytest.skip("numpy is not installed as plain site-packages here")
    return python


def test_a_second_interpreter_runs_beside_this_one(tmp_path):
    python = _numpy_only_venv(tmp_path / "venv")
    check = subprocess.run([str(python), "-c", "import numpy, ml_dtypes, mpmath\ntry:\n import torch\nexcept ImportError:"
                            "\n print('no torch')"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert check.returncode == 0 and "no torch" in check.stdout, check.stderr
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy,torch", "--python", f"numpy-only={python}",
                  *[a for c in CASES for a in ("--case", c)], "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r["backend"], r["case_id"]): r for r in recs}
    assert {b for b, _ in by} == {"numpy", "torch", "numpy@numpy-only", "torch@numpy-only"}
    for c in CASES:
        assert by[("numpy@numpy-only", c)]["verdict"] == "pass"
        assert by[("torch", c)]["verdict"] == "pass"
        # torch is not in the other environment: skipped with the reason, never a crash
        assert by[("torch@numpy-only", c)]["verdict"] == "skipped"
        assert "not installed" in by[("torch@numpy-only", c)]["reasons"][0]
        # same interpreter ABI, same numpy: bit-identical results
        assert by[("numpy@numpy-only", c)]["loss"] == by[("numpy", c)]["loss"]
    env = json.loads((out / "environment.json").read_text())
    assert env["backends"]["numpy@numpy-only"]["executable"] == str(python)
    assert env["backends"]["numpy"]["executable"] == sys.executable
    report = (out / "report.md").read_text()
    assert "numpy@numpy-only" in report
    # one report, both environments side by side: the other interpreter matched result by result
    assert "## Interpreter numpy-only against this one" in report
    assert "2 results matched; 0 worse there, 0 better there" in report  # torch is missing there
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["interpreters"] == {"numpy-only": str(python)}


@pytest.mark.parametrize("value, message", [
    ("nolabel", "must be LABEL=PATH"),
    ("old=/nonexistent/python", "is not an executable file"),
    ("bad label=/bin/sh", "use letters, digits"),
])
def test_bad_python_options_exit_2(tmp_path, value, message):
    res = run_cli("run", "--backends", "numpy", "--cases", "1", "--python", value, "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_report_shows_where_the_other_interpreter_differs(tmp_path):
    """The other environment computes differently (a .pth file switches the fixture's numerics
    there, as an older framework version would): the run's report lists the results worse there."""
    from tests.conftest import ROOT, run_here

    python = _numpy_only_venv(tmp_path / "venv")
    site = next((tmp_path / "venv").glob("lib/python*/site-packages"))
    (site / "sloppy.pth").write_text("import os; os.environ['XENTCHECK_TEST_SLOPPY'] = '1'\n")
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/env_sloppy.py"), "--python", f"old={python}",
                  "--case", "offset1e+8_float32_128x1000_index_mean", "--case", "scale1e+0_float32_16x10_index_mean",
                  "--out", str(out), "--no-progress", env={"XENTCHECK_TEST_SLOPPY": "0"})
    assert res.returncode == 1, res.stdout + res.stderr  # env-sloppy@old fails the offset case
    report = (out / "report.md").read_text()
    assert "2 results matched; 1 worse there, 0 better there" in report
    section = report.split("## Interpreter old against this one")[1]
    assert "| `offset1e+8\\_float32\\_128x1000\\_index\\_mean` | env-sloppy | worse | pass -\\> fail |" in section
    env = json.loads((out / "environment.json").read_text())
    assert env["backends"]["env-sloppy@old"]["settings"] == {"XENTCHECK_TEST_SLOPPY": "1"}
    assert env["backends"]["env-sloppy"]["settings"] == {"XENTCHECK_TEST_SLOPPY": "0"}
