"""`xentcheck bisect` given bad input: one line naming the problem, exit status 2, nothing built."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

PLUGIN = str(ROOT / "tests" / "helpers" / "toy_backends" / "toyxent_backend.py")
CASE = "scale1e+0_float64_16x10_index_mean"


@pytest.fixture
def folder(tmp_path):
    """A find-links folder with two toy versions (never installed by these tests)."""
    links = tmp_path / "links"
    links.mkdir()
    for v in ("1.0.0", "1.1.0"):
        (links / f"toyxent-{v}-py3-none-any.whl").write_bytes(b"")
    return links


def _bisect(tmp_path, *args):
    return run_cli("bisect", *args, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})


@pytest.mark.parametrize("args, message", [
    (("--package", "toyxent"), "give the cases to bisect: --case ID"),
    (("--case", CASE, "--finding", "x:1", "--package", "toyxent"), "--finding takes the case, backend and settings"),
    (("--case", CASE, "--package", "toyxent"), "give --backends (or --backend-file)"),
    (("--case", "nonsense", "--package", "jax"), "nonsense"),
    (("--case", CASE, "--package", "jax", "--factor", "3"), "--factor needs --metric"),
    (("--case", CASE, "--package", "jax", "--with", "jax==0.4.38"), "jax is the package being bisected"),
    (("--case", CASE, "--package", "jax", "--with", "optax=="), "not a requirement"),
    (("--case", CASE, "--package", "jax", "--python", "3.99"), "no Python 3.99 found"),
    (("--case", CASE, "--package", "jax", "--python", "three"), "give a version X.Y"),
    (("--case", CASE, "--package", "jax", "--python", "/nonexistent/python3"), "not an executable file"),
    (("--case", CASE, "--package", "jax", "--index-url", "https://x.example/simple", "--find-links", "."),
     "give --index-url or --find-links, not both"),
    (("--finding", "/nonexistent:1", "--package", "jax"), "/nonexistent is not a results folder"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, message):
    res = _bisect(tmp_path, *args, "--out", str(tmp_path / "out"))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xentcheck: error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "xentcheck").exists()


@pytest.mark.parametrize("extra, message", [
    (("--good", "1.0.5"), "toyxent 1.0.5 is not on --find-links"),
    (("--good", "1.1.0", "--bad", "1.0.0"), "--good 1.1.0 must be older than --bad 1.0.0"),
    (("--good", "x.y"), "--good x.y: 'x.y' is not a version"),
])
def test_versions_that_cannot_be_bisected_exit_2(tmp_path, folder, extra, message):
    res = _bisect(tmp_path, "--case", CASE, "--package", "toyxent", "--backend-file", PLUGIN, "--find-links", str(folder),
                  "--out", str(tmp_path / "out"), *extra)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


def test_no_release_on_the_index_exits_2(tmp_path, folder):
    res = _bisect(tmp_path, "--case", CASE, "--package", "absent", "--backend-file", PLUGIN, "--find-links", str(folder),
                  "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "no release of absent on --find-links" in res.stderr, res.stderr


@pytest.mark.parametrize("held, says", [({"bisect.json": "{}", "bisect.md": "an earlier report"}, "a bisect report"),
                                         ({"run.json": "{}", "results.jsonl": ""}, "an unfinished run"),
                                         ({"campaign.json": "{}"}, "a fuzz campaign")])
def test_an_occupied_out_is_refused(tmp_path, folder, held, says):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in held.items():
        (out / name).write_text(text)
    res = _bisect(tmp_path, "--case", CASE, "--package", "toyxent", "--backend-file", PLUGIN, "--find-links", str(folder),
                  "--out", str(out))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (f"xentcheck: error: {out} already holds {says}: give another --out, "
                                  "or --overwrite to replace it")
    assert {p.name: p.read_text() for p in out.iterdir()} == held


def test_run_refuses_a_bisect_report(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bisect.json").write_text("{}")
    res = subprocess.run([sys.executable, "-m", "xentcheck", "run", "--backends", "numpy", "--cases", "1", "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip() == (f"xentcheck: error: {out} already holds a bisect report: "
                                                          "give another --out, or --overwrite to replace it"), res.stderr
    assert [p.name for p in out.iterdir()] == ["bisect.json"]


def test_importing_bisect_loads_neither_uv_nor_matplotlib():
    import subprocess
    import sys
    modules = ", ".join(f"xentcheck.bisect.{m}" for m in ("command", "envs", "finding", "hunt", "indexes", "install",
                                                           "pins", "search", "subject", "versions"))
    code = (f"import sys, xentcheck.cli, {modules}; "
            "print(sorted(m for m in ('uv', 'matplotlib', 'packaging', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
