"""The pytest plugin: `pytest --xentcheck` in a fresh folder, as a user runs it."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points

import pytest

from tests.conftest import ROOT

INSTALLED = any(ep.value == "xentcheck.pytest_plugin" for ep in entry_points(group="pytest11"))
# the test extra's Hypothesis plugin: nothing of these runs, but 0.6 s of CPU in each pytest process
NOT_OURS = ("-p", "no:hypothesispytest")


def _pytest(tmp_path, *args, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    plugin = [] if INSTALLED else ["-p", "xentcheck.pytest_plugin"]  # the entry point loads it when installed
    return subprocess.run([sys.executable, "-m", "pytest", *plugin, *NOT_OURS, *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=timeout)


def test_items_per_case_and_backend_with_k_and_junitxml(tmp_path):
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", "numpy", "--xentcheck-cases", "5", "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "5 passed" in res.stdout
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", "numpy", "--xentcheck-cases", "12",
                  "--xentcheck-dtypes", "float32", "--collect-only", "-q", "-k", "offset")
    ids = [line for line in res.stdout.splitlines() if line.startswith("xentcheck::")]
    assert ids and all("offset" in i for i in ids) and all("analytic-eager" in i for i in ids), res.stdout
    junit = tmp_path / "j.xml"
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", "numpy", "--xentcheck-cases", "4",
                  "--xentcheck-dtypes", "float16", f"--junitxml={junit}", "-q")
    assert res.returncode == 0
    cases = ET.parse(junit).getroot().iter("testcase")
    names = [c.get("name") for c in cases]
    assert len(names) == 4 and all(n.startswith("test_numpy[analytic-eager-") and "_float16_" in n for n in names)


def test_failures_carry_the_harness_reason_and_x_stops(tmp_path):
    # the plugin file in the user's folder: given a path inside this repository, pytest would take
    # the repository's pyproject.toml as its configuration (with its addopts: xdist, -m)
    wrong = str(tmp_path / "wrong_gradient.py")
    shutil.copy(ROOT / "tests/helpers/toy_backends/wrong_gradient.py", wrong)
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", wrong, "--xentcheck-dtypes", "float32",
                  "--xentcheck-cases", "11", "-q", "-rfs")
    assert res.returncode == 1
    assert "out of tolerance" in res.stdout and "gradient:" in res.stdout
    n_failed = int(res.stdout.split(" failed")[0].split()[-1])
    assert n_failed >= 2
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", wrong, "--xentcheck-dtypes", "float32",
                  "--xentcheck-cases", "11", "-q", "-x")
    assert res.returncode == 1 and "1 failed" in res.stdout and "stopping after 1 failures" in res.stdout
    known = tmp_path / "k.toml"
    known.write_text('[[difference]]\nid = "fm"\nbackend = "forgets-mean"\nreason = "r"\nlink = "https://x"\n')
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", wrong, "--xentcheck-dtypes", "float32",
                  "--xentcheck-cases", "11", "-q", "--xentcheck-known", str(known))
    assert res.returncode == 0 and f"{n_failed} xfailed" in res.stdout, res.stdout


def test_without_the_flag_nothing_is_collected(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_x():\n    pass\n")
    res = _pytest(tmp_path, "-q")
    assert res.returncode == 0 and "1 passed" in res.stdout


def test_pytest_xdist(tmp_path):
    pytest.importorskip("xdist")
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", "numpy", "--xentcheck-cases", "6", "-q",
                  "-n", "2", "-p", "no:cacheprovider")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 passed" in res.stdout


def test_unknown_backend_is_a_usage_error(tmp_path):
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends", "nosuch")
    assert res.returncode == 4 and "unknown backend 'nosuch'" in res.stderr


def test_linear_ce_cases_are_items_judged_against_the_linear_reference(tmp_path):
    for toy in ("linear_careful.py", "linear_broken_dw.py"):  # broken_dw loads careful from its own folder
        shutil.copy(ROOT / "tests/helpers/toy_backends" / toy, tmp_path / toy)
    case = "scale1e+0_float32_32x1000_lin64_index_mean_opt-b"
    res = _pytest(tmp_path, "--xentcheck", "--xentcheck-backends",
                  f"{tmp_path / 'linear_careful.py'},{tmp_path / 'linear_broken_dw.py'}",
                  "--xentcheck-case", case, "-q", "-rfs")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 failed, 1 passed" in res.stdout, res.stdout
    assert f"{case} on " in res.stdout and "dW (gradient of W)" in res.stdout, res.stdout
