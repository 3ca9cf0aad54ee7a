"""The full default run, as README's first command runs it: opt-in (`-m slow`, ~2 min)."""

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_default_run_finds_what_readme_says(tmp_path):
    out = tmp_path / "o"
    res = run_cli("run", "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 129 * 4
    bad = {(r["case_id"], r["backend"]) for r in recs if r["verdict"] != "pass"}
    # NaN loss with probability targets on masked classes, in all three frameworks
    for fw in ("torch", "tensorflow", "jax"):
        assert ("masked_float32_64x100_onehot_sum", fw) in bad
    # optax integer labels at large offsets
    assert ("offset1e+8_float32_128x1000_index_mean", "jax") in bad
    # float16 mean overflow
    assert ("scale1e+4_float16_64x100_onehot_mean", "torch") in bad
    # the NumPy analytic implementation passes everything
    assert not [b for b in bad if b[1] == "numpy"]
    assert not [r for r in recs if r["verdict"] in ("error", "crashed", "timeout")]
