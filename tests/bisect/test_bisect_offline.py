"""`xentcheck bisect` end to end, offline, on a toy package whose releases the test builds.

toyxent's loss goes wrong from 1.3.0 (a relative error of 1e-3); 1.2.2 needs a dependency that is
nowhere (its install fails) and must be skipped with the reason. The plugin backend
tests/helpers/toy_backends/toyxent_backend.py calls it in each version's environment.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli

PLUGIN = str(ROOT / "tests" / "helpers" / "toy_backends" / "toyxent_backend.py")
CASE = "scale1e+0_float64_16x10_index_mean"
BUG = 1e-3
RELEASES = [("1.0.0", {}), ("1.1.0", {}), ("1.2.0", {}), ("1.2.1", {}),
            ("1.2.2", {"requires": ("numpy", "toyxent-helper>=9")}),  # fails to install
            ("1.2.3", {}), ("1.3.0", {"bug": BUG}), ("1.4.0", {"bug": BUG}), ("1.5.0", {"bug": BUG})]


def _uv_or_skip():
    from xentcheck.bisect.install import find_installer
    try:
        find_installer("uv")
    except ValueError as exc:
        pytest.skip(str(exc))


def bisect(out, wheelhouse, env, *extra):
    started = time.monotonic()
    res = run_cli("bisect", "--case", CASE, "--package", "toyxent", "--backend-file", PLUGIN, "--find-links",
                  str(wheelhouse), "--out", str(out), *extra, env=env)
    data = json.loads((out / "bisect.json").read_text()) if (out / "bisect.json").is_file() else None
    return res, data, time.monotonic() - started


@pytest.fixture(scope="module")
def wheelhouse(make_wheelhouse):
    return make_wheelhouse(RELEASES)


@pytest.fixture(scope="module")
def first_run(wheelhouse, cache_env, tmp_path_factory):
    _uv_or_skip()
    out = tmp_path_factory.mktemp("runs") / "first"
    return bisect(out, wheelhouse, cache_env), out


def test_bisection_finds_the_first_bad_version_in_log2_n_builds(first_run):
    (res, data, seconds), out = first_run
    assert res.returncode == 0, res.stdout + res.stderr
    assert "toyxent worked up to 1.2.3 and stopped working in 1.3.0" in res.stdout
    assert data["status"] == "found" and data["installer"] == "uv"
    n = len(data["range"]["candidates"])
    assert n == 9 and data["range"]["bound"] == math.ceil(math.log2(n)) + 2 == 6
    assert data["builds"]["built"] <= data["range"]["bound"]  # the skip included
    result = data["result"]
    assert result["last_good"] == {"version": "1.2.3", "upload_time": "2023-11-19T22:13:20Z"}  # the wheel's mtime
    assert result["first_bad"] == {"version": "1.3.0", "upload_time": "2023-11-20T22:13:20Z"}
    assert result["undecided"] == []
    assert result["freeze_diff"] == [{"name": "toyxent", "good": "1.2.3", "bad": "1.3.0"}]  # nothing else moved
    assert {"label": "Changelog", "url": "https://example.invalid/toyxent/changelog"} in result["release_notes"]
    tested = {s["version"]: s for s in data["tested"]}
    assert tested["1.2.2"]["verdict"] == "skip"
    assert "install failed" in tested["1.2.2"]["reason"] and "toyxent-helper" in tested["1.2.2"]["reason"]
    # the error at each version: the loss 1e-3 off from 1.3.0 on (about 5e12 float64 ULPs), a few ULPs before
    for v, s in tested.items():
        if s["verdict"] == "bad":
            assert v >= "1.3.0" and s["errors"]["loss"] == pytest.approx(BUG * 2.2609914885862397 / 2**-51, rel=0.01)
        elif s["verdict"] == "good":
            assert v < "1.3.0" and s["errors"]["loss"] < 4 and s["errors"]["grad"] < 8
    assert tested["1.0.0"]["env"]["policy"] == "resolved" and tested["1.3.0"]["env"]["policy"] == "pinned"
    md = (out / "bisect.md").read_text()
    assert "**toyxent worked up to 1.2.3**" in md and "| 1.2.2 | 2023-11-18 | skip |" in md
    assert (out / "bisect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (out / "versions" / "1.3.0" / "results.jsonl").read_text().splitlines()]
    assert [(r["backend"], r["verdict"], r["backend_version"]) for r in records] == [("toyxent@bisect", "fail", "1.3.0")]
    print(f"\nfirst bisect: {seconds:.1f} s, {data['builds']['built']} environments built")


def test_a_second_bisect_reuses_every_environment(first_run, wheelhouse, cache_env, tmp_path):
    (_, first, first_seconds), _ = first_run
    res, data, seconds = bisect(tmp_path / "again", wheelhouse, cache_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["result"]["first_bad"]["version"] == "1.3.0"
    assert data["builds"]["built"] == 0 and data["builds"]["reused"] == len(data["tested"]) == len(first["tested"])
    assert "cached" in (tmp_path / "again" / "bisect.md").read_text()
    print(f"\nsecond bisect (cached): {seconds:.1f} s against {first_seconds:.1f} s")


def test_a_finding_of_an_earlier_run_is_bisected(first_run, wheelhouse, cache_env, tmp_path):
    _, out = first_run  # a version's folder is a run folder: its finding is row 1 of the Findings table
    res = run_cli("bisect", "--finding", f"{out / 'versions' / '1.5.0'}:1", "--package", "toyxent", "--find-links",
                  str(wheelhouse), "--out", str(tmp_path / "f"), env=cache_env)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads((tmp_path / "f" / "bisect.json").read_text())
    assert data["subject"]["cases"] == [CASE] and data["subject"]["backends"] == [f"file:{PLUGIN}"]
    assert data["result"]["first_bad"]["version"] == "1.3.0" and data["builds"]["built"] == 0
    res = run_cli("bisect", "--finding", f"{out / 'versions' / '1.5.0'}:toyxent@bisect__{CASE}", "--package", "toyxent",
                  "--find-links", str(wheelhouse), "--out", str(tmp_path / "g"), env=cache_env)  # by its result id
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "g" / "bisect.json").read_text())
    assert data["result"]["first_bad"]["version"] == "1.3.0" and data["subject"]["finding"].endswith(": fail")


def test_endpoints_are_checked_first(first_run, wheelhouse, cache_env, tmp_path):
    res, data, _ = bisect(tmp_path / "a", wheelhouse, cache_env, "--good", "1.0.0", "--bad", "1.2.3")
    assert res.returncode == 1 and data["status"] == "bad-is-good"
    assert "--bad toyxent 1.2.3 is good with the other packages of the good environment" in res.stdout
    assert [s["version"] for s in data["tested"]] == ["1.0.0", "1.2.3"] and data["builds"]["built"] == 0
    res, data, _ = bisect(tmp_path / "b", wheelhouse, cache_env, "--good", "1.0.0", "--bad", "1.2.2")
    assert res.returncode == 2 and data["status"] == "untestable"
    assert res.stderr.strip().splitlines()[-1].startswith("xentcheck: error: --bad toyxent 1.2.2 cannot be tested: "
                                                          "environment: install failed")
    res, data, _ = bisect(tmp_path / "c", wheelhouse, cache_env, "--good", "1.4.0", "--bad", "1.5.0")
    assert res.returncode == 1 and data["status"] == "good-is-bad"
    assert "--good toyxent 1.4.0 is already bad" in res.stdout and len(data["tested"]) == 1


def test_ctrl_c_keeps_the_versions_tested_and_exits_130(first_run, wheelhouse, cache_env, tmp_path):
    out = tmp_path / "i"
    env = {**os.environ, **cache_env, "XENTCHECK_TEST_HANG_VERSION": "1.5.0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "xentcheck", "bisect", "--case", CASE, "--package", "toyxent",
                             "--backend-file", PLUGIN, "--find-links", str(wheelhouse), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (out / "versions" / "1.5.0" / "results.jsonl").exists():
            time.sleep(0.2)  # 1.0.0 is judged; 1.5.0's worker now hangs
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: the report covers the versions tested so far" in stderr
    data = json.loads((out / "bisect.json").read_text())
    assert data["status"] == "interrupted" and [s["version"] for s in data["tested"]] == ["1.0.0"]
    assert data["tested"][0]["verdict"] == "good" and (out / "bisect.md").is_file()
