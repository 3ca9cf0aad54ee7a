"""Timing: statistics, the bandwidth floor, each adapter's timing callables, and `xentcheck bench` end to end."""

import importlib.util
import json

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, run_here
from xentcheck.backends.registry import BUILTIN, create
from xentcheck.core.cases import Case, make_inputs
from xentcheck.run.environment import STEADY_ALLOCATOR_ENV, allocator_env
from xentcheck.timing import bench
from xentcheck.timing.bench import parse_shapes, too_big
from xentcheck.timing.measure import QUICK_ENV, floor_bytes, measure, summarize

QUICK = {QUICK_ENV: "1"}  # timings of no meaning, in milliseconds: these tests check what is written

FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "optax"}
IN_PROCESS = [n for n in BUILTIN if not n.startswith("keras-")]  # Keras: one backend a process (test_keras_backend.py)


def test_summary_statistics_and_noise_flag():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0], first=9.0, calls_per_block=4)
    assert (s["median"], s["iqr"], s["min"], s["first"], s["blocks"]) == (3.0, 2.0, 1.0, 9.0, 5)
    assert s["noisy"]  # IQR / median = 0.67
    assert not summarize([1.0, 1.01, 1.02, 1.03, 1.04], 1.0, 1)["noisy"]  # 0.02 / 1.02


def test_measure_counts_first_call_apart_and_fills_blocks():
    calls = []
    s = measure(lambda: calls.append(1), min_block=0.001, blocks=4, warmup=0.001)
    assert s["blocks"] == 4 and s["calls_per_block"] >= 1
    assert len(calls) >= 1 + 1 + 4 * s["calls_per_block"]  # first, warm-up, blocks
    assert s["min"] <= s["median"]


def test_quick_timing_takes_milliseconds_and_says_so(monkeypatch):
    from xentcheck.timing.measure import copy_bandwidth, quick

    monkeypatch.setenv(QUICK_ENV, "1")
    calls = []
    s = measure(lambda: calls.append(1))  # the defaults: 7 blocks of 0.2 s after 0.2 s of warm-up
    assert s["blocks"] == 3 and quick()
    assert copy_bandwidth()["array_bytes"] == 1 << 20
    monkeypatch.setenv(QUICK_ENV, "0")
    assert not quick() and copy_bandwidth.__defaults__[0] == 1 << 28


def test_floor_bytes():
    # 4096 x 32000 float32, index labels: logits + gradient 8 bytes per element, int64 label + float32 loss per row
    assert floor_bytes(4096, 32000, "float32") == 4096 * 32000 * 8 + 4096 * 12
    assert floor_bytes(2, 3, "bfloat16", "onehot") == 2 * 3 * 4 + 2 * (3 * 2 + 2)
    assert floor_bytes(2, 3, "float32", grad_bytes=8) == 2 * 3 * 12 + 2 * 12


def test_shapes_and_memory_guard():
    assert parse_shapes("8x10, 1024X32000") == [(8, 10), (1024, 32000)]
    with pytest.raises(ValueError):
        parse_shapes("8by10")
    big = Case("scale1e+0", "float32", 8192, 128256, "index", "mean")
    assert "GiB" in too_big(big, 8 << 30) and too_big(big, None) is None
    assert too_big(Case("scale1e+0", "float32", 8, 10, "index", "mean"), 8 << 30) is None


@pytest.mark.parametrize("name", IN_PROCESS)
def test_timing_fns_run_every_phase(name):
    if importlib.util.find_spec(FRAMEWORK_MODULE[name]) is None:
        pytest.skip(f"{name} is not installed")
    b = create(name)
    b.load()
    for v in b.variants():
        if v.opt_in or v.kind != "ce":  # linear-CE variants are timed on their own shapes
            continue
        labels = "index" if "index" in v.label_forms else "soft"
        case = Case("scale1e+0", "float32", 4, 6, labels, "mean")
        fns = b.timing_fns(v, case, make_inputs(case, 0), "cpu")
        graph_mode = name == "tensorflow" and v.mode != "eager"
        assert set(fns) == ({"forward", "forward_backward"} if graph_mode else {"forward", "backward", "forward_backward"})
        for fn in fns.values():
            fn(), fn()  # twice: the kept forward is replayed, not consumed


def test_numpy_backward_phase_is_the_gradient():
    b = create("numpy")
    case = Case("scale1e+0", "float32", 5, 7, "soft", "mean")
    inputs = make_inputs(case, 1)
    fns = b.timing_fns(b.variants()[0], case, inputs, "cpu")
    assert np.array_equal(fns["backward"](), b.compute(case, inputs, "cpu").grad)


