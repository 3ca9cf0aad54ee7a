"""The linear-CE benchmark's code paths on tiny shapes (no time is asserted: a benchmark, not a timed test)."""

from __future__ import annotations

import numpy as np
import pytest

from xentcheck.problems.linear import bench as lb
from xentcheck.problems.linear.probe import REFERENCE, bench_case, bench_inputs


def test_parse_linear_shapes():
    assert lb.parse_linear_shapes("4096x2048x128256, 8x16x50") == [(4096, 2048, 128256), (8, 16, 50)]
    for bad in ("4096x2048", "8x0x50", "axbxc"):
        with pytest.raises(ValueError):
            lb.parse_linear_shapes(bad)


def test_bench_inputs_shapes_dtypes_and_range():
    x = bench_inputs(bench_case("bfloat16", 8, 16, 50))
    assert x.hidden.shape == (8, 16) and x.weight.shape == (50, 16) and x.labels.shape == (8,)
    assert x.hidden.dtype.name == x.weight.dtype.name == "bfloat16"
    a = 3 / np.sqrt(16)
    assert np.abs(x.weight.astype(np.float64)).max() <= a * (1 + 2 ** -8)
    assert ((0 <= x.labels) & (x.labels < 50)).all()
    again = bench_inputs(bench_case("bfloat16", 8, 16, 50))
    assert x.weight.tobytes() == again.weight.tobytes()


def test_requests_add_the_torch_float32_baseline():
    config = lb.LinearBenchConfig(shapes=[(8, 16, 50)], dtypes=["bfloat16"], variants=[("numpy", "linear_analytic", "eager")])
    got = [(r.get("backend"), r["impl"], r["dtype"]) for r in lb.requests(config)]
    assert got == [("numpy", "linear_analytic", "bfloat16"), (None, REFERENCE, "bfloat16"),
                   ("torch", "linear_then_cross_entropy", "float32")]
    config.reference = False
    assert [r["impl"] for r in lb.requests(config)] == ["linear_analytic"]


def test_reference_probe_sees_its_float64_outputs():
    """64 x 256 x 8192 float32: W is 8 MiB; the reference's dW and its scale are 16 MiB each in
    float64, so its peak above its inputs is at least 32 MiB and its outputs are counted."""
    config = lb.LinearBenchConfig(shapes=[(64, 256, 8192)], variants=[])
    row = lb.run_probe({"impl": REFERENCE, "mode": "", "dtype": "float32", "n": 64, "d": 256, "v": 8192,
                        "repeats": 0, "seed": 0}, config)
    assert row["status"] == "ok", row
    assert row["peak_reset"] is True
    assert row["inputs_bytes"] == 64 * 256 * 4 + 8192 * 256 * 4 + 64 * 8
    assert row["outputs_bytes"] >= 2 * 8192 * 256 * 8
    assert row["extra_bytes"] >= 2 * 8192 * 256 * 8
    assert row["peak_bytes"] >= row["extra_bytes"] and len(row["seconds"]) == 1
    [annotated] = lb.annotate([row])
    assert annotated["logits_bytes"] == 64 * 8192 * 4
    assert annotated["peak_over_io"] == pytest.approx(row["peak_bytes"] / (row["inputs_bytes"] + 4 + (64 + 8192) * 256 * 4))
    assert "time_over_torch_float32" not in annotated  # no baseline row


def test_annotate_sets_the_reference_against_torch_float32():
    rows = [{"status": "ok", "backend": "torch", "impl": "linear_then_cross_entropy", "mode": "eager",
             "dtype": "float32", "n": 2, "d": 4, "v": 8, "median": 0.5, "extra_bytes": 64, "peak_bytes": 200},
            {"status": "ok", "impl": REFERENCE, "mode": "", "dtype": "bfloat16", "n": 2, "d": 4, "v": 8,
             "median": 2.0, "extra_bytes": 100, "peak_bytes": 150, "inputs_bytes": 2 * 4 * 2 + 8 * 4 * 2 + 16},
            {"status": "error", "impl": REFERENCE, "dtype": "float32", "n": 2, "d": 4, "v": 8, "reason": "x"}]
    base, ref, err = lb.annotate(rows)
    assert base["extra_over_logits"] == 64 / (2 * 8 * 4)
    assert ref["backend_outputs_bytes"] == 4 + (2 * 4 + 8 * 4) * 2
    assert ref["peak_over_io"] == 150 / (96 + 84) and ref["memory_target_met"] is True
    assert ref["time_over_torch_float32"] == 4.0 and ref["time_target_met"] is False
    assert "logits_bytes" not in err
    assert any("error: x" in line for line in lb.summary_lines({"rows": rows}))


def test_cli_bench_linear_shapes(tmp_path):
    import json

    from click.testing import CliRunner

    from xentcheck.cli import cli
    res = CliRunner().invoke(cli, ["bench", "--linear-shapes", "8x16x50", "--backends", "numpy", "--impls",
                                   "linear_analytic", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "linear_timing.json").read_text())
    rows = {(r.get("backend") or "", r["impl"]): r for r in data["rows"]}
    assert set(rows) == {("numpy", "linear_analytic"), ("", REFERENCE), ("torch", "linear_then_cross_entropy")}
    assert all(r["status"] == "ok" for r in rows.values()), data["rows"]
    ref = rows["", REFERENCE]
    assert ref["time_over_torch_float32"] == pytest.approx(ref["median"] / rows["torch", "linear_then_cross_entropy"]["median"])
    assert "| reference | float32 | 8x16x50 |" in (tmp_path / "linear_timing.md").read_text()


def test_reference_probe_compares_a_streamed_dw():
    """With dW streamed (forced at a small shape) the reference row holds no dW of its own: its
    outputs are loss, dh, db and their scales; the backend's outputs (dtype-sized, made with the
    inputs) are judged by evaluate (a constant 1e-3 is wrong: fail)."""
    n, d, v = 64, 256, 8192
    config = lb.LinearBenchConfig(shapes=[(n, d, v)], variants=[])
    row = lb.run_probe({"impl": REFERENCE, "mode": "", "dtype": "float32", "n": n, "d": d, "v": v, "repeats": 0,
                        "seed": 0, "stream_dw_entries": 0}, config)
    assert row["status"] == "ok", row
    assert row["streamed_dw"] is True and row["verdict"] == "fail"
    assert row["compared_bytes"] == 4 + (n + v) * d * 4
    assert row["outputs_bytes"] < v * d * 8  # neither dW nor its scale held
