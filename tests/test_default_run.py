"""The full default run, as README's first command runs it: opt-in (`-m slow`, ~2 min)."""

import json

import pytest

from tests.conftest import run_cli


def expected_records() -> dict[str, int]:
    """Records per backend of a default run, from the suite and the backends' variants: one per
    selected variant that takes the case's label form and kind, one (skipped) where none does;
    the runner's rule (xentcheck.run.runner.Runner._slot_variants)."""
    from dataclasses import asdict

    from xentcheck.backends.registry import FULL_SUITE_ONLY, create
    from xentcheck.core.dtypes import DTYPE_NAMES
    from xentcheck.run.plan import known_backends, select_cases, select_variants

    cases = select_cases(list(DTYPE_NAMES), None, ())
    out = {}
    for spec in (n for n in known_backends() if n not in FULL_SUITE_ONLY):  # Keras: --suite full only
        backend = create(spec)
        chosen = select_variants([asdict(v) for v in backend.variants()], "default", None, None)
        out[backend.name] = sum(max(1, sum(c.labels in v["label_forms"] and v["kind"] == c.kind for v in chosen))
                                for c in cases)
    return out


@pytest.mark.slow
def test_default_run_finds_what_readme_says(tmp_path):
    out = tmp_path / "o"
    res = run_cli("run", "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    per_backend = {}
    for r in recs:
        per_backend[r["backend"]] = per_backend.get(r["backend"], 0) + 1
    assert per_backend == expected_records()
    # skipped: a linear-CE variant that takes no class weights, ignore_index or smoothing
    bad = {(r["case_id"], r["backend"]) for r in recs if r["verdict"] not in ("pass", "skipped")}
    # NaN loss with probability targets on masked classes, in all three frameworks
    for fw in ("torch", "tensorflow", "jax"):
        assert ("masked_float32_64x100_onehot_sum", fw) in bad
    # optax integer labels at large offsets
    assert ("offset1e+8_float32_128x1000_index_mean", "jax") in bad
    # float16 mean overflow
    assert ("scale1e+4_float16_64x100_onehot_mean", "torch") in bad
    # linear-CE: torch's label-smoothing term overflows float16 (docs/linear-ce.md)
    assert ("scale1e+1_float16_24x777_lin16_index_sum_opt-w+ign+ls", "torch") in bad
    # the NumPy analytic implementation passes everything
    assert not [b for b in bad if b[1] == "numpy"]
    assert not [r for r in recs if r["verdict"] in ("error", "crashed", "timeout")]
