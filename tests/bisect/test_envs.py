"""The environment cache: a failed install is remembered with its reason, unless the network may be
to blame; a half-built folder is never taken for a built one. A fake uv stands in for the real one."""

import json
import sys

from xentcheck.bisect import envs
from xentcheck.bisect.install import Installer, Interpreter

FAKE_UV = """#!{python}
import os, sys
args = sys.argv[1:]
if args[0] == "venv":
    os.makedirs(os.path.join(args[-1], "bin"))
    os.symlink(sys.executable, os.path.join(args[-1], "bin", "python"))
    sys.exit(0)
print("Using Python 3.11.7 environment at: venv")
print(os.environ["FAKE_UV_SAYS"])
sys.exit(1)
"""


def _spec(version="1.0.0"):
    python = Interpreter(sys.executable, tuple(sys.version_info[:3]))
    return envs.EnvSpec("toyxent", version, [("pinned", ["toyxent==1.0.0"]), ("relaxed", ["toyxent==1.0.0"])],
                        python, {}, {"uv": ["--no-index"]})


def _fake_uv(tmp_path, monkeypatch, says):
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable))
    uv.chmod(0o755)
    monkeypatch.setenv("FAKE_UV_SAYS", says)
    return Installer("uv", (str(uv),))


def test_a_failed_install_is_remembered_with_its_reason(tmp_path, monkeypatch):
    uv = _fake_uv(tmp_path, monkeypatch, "error: No solution found when resolving dependencies")
    env = envs.ensure(_spec(), uv, tmp_path / "cache")
    assert not env.ok and not env.reused
    assert env.reason == "install failed: error: No solution found when resolving dependencies"  # both attempts alike
    folder = tmp_path / "cache" / _spec().folder_name()
    assert env.path == str(folder) and "No solution found" in (folder / "build.log").read_text()
    record = json.loads((folder / "env.json").read_text())
    assert record["status"] == "failed" and not (folder / "venv").exists()  # a failed venv is not kept
    again = envs.ensure(_spec(), uv, tmp_path / "cache")
    assert again.reused and again.reason == env.reason
    assert not envs.ensure(_spec(), uv, tmp_path / "cache", rebuild=True).reused


def test_a_network_failure_is_tried_again_next_time(tmp_path, monkeypatch):
    uv = _fake_uv(tmp_path, monkeypatch, "error: Failed to fetch: `https://pypi.org/simple/toyxent/` (connection reset)")
    env = envs.ensure(_spec(), uv, tmp_path / "cache")
    assert not env.ok and "Failed to fetch" in env.reason
    assert not (tmp_path / "cache" / _spec().folder_name() / "env.json").exists()
    assert not envs.ensure(_spec(), uv, tmp_path / "cache").reused


def test_a_half_built_folder_is_built_again(tmp_path, monkeypatch):
    uv = _fake_uv(tmp_path, monkeypatch, "error: nothing to install")
    folder = tmp_path / "cache" / _spec().folder_name()
    (folder / "venv" / "bin").mkdir(parents=True)  # a build killed before env.json
    assert envs.load(folder) is None
    (folder / "env.json").write_text("{not json")
    assert envs.load(folder) is None
    env = envs.ensure(_spec(), uv, tmp_path / "cache")
    assert not env.reused and envs.load(folder) is not None


def test_the_key_names_every_input(tmp_path, monkeypatch):
    a, b = _spec("1.0.0"), _spec("1.0.1")
    assert a.key() != b.key() and a.key() == _spec("1.0.0").key()
    c = _spec("1.0.0")
    c.attempts = [("pinned", ["toyxent==1.0.0", "numpy==2.0.0"])]
    assert c.key() != a.key()
    assert a.folder_name().startswith(f"toyxent-1.0.0-py{sys.version_info[0]}.{sys.version_info[1]}-")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert envs.cache_root() == tmp_path / "xentcheck" / "envs"
