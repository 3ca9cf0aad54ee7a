"""`xentcheck bench --linear-shapes`: linear-CE workloads timed through the worker's timing message,
as plain CE's shapes are (no time is asserted: a benchmark, not a timed test)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import run_cli, run_here
from xentcheck.backends.registry import create
from xentcheck.core.cases import Case
from xentcheck.problems import DEFAULT_KIND
from xentcheck.problems.linear import LINEAR
from xentcheck.problems.linear.cases import MAX_D
from xentcheck.run import worker
from xentcheck.run.protocol import TimeRequest
from xentcheck.timing import bench
from xentcheck.timing.measure import QUICK_ENV

TIMING = LINEAR.timing
QUICK = {QUICK_ENV: "1"}  # timings of no meaning, in milliseconds: these tests check what is written


def test_parse_linear_shapes():
    assert bench.parse_shapes("4096x2048x128256, 8x16x50", LINEAR.kind) == [(4096, 2048, 128256), (8, 16, 50)]
    for bad in ("4096x2048", "8x0x50", "axbxc", "8x16x1"):
        with pytest.raises(ValueError, match="linear shape"):
            bench.parse_shapes(bad, LINEAR.kind)


def test_a_bench_shape_is_a_workload_beyond_the_suite_limits():
    """The record turns N x D x V into a linear case whose id the worker parses unvalidated and the
    record checks: D above the suite's MAX_D is a workload, not a suite case."""
    case = TIMING.workload("float32", (2, MAX_D + 1, 3), "index")
    assert case.kind == LINEAR.kind and (case.n, case.k) == (2, 3) and TIMING.fields(case) == {"d": MAX_D + 1, "v": 3}
    with pytest.raises(ValueError):
        Case.from_id(case.id)  # not a suite case
    TIMING.check(Case.from_id(case.id, validate=False))
    with pytest.raises(ValueError, match="timing workload"):
        TIMING.check(Case.from_id("scale1e+0_float32_2x3_lin4_index_mean_opt-b", validate=False))
    assert TIMING.label(case) == f"2 x {MAX_D + 1} x 3"
    # read h and W, write dh and dW (float32), int64 labels, the loss
    assert TIMING.floor_bytes(case) == 2 * (2 + 3) * (MAX_D + 1) * 4 + 2 * 8 + 4


def test_workload_inputs_shapes_dtypes_and_range():
    x = TIMING.inputs(TIMING.workload("bfloat16", (8, 16, 50), "index"), 0)
    assert x.hidden.shape == (8, 16) and x.weight.shape == (50, 16) and x.labels.shape == (8,) and x.bias is None
    assert x.hidden.dtype.name == x.weight.dtype.name == "bfloat16"
    a = 3 / np.sqrt(16)
    assert np.abs(x.weight.astype(np.float64)).max() <= a * (1 + 2 ** -8)
    assert ((0 <= x.labels) & (x.labels < 50)).all()
    again = TIMING.inputs(TIMING.workload("bfloat16", (8, 16, 50), "index"), 0)
    assert x.weight.tobytes() == again.weight.tobytes()


def test_the_worker_times_a_workload_outside_the_suite():
    backend = create("numpy")
    backend.load()
    case = TIMING.workload("float32", (2, MAX_D + 1, 3), "index")
    reply = worker.time_case(backend, TimeRequest(case.id, 0, "cpu", min_block=0.001, blocks=2, warmup=0.001))
    [timed] = reply.results
    assert timed.status == "ok", timed.error
    assert timed.variant["impl"] == "linear_analytic" and timed.phases["forward_backward"]["median"] > 0
    assert timed.peak_rss_bytes and timed.rss_start_bytes and timed.peak_rss_bytes >= timed.rss_start_bytes
    with pytest.raises(ValueError, match="timing workload"):  # answered as an error by the worker's loop
        worker.time_case(backend, TimeRequest("scale1e+0_float32_2x3_lin4_index_mean_opt-b", 0, "cpu"))


def test_linear_shapes_alone_default_to_torchs_implementations():
    assert bench.default_backends({LINEAR.kind: [(8, 16, 50)]}) == ["torch"]
    assert bench.default_backends({DEFAULT_KIND: [(8, 10)], LINEAR.kind: [(8, 16, 50)]}) is None
    assert TIMING.default_impls == ("linear_then_cross_entropy", "linear_cross_entropy",
                                    "linear_cross_entropy_accurate_c16")


