"""`xentcheck bisect` offline, its other ways: --sweep (every transition), --metric (the error's
size decides), and the pip fallback (no uv), on toy packages the tests build (tests/bisect/wheels.py)."""

import json
from pathlib import Path

import pytest

from tests.bisect import wheels
from tests.bisect.test_bisect_offline import BUG, _uv_or_skip, bisect


def test_a_sweep_shows_a_fix_and_a_second_regression(make_wheelhouse, cache_env, tmp_path):
    _uv_or_skip()
    house = make_wheelhouse([("1.0.0", {}), ("1.1.0", {"broken_import": True}), ("1.2.0", {"bug": BUG}),
                             ("1.3.0", {}), ("1.4.0", {"bug": BUG})])
    res, data, _ = bisect(tmp_path / "s", house, cache_env, "--sweep")
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["mode"] == "sweep" and len(data["tested"]) == 5
    assert data["transitions"] == [
        {"kind": "regression", "before": "1.0.0", "after": "1.2.0", "skipped": ["1.1.0"]},
        {"kind": "fix", "before": "1.2.0", "after": "1.3.0", "skipped": []},
        {"kind": "regression", "before": "1.3.0", "after": "1.4.0", "skipped": []}]
    # the transition the bad version has leads
    assert data["result"]["last_good"]["version"] == "1.3.0" and data["result"]["first_bad"]["version"] == "1.4.0"
    broken = next(s for s in data["tested"] if s["version"] == "1.1.0")
    assert broken["verdict"] == "skip" and "import toyxent failed" in broken["reason"]
    assert "toyxent_missing_helper" in broken["reason"]


def test_with_a_metric_a_growth_within_tolerance_is_found(make_wheelhouse, cache_env, tmp_path):
    _uv_or_skip()
    # 6e-16 relative: about 3 ULPs more on the loss, within the float64 tolerance (4 ULPs)
    house = make_wheelhouse([("1.0.0", {}), ("1.1.0", {}), ("1.2.0", {"bug": 6e-16}), ("1.3.0", {"bug": 6e-16})])
    res, data, _ = bisect(tmp_path / "v", house, cache_env)
    assert res.returncode == 1 and data["status"] == "bad-is-good"  # every result passes
    res, data, _ = bisect(tmp_path / "m", house, cache_env, "--metric", "ulp_err")
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["result"]["first_bad"]["version"] == "1.2.0" and data["rule"]["metric"] == "ulp_err"
    errors = {s["version"]: s["errors"]["loss"] for s in data["tested"]}
    assert errors["1.2.0"] > 2 * errors["1.1.0"] and errors["1.2.0"] > 1 and errors["1.1.0"] < 1


def test_the_pip_fallback_builds_and_skips_as_uv_does(make_wheelhouse, tmp_path):
    from xentcheck.bisect.install import find_installer
    try:
        find_installer("pip")
    except ValueError as exc:
        pytest.skip(str(exc))
    house = make_wheelhouse([("1.0.0", {}), ("1.1.0", {"requires": ("numpy", "toyxent-helper>=9")}), ("1.2.0", {"bug": BUG})])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    res, data, _ = bisect(tmp_path / "p", house, env, "--installer", "pip")
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["installer"] == "pip" and {s["env"]["installer"] for s in data["tested"]} == {"pip"}
    broken = next(s for s in data["tested"] if s["version"] == "1.1.0")
    assert broken["verdict"] == "skip" and "toyxent-helper" in broken["reason"]
    # the only version between the two could not be tested: the change is in it or in 1.2.0
    assert data["result"]["last_good"]["version"] == "1.0.0" and data["result"]["first_bad"]["version"] == "1.2.0"
    assert data["result"]["undecided"] == ["1.1.0"]
    assert "or in one of 1.1.0, which could not be tested" in res.stdout


def test_when_the_pins_cannot_hold_the_moved_packages_dependencies_are_freed(make_wheelhouse, cache_env, tmp_path):
    _uv_or_skip()
    # toyxent 1.1.0 needs toydep 2, where the good environment (1.0.0) has toydep 1: pinned, it cannot install
    house = make_wheelhouse([("1.0.0", {"requires": ("numpy", "toydep<2")}), ("1.1.0", {"requires": ("numpy", "toydep>=2")}),
                             ("1.2.0", {"requires": ("numpy", "toydep>=2"), "bug": BUG})])
    for v in ("1.0", "2.0"):
        wheels.plain_wheel(house, "toydep", v)
    res, data, _ = bisect(tmp_path / "r", house, cache_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [(s["version"], s["verdict"], s["env"]["policy"]) for s in data["tested"]] == [
        ("1.0.0", "good", "resolved"), ("1.1.0", "good", "relaxed"), ("1.2.0", "bad", "relaxed")]
    assert data["result"]["first_bad"]["version"] == "1.2.0"
    env = json.loads((Path(data["tested"][2]["env"]["path"]) / "env.json").read_text())
    assert env["freeze"]["toydep"] == "2.0"
    # toydep, a dependency of toyxent in the good environment, is left to the resolver; mpmath stays pinned
    assert "toydep" in env["requirements"] and "mpmath==1.3.0" in env["requirements"]
    assert "its dependencies unpinned" in (tmp_path / "r" / "bisect.md").read_text()