def test_bench_end_to_end_with_a_plugin_without_timing_fns(tmp_path):
    out = tmp_path / "o"
    res = run_here("bench", "--backends", "numpy", "--backend-file", str(ROOT / "examples" / "my_backend.py"),
                   "--shapes", "8x10,3x50", "--dtypes", "float32,float16", "--min-block", "0.001", "--blocks", "3",
                   "--out", str(out), "--no-progress", env=QUICK)
    assert res.returncode == 0, res.stderr
    data = json.loads((out / "timing.json").read_text())
    assert data["threads"] == 1 and data["bandwidth"]["bytes_per_second"] > 0
    assert data["bandwidth"]["array_bytes"] == 1 << 20 and "mean nothing" in data["method"]["quick"]
    assert data["allocator"] == {"mode": "steady", "env": STEADY_ALLOCATOR_ENV}
    rows = {(r["backend"], r["dtype"], r["n"], r["k"]): r for r in data["rows"]}
    assert len(rows) == 8
    np_row = rows[("numpy", "float32", 8, 10)]
    assert set(np_row["phases"]) == {"forward", "backward", "forward_backward"}
    fb = np_row["phases"]["forward_backward"]
    assert fb["floor_ratio"] == pytest.approx(fb["median"] / np_row["floor_seconds"])
    assert np_row["floor_bytes"] == floor_bytes(8, 10, "float32") and np_row["peak_rss_bytes"] > 0
    plugin = [r for r in data["rows"] if r["backend"] != "numpy"]
    assert {r["status"] for r in plugin if r["dtype"] == "float16"} == {"skipped"}  # it declares float32/float64
    ok = [r for r in plugin if r["status"] == "ok"]
    assert ok and all(set(r["phases"]) == {"forward_backward"} and r["notes"] for r in ok)
    html = (out / "report.html").read_text()
    assert "Timing (xentcheck bench)" in html and (out / "timing.png").stat().st_size > 0
    assert "| numpy | analytic | eager | float32 | 8 x 10 |" in (out / "timing.md").read_text()
    assert "**Quick timing**" in (out / "timing.md").read_text()


def test_bench_usage_errors(tmp_path):
    res = run_cli("bench", "--shapes", "8by10", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "malformed shape" in res.stderr


def test_run_timing_times_the_runs_own_shapes(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy", "--case", "scale1e+0_float32_4x8_index_mean", "--timing",
                   "--out", str(out), "--no-progress", env=QUICK)
    assert res.returncode == 0, res.stderr
    rows = json.loads((out / "timing.json").read_text())["rows"]
    assert [(r["backend"], r["dtype"], r["n"], r["k"], r["status"]) for r in rows] == [("numpy", "float32", 4, 8, "ok")]
    assert "Timing (xentcheck bench)" in (out / "report.html").read_text()


def test_run_timing_times_each_kind_at_its_own_shape(tmp_path):
    """A linear-CE case is timed as linear-CE at N x D x V (not as plain CE at its N x V logits), and
    a kind bench cannot time is named, not timed as plain CE."""
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy", "--case", "scale1e+0_float32_4x8_index_mean",
                   "--case", "scale1e+0_float32_3x16_lin5_index_mean", "--case",
                   "scale1e+0_float32_4x10_kd-fkl_soft_batchmean", "--timing", "--out", str(out), "--no-progress",
                   env=QUICK)
    assert res.returncode == 0, res.stderr
    rows = json.loads((out / "timing.json").read_text())["rows"]
    assert sorted((r["kind"], r["shape"], r["status"]) for r in rows) == [("ce", "4 x 8", "ok"),
                                                                          ("linear", "3 x 5 x 16", "ok")]
    assert "distillation cases are not timed" in res.stdout


def test_the_timing_workers_get_the_allocator_setting(monkeypatch):
    config = bench.BenchConfig(backends=["numpy"], threads=2)
    env = bench.timing_worker_env(config)
    assert env["OMP_NUM_THREADS"] == "2" and env["MALLOC_TRIM_THRESHOLD_"] == str(1 << 28)
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(1 << 25)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")  # the caller's own setting wins
    assert bench.timing_worker_env(config)["MALLOC_TRIM_THRESHOLD_"] == "12345"
    config.allocator = "as-is"
    assert "MALLOC_MMAP_THRESHOLD_" not in bench.timing_worker_env(config)
    with pytest.raises(ValueError, match="unknown allocator"):
        allocator_env("jemalloc")


def test_a_timing_worker_runs_with_the_setting_and_the_report_says_so(tmp_path, monkeypatch):
    """The worker's own environment (read back through a plugin's hello) and timing.md."""
    for key in STEADY_ALLOCATOR_ENV:
        monkeypatch.delenv(key, raising=False)
    plugin = tmp_path / "envprobe.py"
    plugin.write_text(ENV_PROBE)
    for mode, want in (("steady", str(1 << 25)), ("as-is", None)):
        out = tmp_path / mode
        res = run_here("bench", "--backend-file", str(plugin), "--allocator", mode, "--shapes", "2x3", "--min-block", "0.001",
                       "--blocks", "3", "--out", str(out), "--no-progress", env=QUICK)
        assert res.returncode == 0, res.stderr
        data = json.loads((out / "timing.json").read_text())
        assert data["backends"][0]["settings"]["MALLOC_MMAP_THRESHOLD_"] == want
        assert data["allocator"]["mode"] == mode
        md = (out / "timing.md").read_text()
        steady = f"allocator steady (MALLOC_TRIM_THRESHOLD_={1 << 28}, MALLOC_MMAP_THRESHOLD_={1 << 25})"
        assert (steady in md) == (mode == "steady")


ENV_PROBE = """
import os
import numpy as np
from xentcheck.backends.base import Backend, Output


class EnvProbe(Backend):
    name = "envprobe"

    def settings(self):
        return {"MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_")}

    def compute(self, case, inputs, device):
        return Output(np.zeros(()), np.zeros(inputs.logits.shape))
"""
