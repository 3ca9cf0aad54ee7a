"""--shard I/N and `xentcheck merge`: the merged shards equal the unsharded run."""

import json

import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.core.cases import default_suite
from xentcheck.regress.shards import parse, select

ARGS = ("--backends", "numpy", "--backend-file", str(ROOT / "tests/helpers/toy_backends/wrong_gradient.py"),
        "--dtypes", "float32,float64", "--cases", "14", "--no-progress")


def _records(out):
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("timing", None)
    return recs


def test_merged_shards_equal_the_unsharded_run(tmp_path):
    full = tmp_path / "full"
    assert run_here("run", *ARGS, "--out", str(full)).returncode == 1
    shards = []
    for i in (1, 2, 3):
        d = tmp_path / f"shard{i}"
        res = run_here("run", *ARGS, "--shard", f"{i}/3", "--out", str(d))
        assert res.returncode in (0, 1), res.stderr
        shards.append(d)
    sizes = [len(_records(d)) for d in shards]
    assert sum(sizes) == len(_records(full)) and min(sizes) > 0
    merged = tmp_path / "merged"
    res = run_here("merge", str(merged), *map(str, reversed(shards)))  # any order of folders
    assert res.returncode == 1, res.stdout + res.stderr  # the wrong gradient still fails
    assert _records(merged) == _records(full)
    s_full, s_merged = (json.loads((d / "summary.json").read_text()) for d in (full, merged))
    for key in ("results", "counts", "exit_status", "pass_rates", "worst_loss", "worst_grad", "tolerances"):
        assert s_merged[key] == s_full[key], key
    assert s_merged["config"]["n_cases"] == s_full["config"]["n_cases"] == 14
    assert "shard" not in s_merged["config"]
    assert (merged / "report.md").read_text().split("## Tolerances")[0] == \
        (full / "report.md").read_text().split("## Tolerances")[0]
    assert (merged / "results.csv").read_text().count("\n") == (full / "results.csv").read_text().count("\n")


def test_merge_refuses_incomplete_or_foreign_shards(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_here("run", "--backends", "numpy", "--cases", "4", "--shard", "1/2", "--out", str(a), "--no-progress")
    res = run_here("merge", str(tmp_path / "m"), str(a))
    assert res.returncode == 2 and "missing: 2" in res.stderr
    run_here("run", "--backends", "numpy", "--cases", "4", "--shard", "2/2", "--seed", "5", "--out", str(b),
            "--no-progress")
    res = run_here("merge", str(tmp_path / "m"), str(a), str(b))
    assert res.returncode == 2 and "seed differ" in res.stderr


@pytest.mark.parametrize("value", ["0/3", "4/3", "a/b", "3", "1/0"])
def test_bad_shard_exits_2(tmp_path, value):
    res = run_cli("run", "--backends", "numpy", "--cases", "2", "--shard", value, "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--shard" in res.stderr, res.stderr


def test_shards_partition_the_suite():
    cases = default_suite()
    parts = [select(cases, i, 4) for i in range(1, 5)]
    assert sorted(c.id for p in parts for c in p) == sorted(c.id for c in cases)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parse(" 2 / 5 ") == (2, 5)
