"""examples/ci/xentcheck.yml: its jobs hand folders to each other under the names they expect,
and its run -> merge -> compare sequence works, simulated locally for two "versions" (a setting
that changes numerics stands in for the torch version)."""

import re
import shutil

import pytest

from tests.conftest import ROOT, run_cli

WORKFLOW = ROOT / "examples/ci/xentcheck.yml"
SLOPPY = str(ROOT / "tests/helpers/toy_backends/env_sloppy.py")


def test_workflow_artifacts_and_paths_line_up():
    text = WORKFLOW.read_text()
    shards = re.search(r"shard: \[([\d, ]+)\]", text)[1].split(",")
    assert f"SHARDS: {len(shards)}" in text
    assert [int(s) for s in shards] == list(range(1, len(shards) + 1))  # --shard is 1-based
    assert "name: xentcheck-torch-${{ matrix.torch }}-shard-${{ matrix.shard }}" in text
    assert "pattern: xentcheck-torch-${{ matrix.torch }}-shard-*" in text
    assert '--out "out/torch-${{ matrix.torch }}-shard-${{ matrix.shard }}"' in text
    assert 'xentcheck merge "merged/torch-${{ matrix.torch }}" shards/torch-${{ matrix.torch }}-shard-*' in text
    assert "name: xentcheck-merged-torch-${{ matrix.torch }}" in text and "pattern: xentcheck-merged-torch-*" in text
    versions = re.search(r'torch: \[("[^\]]+)\]', text)[1]
    baseline = re.search(r'BASELINE_TORCH: "([^"]+)"', text)[1]
    assert f'"{baseline}"' in versions
    assert 'xentcheck compare "merged/torch-${BASELINE_TORCH}" merged/torch-' in text


@pytest.mark.slow  # end to end, tens of seconds; its parts have faster tests
def test_run_merge_compare_as_the_workflow_does(tmp_path):
    for version, sloppy in (("base", "0"), ("cand", "1")):
        for shard in (1, 2, 3):
            out = tmp_path / "out" / f"torch-{version}-shard-{shard}"
            res = run_cli("run", "--backend-file", SLOPPY, "--dtypes", "float32", "--cases", "8", "--shard",
                          f"{shard}/3", "--known", str(ROOT / "known-differences.toml"), "--no-progress",
                          "--out", str(out), env={"XENTCHECK_TEST_SLOPPY": sloppy})
            assert res.returncode in (0, 1), res.stderr
        shutil.copytree(tmp_path / "out", tmp_path / "shards", dirs_exist_ok=True)  # download-artifact
        folders = sorted(str(p) for p in (tmp_path / "shards").glob(f"torch-{version}-shard-*"))
        res = run_cli("merge", str(tmp_path / "merged" / f"torch-{version}"), *folders)
        assert res.returncode == (0 if version == "base" else 1), res.stdout + res.stderr
    res = run_cli("compare", str(tmp_path / "merged/torch-base"), str(tmp_path / "merged/torch-cand"),
                  "--markdown", str(tmp_path / "compare.md"), "--json", str(tmp_path / "compare.json"))
    assert res.returncode == 1 and "regressions" in res.stdout
    assert "REGRESSIONS FOUND" in (tmp_path / "compare.md").read_text()
