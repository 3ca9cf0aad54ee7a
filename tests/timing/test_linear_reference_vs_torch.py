"""benchmarks/linear_reference_vs_torch.py: the reference against torch's float32 forward+backward
in one run; no ratio from a side that failed, made no call or (the reference) compared nothing;
and its probe (benchmarks/linear_probe.py), which measures the reference side's time and memory.
No time is asserted (a benchmark, not a timed test)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("linear_reference_vs_torch",
                                               ROOT / "benchmarks" / "linear_reference_vs_torch.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["linear_reference_vs_torch"] = bench
_spec.loader.exec_module(bench)
lp = bench.lp  # benchmarks/linear_probe.py, as the benchmark imports it

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
    floor = data["products_alone"]  # the third side: the reference's products alone
    assert floor["status"] == "ok" and floor["impl"] == lp.PRODUCTS
    assert data["floor_ratio"] == floor["median"] / torch_row["median"] > 0
    parts = ref_row["parts"]  # the reference and the comparison, timed apart
    assert set(parts) == {"reference", "comparison"} and all(p["seconds"] >= 0 for p in parts.values())
    assert sum(p["seconds"] for p in parts.values()) <= ref_row["median"]
    for row in (torch_row, ref_row):
        assert row["hwm"] > 0 and len(row["load_average"]["before"]) == 3
    assert data["machine"]["cpu_count"] >= 1 and "cpu_flags" in data["machine"]
    assert data["numpy_blas"].get("name") or data["numpy_blas"].get("error")


def test_a_malformed_shape_is_a_usage_error(capsys):
    assert bench.main(["--shape", "8x16"]) == 2
    assert "malformed linear shape" in capsys.readouterr().err


def test_reference_probe_sees_its_float64_outputs():
    """64 x 256 x 8192 float32: W is 8 MiB; the reference's dW and its scale are 16 MiB each in
    float64, so its peak above its inputs is at least 32 MiB and its outputs are counted."""
    row = lp.run_probe({"impl": lp.REFERENCE, "mode": "", "dtype": "float32", "n": 64, "d": 256, "v": 8192},
                       lp.ProbeConfig())
    assert row["status"] == "ok", row
    assert row["peak_reset"] is True
    assert row["inputs_bytes"] == 64 * 256 * 4 + 8192 * 256 * 4 + 64 * 8
    assert row["outputs_bytes"] >= 2 * 8192 * 256 * 8
    assert row["extra_bytes"] >= 2 * 8192 * 256 * 8
    assert row["peak_bytes"] >= row["extra_bytes"] and len(row["seconds"]) == 1
    assert lp.peak_over_io(row) == pytest.approx(row["peak_bytes"] / (row["inputs_bytes"] + 4 + (64 + 8192) * 256 * 4))


def test_reference_probe_compares_a_streamed_dw():
    """With dW streamed (forced at a small shape) the reference row holds no dW of its own: its
    outputs are loss, dh, db and their scales; the backend's outputs (dtype-sized, made with the
    inputs) are judged by evaluate (a constant 1e-3 is wrong: fail)."""
    n, d, v = 64, 256, 8192
    row = lp.run_probe({"impl": lp.REFERENCE, "mode": "", "dtype": "float32", "n": n, "d": d, "v": v,
                        "stream_dw_entries": 0}, lp.ProbeConfig())
    assert row["status"] == "ok", row
    assert row["streamed_dw"] is True and row["verdict"] == "fail"
    assert row["compared_bytes"] == 4 + (n + v) * d * 4
    assert row["outputs_bytes"] < v * d * 8  # neither dW nor its scale held


def test_a_probe_that_fails_is_a_row_with_its_reason():
    row = lp.run_probe({"backend": "nosuch", "impl": "x", "mode": "eager", "dtype": "float32", "n": 2, "d": 4, "v": 8},
                       lp.ProbeConfig())
    assert row["status"] == "error" and "nosuch" in row["reason"]