def test_too_big_a_workload_is_skipped_by_its_records_estimate():
    case = TIMING.workload("float32", (4096, 2048, 128256), "index")
    assert bench.too_big(case, 64 << 30) is None  # about 11.6 GB
    why = bench.too_big(case, 8 << 30)
    assert why and "4 x the logits N x V" in why and "GiB available" in why


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_cli_bench_linear_shapes_through_the_worker(tmp_path):
    """64 x 32 x 1000 through the CLI: torch's composition and NumPy's analytic variant timed by
    their workers; every figure bench --linear-shapes gave (forward+backward seconds, peak memory
    and its ratio to the logits) in timing.json, timing.md, timing.png and report.html."""
    out = tmp_path / "o"
    res = run_here("bench", "--linear-shapes", "64x32x1000", "--backends", "numpy,torch", "--impls",
                   "linear_analytic,linear_then_cross_entropy", "--dtypes", "float32,bfloat16", "--out", str(out),
                   "--no-progress", env=QUICK)
    assert res.returncode == 0, res.stderr
    data = json.loads((out / "timing.json").read_text())
    assert data["config"]["shapes"] == {LINEAR.kind: ["64x32x1000"]} and "linear-CE" in data["method"]["floor"]
    rows = {(r["backend"], r["impl"], r["dtype"]): r for r in data["rows"]}
    assert set(rows) == {(b, i, d) for b, i in (("numpy", "linear_analytic"), ("torch", "linear_then_cross_entropy"))
                         for d in ("float32", "bfloat16")}, list(rows)
    for (_, _, dtype), r in rows.items():
        assert r["status"] == "ok", r
        assert (r["kind"], r["n"], r["d"], r["v"], r["k"], r["shape"]) == (LINEAR.kind, 64, 32, 1000, 1000, "64 x 32 x 1000")
        # the worker's path: the workload's id in a TimeRequest, timed by measure() (first call and blocks)
        assert Case.from_id(r["case_id"], validate=False).kind == LINEAR.kind
        fb = r["phases"]["forward_backward"]
        assert all(_finite_positive(fb[k]) for k in ("median", "min", "first")) and fb["blocks"] == 3
        assert fb["floor_ratio"] == pytest.approx(fb["median"] / r["floor_seconds"])
        if r["backend"] == "torch":  # its timing_fns: each phase on tensors made once (the composition's)
            assert set(r["phases"]) == {"forward", "backward", "forward_backward"} and not r.get("notes")
        else:  # no timing_fns: forward+backward through run_variant, said in a note
            assert set(r["phases"]) == {"forward_backward"} and any("run_variant" in n for n in r["notes"])
        # memory: the worker's peak, above its resident set with the inputs, over the logits N x V
        size = 2 if dtype == "bfloat16" else 4
        assert r["logits_bytes"] == 64 * 1000 * size
        assert _finite_positive(r["peak_rss_bytes"]) and _finite_positive(r["rss_start_bytes"])
        assert isinstance(r["peak_reset"], bool)
        assert r["extra_bytes"] == r["peak_rss_bytes"] - r["rss_start_bytes"]
        assert r["extra_over_logits"] == pytest.approx(r["extra_bytes"] / r["logits_bytes"])
    md = (out / "timing.md").read_text()
    assert "| torch | linear_then_cross_entropy | eager | float32 | 64 x 32 x 1000 |" in md
    assert (out / "timing.png").stat().st_size > 0 and "Timing (xentcheck bench)" in (out / "report.html").read_text()


def test_cli_bench_linear_shapes_bad_input(tmp_path):
    res = run_cli("bench", "--linear-shapes", "64x32", "--out", str(tmp_path / "a"))
    assert res.returncode == 2 and "malformed linear shape '64x32'" in res.stderr
    res = run_cli("bench", "--linear-shapes", "64x32x1000", "--backends", "nosuch", "--out", str(tmp_path / "b"))
    assert res.returncode == 2 and "unknown backend 'nosuch'" in res.stderr
    # too big for this machine's memory: skipped with its reason, as plain CE's shapes are
    out = tmp_path / "c"
    res = run_here("bench", "--linear-shapes", "1000000x100000x1000000", "--backends", "numpy", "--out", str(out),
                   "--no-progress", env=QUICK)
    assert res.returncode == 0, res.stderr
    [row] = json.loads((out / "timing.json").read_text())["rows"]
    assert row["status"] == "skipped" and "GiB available" in row["reason"] and row["impl"] == "linear_analytic"
    assert "skipped: needs about" in (out / "timing.md").read_text()


REFUSING = """
import numpy as np
from xentcheck.backends.base import Backend, Output


class Refusing(Backend):
    name = "refusing"

    def unsupported(self, case, device):
        raise RuntimeError("cannot say")

    def compute(self, case, inputs, device):
        return Output(np.zeros(()), np.zeros(inputs.logits.shape))
"""


def test_a_request_the_worker_answers_with_an_error_is_an_error_row(tmp_path):
    """The worker's loop answers an exception with an error; bench records it per variant and
    goes on with the same worker (no restart, no 'timed out')."""
    plugin = tmp_path / "refusing.py"
    plugin.write_text(REFUSING)
    out = tmp_path / "o"
    res = run_here("bench", "--backend-file", str(plugin), "--shapes", "2x3,4x5", "--out", str(out), "--no-progress",
                   env=QUICK)
    assert res.returncode == 0, res.stderr
    rows = json.loads((out / "timing.json").read_text())["rows"]
    assert [(r["shape"], r["status"]) for r in rows] == [("2 x 3", "error"), ("4 x 5", "error")]
    assert all(r["reason"] == "worker: RuntimeError: cannot say" for r in rows), rows


_TORCH_PHASES = """
from xentcheck.backends.registry import create
from xentcheck.problems.linear import LINEAR
backend = create("torch")
backend.load()
case = LINEAR.timing.workload("float32", (4, 8, 16), "index")
inputs = LINEAR.timing.inputs(case, 0)
for v in (v for v in backend.variants() if v.kind == LINEAR.kind):
    fns = backend.timing_fns(v, case, inputs.copy(), "cpu")
    for fn in fns.values():
        fn(), fn()  # twice: the kept forward is replayed, not consumed
    print(v.impl, " ".join(sorted(fns)))
"""


def test_torch_linear_timing_fns_run_every_phase():
    """In a process of its own: torch beside the TensorFlow and JAX an xdist worker may hold has
    killed the worker."""
    import subprocess
    import sys

    from tests.conftest import require
    require("torch")
    done = subprocess.run([sys.executable, "-c", _TORCH_PHASES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    phases = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert "linear_then_cross_entropy" in phases and len(phases) >= 2
    for impl, names in phases.items():
        fused = impl != "linear_then_cross_entropy"  # F.linear_cross_entropy: no replayed backward
        assert names == ("forward forward_backward" if fused else "backward forward forward_backward"), impl
