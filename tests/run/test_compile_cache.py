"""A run's workers share their compiled programs (JAX's and TensorFlow XLA's persistent caches in
the run's scratch folder), and each result's timing says where a worker's seconds went: the first
call, the property checks and the determinism check's second call (benchmarks/suite_time.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from xentcheck.backends.registry import create
from xentcheck.core.records import VariantOutput
from xentcheck.run.environment import compile_cache_env, compile_cache_folder, cpu_key
from xentcheck.run.plan import RunPlan
from xentcheck.run.protocol import RunRequest
from xentcheck.run.runner import Runner, RunOptions
from xentcheck.run.worker import run_case

ROOT = Path(__file__).resolve().parents[2]


def test_the_cache_variables_point_into_the_folder_by_framework_version(tmp_path):
    from importlib.metadata import version
    env = compile_cache_env(tmp_path, {})
    cpu = cpu_key()  # XLA compiles for this CPU's features: another CPU keeps its own programs
    assert len(cpu) == 8 and int(cpu, 16) >= 0
    jax = tmp_path / f"jax-{version('jax')}-jaxlib-{version('jaxlib')}-cpu-{cpu}"
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(jax)  # an upgraded JAX compiles afresh
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"  # eager JAX compiles each op in milliseconds
    assert env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] == "-1"
    tf = next(n for n in ("tensorflow", "tensorflow-cpu") if _has(n))
    assert env["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={tmp_path / f'xla-{tf}-{version(tf)}-cpu-{cpu}'}"


def _has(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return bool(version(name))
    except PackageNotFoundError:
        return False


def test_a_cache_the_user_set_up_is_kept_and_other_xla_flags_stay(tmp_path):
    env = compile_cache_env(tmp_path, {"JAX_COMPILATION_CACHE_DIR": "/mine", "TF_XLA_FLAGS": "--tf_xla_auto_jit=2"})
    assert "JAX_COMPILATION_CACHE_DIR" not in env and "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in env
    assert env["TF_XLA_FLAGS"].startswith(f"--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory={tmp_path}/xla-")
    mine = {"TF_XLA_FLAGS": "--tf_xla_persistent_cache_directory=/mine"}
    assert "TF_XLA_FLAGS" not in compile_cache_env(tmp_path, mine)


def test_the_folder_is_the_runs_scratch_unless_one_is_kept_from_run_to_run(tmp_path):
    assert compile_cache_folder(tmp_path, {}) == tmp_path / "compile-cache"
    assert compile_cache_folder(tmp_path, {"XENTCHECK_COMPILE_CACHE": "/ci/cache"}) == Path("/ci/cache")
    assert compile_cache_folder(tmp_path, {"XENTCHECK_COMPILE_CACHE": "~/c"}) == Path.home() / "c"  # as CI files write it


def _made_with(options: RunOptions) -> dict:
    """The keyword arguments the runner makes a worker with."""
    seen: dict = {}

    def factory(*args, **kwargs):
        seen.update(kwargs)
        return None

    plan = RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=[])
    runner = Runner(plan, emit=lambda rec: None, options=RunOptions(progress=False, workers=factory,
                                                                    compile_cache=options.compile_cache))
    try:
        runner._make_worker(0, "numpy")
    finally:
        shutil.rmtree(runner.scratch, ignore_errors=True)
    seen["scratch"] = runner.scratch
    return seen


def test_local_workers_get_the_cache_in_the_runs_scratch_folder_and_others_none(monkeypatch):
    monkeypatch.delenv("XENTCHECK_COMPILE_CACHE", raising=False)
    shared = _made_with(RunOptions())
    assert shared["env"]["JAX_COMPILATION_CACHE_DIR"].startswith(str(shared["scratch"] / "compile-cache"))
    assert _made_with(RunOptions(compile_cache=False))["env"] is None  # Ray: another node has no such folder


def test_properties_time_their_calls_and_the_timings_cross_the_pipe(tmp_path):
    backend = create("numpy")
    backend.load()
    reply = run_case(backend, RunRequest("scale1e+0_float32_16x10_index_mean", 0, "cpu", str(tmp_path / "r"),
                                         properties=True, rtol=1e-5, atol=1e-5, scaled=True))
    out = reply.results[0]
    assert out.status == "ok" and out.properties is not None
    assert out.properties["determinism"]["verdict"] == "pass"
    assert 0 < out.timings["repeat_seconds"] <= out.timings["properties_seconds"]
    assert VariantOutput.from_dict(json.loads(json.dumps(out.to_dict()))).timings == out.timings
    plain = run_case(backend, RunRequest("scale1e+0_float32_16x10_index_mean", 0, "cpu", str(tmp_path / "p")))
    assert plain.results[0].timings == {} and "timings" not in plain.results[0].to_dict()


def test_suite_time_breaks_a_run_folder_down(tmp_path):
    def rec(case, backend, mode, wall, compute, props=None, repeat=None):
        timing = {"wall_seconds": wall, "compute_seconds": compute}
        if props is not None:
            timing.update(properties_seconds=props, repeat_seconds=repeat)
        return {"case_id": case, "backend": backend, "mode": mode, "timing": timing}
    rows = [rec("a", "jax", "eager", 3.0, 1.0, 1.5, 0.25), rec("a", "jax", "jit", 3.0, 0.5, 0.25, 0.125),
            rec("b", "jax", "eager", 2.0, 0.75, 1.0, 0.5), rec("a", "numpy", "eager", 0.5, 0.125)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "b.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite_time.py"), "--from", str(tmp_path),
                    "--json", str(out)], check=True, capture_output=True)
    b = json.loads(out.read_text())["breakdown"]
    jax = b["backends"]["jax"]
    assert (jax["results"], jax["replies"], jax["worker_seconds"]) == (3, 2, 5.0)  # case a's reply counted once
    assert (jax["compute_seconds"], jax["properties_seconds"], jax["repeat_seconds"]) == (2.25, 2.75, 0.88)
    assert b["modes"]["jax eager"]["first_minus_repeat_seconds"] == 1.0  # (1 - 0.25) + (0.75 - 0.5)
    assert b["backends"]["numpy"] == {"results": 1, "compute_seconds": 0.12, "worker_seconds": 0.5, "replies": 1}
    # sums of the unrounded seconds
    assert b["totals"] == {"results": 4, "worker_seconds": 5.5, "compute_seconds": 2.38, "properties_seconds": 2.75}


def test_a_machine_with_other_cpu_features_keeps_its_own_programs(tmp_path, monkeypatch):
    """A cache shared by CI runners of different CPUs: an AVX2 machine must not load code XLA
    compiled for AVX-512."""
    from xentcheck.run import environment
    folders = []
    for flags in (["avx", "avx2", "fma"], ["avx", "avx2", "avx512f", "fma"], ["avx", "avx2", "fma"]):
        monkeypatch.setattr(environment, "_cpu_flags", lambda flags=flags: flags)
        folders.append(compile_cache_env(tmp_path, {})["JAX_COMPILATION_CACHE_DIR"])
    assert folders[0] != folders[1] and folders[0] == folders[2]
