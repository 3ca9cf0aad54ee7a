"""benchmarks/linear_reference_vs_torch.py: the reference against torch's float32 forward+backward
in one run; no ratio from a side that failed, made no call or (the reference) compared nothing.
No time is asserted (a benchmark, not a timed test)."""

from __future__ import annotations

import importlib.util
import json
import sys

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("linear_reference_vs_torch",
                                               ROOT / "benchmarks" / "linear_reference_vs_torch.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["linear_reference_vs_torch"] = bench
_spec.loader.exec_module(bench)

OK_TORCH = {"status": "ok", "seconds": [2.0], "median": 2.0}
OK_REF = {"status": "ok", "seconds": [5.0], "median": 5.0, "verdict": "fail"}


def test_a_side_that_failed_or_made_no_call_gives_no_ratio():
    assert bench.refusal(OK_TORCH, OK_REF) is None
    why = bench.refusal({"status": "error", "reason": "probe failed: MemoryError"}, OK_REF)
    assert why == "the torch float32 side failed: probe failed: MemoryError"
    assert bench.refusal(OK_TORCH, {**OK_REF, "seconds": []}) == "the reference side made no call"
    assert bench.refusal(OK_TORCH, {**OK_REF, "verdict": None}) == "the reference side made no comparison"


def test_a_tiny_run_records_both_sides_the_ratio_and_the_machine(tmp_path):
    out = tmp_path / "r.json"
    assert bench.main(["--shape", "8x16x64", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    torch_row, ref_row = data["torch_float32"], data["reference"]
    assert torch_row["status"] == ref_row["status"] == "ok", (torch_row.get("reason"), ref_row.get("reason"))
    assert (ref_row["n"], ref_row["d"], ref_row["v"]) == (8, 16, 64) and data["shape"] == "8x16x64"
    assert data["ratio"] == ref_row["median"] / torch_row["median"] > 0
    assert "refused" not in data and data["target"] == 2.0
    for row in (torch_row, ref_row):
        assert row["hwm"] > 0 and len(row["load_average"]["before"]) == 3
    assert data["machine"]["cpu_count"] >= 1 and "cpu_flags" in data["machine"]
    assert data["numpy_blas"].get("name") or data["numpy_blas"].get("error")


def test_a_malformed_shape_is_a_usage_error(capsys):
    assert bench.main(["--shape", "8x16"]) == 2
    assert "malformed linear shape" in capsys.readouterr().err
